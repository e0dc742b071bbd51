"""`/health` (the process answers) and `/ready` (the catalog answers): no API key, for orchestrators."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.datastructures import State

from api.types import Health


class HealthController(Controller):
    tags = ("operations",)

    @get("/health", summary="Liveness")
    async def health(self) -> Health:
        return Health(status="ok")

    @get("/ready", sync_to_thread=True, summary="Readiness: the Iceberg catalog is reachable")
    def ready(self, state: State) -> Response[Health]:
        engine = state.engine
        try:
            tables = engine.catalog.list_tables(engine.namespace)
        except Exception as exc:  # any failure to reach the catalog means not ready, and says why
            return Response(Health(status="unavailable", detail={"catalog": str(exc)[:500]}), status_code=503)
        return Response(Health(status="ready", detail={"tables": str(len(tables))}))
