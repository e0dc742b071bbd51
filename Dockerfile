# K2 image for compose.yaml: the locked dependencies, the code, and the ingest flow as the default command.
FROM python:3.12-slim
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --extra postgres
COPY k2 k2
COPY flows flows
COPY api api
RUN uv sync --frozen --no-dev --extra postgres
ENV PATH="/app/.venv/bin:$PATH" K2_DATA_DIR=/data
CMD ["python", "-m", "bytewax.run", "flows.ingest"]
