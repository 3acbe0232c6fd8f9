"""What the kubelet and Prometheus read, without the API's token: GET /healthz (alive), /readyz (loaded
and not draining), /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response

from meshstack.workloads.jax.serving.routes.handler import Endpoint
from meshstack.workloads.jax.serving.state import State


def routes(state: State) -> list[Endpoint]:
    async def healthz(http: HttpRequest) -> Response:
        """Alive while the engine's process is: the kubelet restarts a server whose engine died."""
        failure = state.engine.failure
        if failure is not None:
            return JSONResponse({"status": failure}, status_code=503)
        return JSONResponse({"status": "alive"})

    async def readyz(http: HttpRequest) -> Response:
        ready = not state.draining and state.engine.failure is None
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def metrics(http: HttpRequest) -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Endpoint("/healthz", "GET", healthz, api=False),
        Endpoint("/readyz", "GET", readyz, api=False),
        Endpoint("/metrics", "GET", metrics, api=False),
    ]
