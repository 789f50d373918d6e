"""The FastAPI application factory."""

from __future__ import annotations

import importlib
import weakref

from fastapi import FastAPI

from signalwise.store import Settings
from signalwise.store import ingest as store_ingest

from . import errors
from .cache import TTLCache
from .routers import analytics, dashboard, ingest, system

OPTIONAL_ROUTERS = ("signalwise.api.routers.atspm",)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; `settings` default to the environment (`SIGNALWISE_*`)."""
    settings = settings or Settings()
    app = FastAPI(title="signalwise", version=_version(),
                  description="Ingestion and analytics of adaptive traffic signal control runs.")
    app.state.settings = settings
    app.state.cache = TTLCache(settings.cache_ttl_s)
    _clear_on_write(app.state.cache)
    errors.install(app)
    for router in (system.router, ingest.router, analytics.router, dashboard.router):
        app.include_router(router)
    for name in OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that area has not landed yet
            raise
        app.include_router(module.router)
    return app


def _clear_on_write(cache: TTLCache) -> None:
    """Any write through the store drops this app's cached answers (weakly held: apps come and go)."""
    ref = weakref.ref(cache)

    def hook() -> None:
        live = ref()
        if live is None:
            store_ingest.after_write_hooks.remove(hook)
        else:
            live.clear()
    store_ingest.after_write_hooks.append(hook)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("signalwise")
    except PackageNotFoundError:
        return "0"
