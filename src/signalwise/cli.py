"""The `signalwise` command.

Each area registers its own commands from a small module (`register(app)`), so
this file stays a table of contents. Heavy imports happen inside commands to
keep `signalwise --help` fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="signalwise",
    help="Safe adaptive traffic signal control on SUMO: run, compare, measure, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: modules that add commands to `app` through a `register(app)` function
COMMAND_MODULES = (
    "signalwise.runtime.commands",  # run, compare, scenarios, demo
    "signalwise.runtime.live.commands",  # live
    "signalwise.store.commands",  # ingest, serve, db
    "signalwise.analytics.atspm.commands",  # atspm, events import
    "signalwise.analytics.audit_commands",  # audit (independent safety check of runs)
    "signalwise.control.learning.commands",  # train, evaluate, models
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that area has not landed yet
            raise
        module.register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
