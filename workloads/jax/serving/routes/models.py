"""GET /v1/models: the one model this server serves (the workload's name)."""

from __future__ import annotations

from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response

from meshstack.workloads.jax.serving.routes.handler import Endpoint
from meshstack.workloads.jax.serving.state import State


def routes(state: State) -> list[Endpoint]:
    async def models(http: HttpRequest) -> Response:
        entry = {"id": state.model, "object": "model", "created": 0, "owned_by": "meshstack"}
        return JSONResponse({"object": "list", "data": [entry]})

    return [Endpoint("/v1/models", "GET", models)]
