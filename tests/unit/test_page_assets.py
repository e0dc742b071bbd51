"""The candlestick page through Litestar's test client: `/` leads to it, it and every file it loads are served
without a key from the API's own origin with the right content types, and a missing chart library is explained."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from api.controllers.page import BUILD_HINT, CHART_LIBRARY, PAGE_DIR, page_router
from k2.ops.config import load_settings

KEY = "page-key"
JAVASCRIPT = ("text/javascript", "application/javascript")
REFERENCES = re.compile(r'(?:src|href)="([^"]+)"')
IMPORTS = re.compile(r'from "(\./[^"]+)"')


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = load_settings({}, data_dir=str(tmp_path_factory.mktemp("page") / "k2"), api_keys=KEY)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def media_type(response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


def test_root_leads_to_the_page_keeping_the_query(client):
    response = client.get("/", params={"key": "demo-key"}, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/page/?key=demo-key"
    assert client.get("/", follow_redirects=False).headers["location"] == "/page/"


def test_page_and_every_file_it_loads_come_from_this_origin_without_a_key(client):
    page = client.get("/page/")
    assert page.status_code == 200 and media_type(page) == "text/html"
    referenced = [url for url in REFERENCES.findall(page.text) if not url.startswith("data:")]
    assert referenced and all(url.startswith("/page/") for url in referenced), referenced  # no CDN, no other origin
    modules = [url for url in referenced if url.endswith(".js")]
    assert "/page/vendor/lightweight-charts.js" in modules
    assert "/page/page.css" in referenced
    # Follow the ES module imports from page.js, so a renamed or missing module fails here, not in a browser.
    seen: set[str] = set()
    while modules:
        url = modules.pop()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        assert response.status_code == 200, url
        assert media_type(response) in JAVASCRIPT, (url, response.headers["content-type"])
        modules += [f"/page/{name.removeprefix('./')}" for name in IMPORTS.findall(response.text)]
    assert {"/page/page.js", "/page/api.js", "/page/chart.js", "/page/panels.js"} <= seen
    css = client.get("/page/page.css")
    assert css.status_code == 200 and media_type(css) == "text/css"
    assert client.get("/v1/symbols").status_code == 401  # the page is open; its data is not


def test_vendored_chart_library_is_the_locked_version(client):
    assert CHART_LIBRARY.is_file(), BUILD_HINT
    lock = json.loads((PAGE_DIR / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/lightweight-charts"]["version"]
    response = client.get("/page/vendor/lightweight-charts.js")
    assert response.status_code == 200 and media_type(response) in JAVASCRIPT
    assert f"Lightweight Charts™ v{version}" in response.text[:500]


def test_missing_chart_library_is_explained_not_fatal(tmp_path: Path, caplog):
    missing = tmp_path / "vendor" / "lightweight-charts.standalone.production.js"
    with TestClient(Litestar([page_router(chart_library=missing)])) as test_client:
        assert test_client.get("/page/").status_code == 200
        response = test_client.get("/page/vendor/lightweight-charts.js")
    assert response.status_code == 503
    assert "make page-assets" in response.json()["detail"]
    assert "make page-assets" in caplog.text
