"""The candlestick page: static files under `/page/`, `/` sending browsers there, and the vendored chart library.

The page needs no API key (its data calls do, with the key the user enters). The chart library is copied from the
npm registry at build time (`make page-assets`) into `api/page/vendor/`, so the page never loads code from another
origin; a checkout without it still starts and answers the library's URL with how to build it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from litestar import Request, Router, get
from litestar.exceptions import HTTPException
from litestar.response import File, Redirect
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

PAGE_DIR = Path(__file__).resolve().parents[1] / "page"
CHART_LIBRARY = PAGE_DIR / "vendor" / "lightweight-charts.standalone.production.js"
BUILD_HINT = "the chart library is not built: run `make page-assets` (npm ci in api/page)"
log = logging.getLogger(__name__)


def page_router(static_dir: Path = PAGE_DIR / "static", chart_library: Path = CHART_LIBRARY) -> Router:
    """`/` -> `/page/` (query string kept, so `/?key=...` works), the page's files, and the chart library."""
    if not chart_library.is_file():
        log.warning("%s (%s is missing); the page will say so", BUILD_HINT, chart_library)

    @get("/", include_in_schema=False, sync_to_thread=False)
    def to_page(request: Request) -> Redirect:
        return Redirect("/page/", query_params=request.query_params or None, status_code=302)

    @get("/page/vendor/lightweight-charts.js", include_in_schema=False, sync_to_thread=False)
    def chart_library_file() -> File:
        if not chart_library.is_file():
            raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail=BUILD_HINT)
        return File(chart_library, media_type="text/javascript", content_disposition_type="inline")

    files = create_static_files_router("/page", directories=[static_dir], html_mode=True, name="page")
    return Router("/", route_handlers=[to_page, chart_library_file, files], include_in_schema=False)
