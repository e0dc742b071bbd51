# K2 image for compose.yaml: the locked dependencies, the code, and the ingest flow as the default command.

# The page's chart library, from the npm registry at the locked version (as `make page-assets` does).
FROM node:20-slim AS page-assets
WORKDIR /page
COPY api/page/package.json api/page/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# The environment, built with Rust and a C toolchain: `native/` (the compiled validation and Kafka reader, with
# librdkafka from the rdkafka crate's bundled source) is built from source by `uv sync`, as on a developer's machine.
FROM python:3.12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
ENV PATH="/root/.cargo/bin:$PATH"
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY native/pyproject.toml native/Cargo.toml native/Cargo.lock native/
# Third-party dependencies first (a layer that survives code changes), then the workspace itself. Both compiled to
# bytecode here: otherwise every new container's first flow start compiles each module it imports (importing the
# flow took 2.0-2.3 s so, 0.7-0.8 s compiled: benchmarks/report.md, "Design measurements: Flow start-up").
RUN uv sync --frozen --no-dev --no-install-workspace --extra postgres --compile-bytecode
COPY native/src native/src
COPY k2 k2
COPY flows flows
COPY api api
COPY scripts scripts
COPY --from=page-assets /page/node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js \
     api/page/vendor/lightweight-charts.standalone.production.js
RUN uv sync --frozen --no-dev --extra postgres && .venv/bin/python -m compileall -q k2 flows api

# The image itself: the built environment and the code, without the toolchains.
FROM python:3.12-slim
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY --from=build /app /app
# UV_NO_SYNC: scripts/ingest.sh runs `uv run`, which would otherwise install the dev group at start.
ENV PATH="/app/.venv/bin:$PATH" K2_DATA_DIR=/data UV_NO_SYNC=1
# The flow with Bytewax recovery state under /data/recovery (mount a volume there to keep it across restarts).
CMD ["scripts/ingest.sh"]
