"""`python -m api`: serve the query API with uvicorn (host and port from K2_API_HOST / K2_API_PORT).

Logging follows K2_LOG_FORMAT / K2_LOG_LEVEL; uvicorn's own loggers (server and access lines) are left unconfigured
so their records reach the same root handler and format.
"""

from __future__ import annotations

import uvicorn

from api.app import create_app
from k2.ops.config import load_settings
from k2.ops.logs import configure_logging


def main() -> None:
    settings = load_settings()
    app = create_app(settings)
    configure_logging(settings.log_format, settings.log_level)  # after the app: Litestar sets up logging in it
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
