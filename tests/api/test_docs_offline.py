"""The OpenAPI docs work offline: every asset the pages load is served by the app itself."""

import re

from fastapi.testclient import TestClient

from signalwise.api import create_app
from signalwise.store import Settings


def test_docs_pages_load_only_local_assets(tmp_path):
    with TestClient(create_app(Settings(database_url=f"sqlite:///{tmp_path / 'd.db'}"))) as c:
        for page in ("/docs", "/redoc"):
            html = c.get(page)
            assert html.status_code == 200
            external = re.findall(r"https?://[^\"' )]+", html.text)
            assert not [u for u in external if "127.0.0.1" not in u and "localhost" not in u], external
            assets = re.findall(r"[\"'](/docs-assets/[^\"']+)[\"']", html.text)
            assert assets, html.text[:300]
            for asset in assets:
                r = c.get(asset)
                assert r.status_code == 200 and len(r.content) > 1000, asset
        assert c.get("/openapi.json").json()["info"]["title"] == "signalwise"
