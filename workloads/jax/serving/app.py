"""The Starlette app: every router's endpoints behind one guard (the token, the drain, OpenAI's error
shape, the in-flight count a drain waits on, the status counted)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.routing import Route

from meshstack.workloads.jax.serve_flow import ClientGoneError, TrackedStream
from meshstack.workloads.jax.serving.protocol import ApiError
from meshstack.workloads.jax.serving.routes import chat, completions, models, probes
from meshstack.workloads.jax.serving.routes.handler import Endpoint, Handler
from meshstack.workloads.jax.serving.state import State


def make_app(state: State) -> Starlette:
    endpoints = [e for router in (completions, chat, models, probes) for e in router.routes(state)]
    return Starlette(
        routes=[Route(e.path, _guarded(state, e), methods=[e.method]) for e in endpoints],
        exception_handlers={404: _not_found, 405: _not_allowed},
    )


def _guarded(state: State, endpoint: Endpoint) -> Handler:
    async def guarded(http: HttpRequest) -> Response:
        """Every request counts in `active` until its last byte: here for an answer in one piece
        (whatever happens to it), by the stream itself for a stream (workloads/jax/serve_flow.py)."""
        state.active += 1
        response: Response | None = None
        try:
            if endpoint.api:
                _admit(state, http)
            response = await endpoint.handler(http)
        except ApiError as exc:
            response = exc.response()
        except (ClientDisconnect, ClientGoneError):
            # Gone while its body was read or its answer made: nobody to answer (499, nginx's count).
            response = Response(status_code=499)
        finally:
            if not isinstance(response, TrackedStream):
                state.active -= 1
        assert response is not None, "set by the handler or an error"
        state.metrics.answered(response.status_code)
        return response

    return guarded


def _admit(state: State, http: HttpRequest) -> None:
    if state.token is not None and http.headers.get("authorization") != f"Bearer {state.token}":
        raise ApiError(401, "send the service's token as 'Authorization: Bearer ...'", kind="authentication_error")
    if state.draining:
        raise ApiError(503, "the server is shutting down", code="shutting_down")


async def _not_found(http: HttpRequest, exc: Exception) -> Response:
    return ApiError(404, f"no such path {http.url.path}", code="not_found").response()


async def _not_allowed(http: HttpRequest, exc: Exception) -> Response:
    return ApiError(405, f"{http.method} is not supported on {http.url.path}").response()
