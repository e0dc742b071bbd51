"""`/health` (the process answers) and `/ready` (the catalog answers): no API key, for orchestrators."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec

from api.contract import problem_responses
from api.types import Health

NOT_READY = ResponseSpec(
    Health, description="The catalog cannot be reached; `detail` says why", generate_examples=False
)


class HealthController(Controller):
    tags = ("operations",)

    @get("/health", summary="Liveness", responses=problem_responses(500))
    async def health(self) -> Health:
        return Health(status="ok")

    @get(
        "/ready",
        sync_to_thread=True,
        summary="Readiness: the Iceberg catalog is reachable",
        responses={503: NOT_READY, **problem_responses(500)},
    )
    def ready(self, state: State) -> Response[Health]:
        engine = state.engine
        try:
            tables = engine.catalog.list_tables(engine.namespace)
        except Exception as exc:  # any failure to reach the catalog means not ready, and says why
            return Response(Health(status="unavailable", detail={"catalog": str(exc)[:500]}), status_code=503)
        return Response(Health(status="ready", detail={"tables": str(len(tables))}))
