"""`python -m api`: serve the query API with uvicorn (host and port from K2_API_HOST / K2_API_PORT)."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from k2.config import load_settings


def main() -> None:
    settings = load_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info")


if __name__ == "__main__":
    main()
