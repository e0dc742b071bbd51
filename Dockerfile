# K2 image for compose.yaml: the locked dependencies, the code, and the ingest flow as the default command.

# The page's chart library, from the npm registry at the locked version (as `make page-assets` does).
FROM node:20-slim AS page-assets
WORKDIR /page
COPY api/page/package.json api/page/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.12-slim
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --extra postgres
COPY k2 k2
COPY flows flows
COPY api api
COPY scripts scripts
COPY --from=page-assets /page/node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js \
     api/page/vendor/lightweight-charts.standalone.production.js
RUN uv sync --frozen --no-dev --extra postgres
# UV_NO_SYNC: scripts/ingest.sh runs `uv run`, which would otherwise install the dev group at start.
ENV PATH="/app/.venv/bin:$PATH" K2_DATA_DIR=/data UV_NO_SYNC=1
# The flow with Bytewax recovery state under /data/recovery (mount a volume there to keep it across restarts).
CMD ["scripts/ingest.sh"]
