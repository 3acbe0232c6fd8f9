"""The server before its engine is up: alive to the kubelet, unready to callers, while it waits for a
checkpoint and loads and compiles it.

Loading a model and compiling every shape takes minutes, and a server deployed beside the training
job that writes its checkpoint waits hours: a process that listened only once loaded would fail its
liveness probe meanwhile and be restarted for ever. This answers GET /healthz with 200 and
everything else with 503 in OpenAI's error shape, on the server's own port, until the real server
takes the port over.

Those hours are exposed to the same clients as the real server, so its connections are held to the
same limits (workloads/jax/http_guard.py, serve.read_timeout_s): a silent, trickling or stalled one
is closed at its deadline instead of holding a thread for ever, and the probes still get through.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send

from meshstack.workloads.jax.http_guard import Limits, listener_config


class StartupServer:
    """Serves in a thread of its own until `close()`; `phase` says what the server is doing."""

    def __init__(self, host: str, port: int, limits: Limits) -> None:
        self.phase = "starting"
        # A connection still being read at close() is within its read deadline: it is not waited for.
        self._server = uvicorn.Server(listener_config(self._app, host, port, limits, timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, name="startup-http", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise OSError(f"{host}:{port}: the server cannot listen there (is the port in use?)")
            time.sleep(0.01)

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # a WebSocket upgrade: uvicorn refuses it with 403
        body: dict[str, Any]
        if scope["path"] == "/healthz":
            status, body = 200, {"status": self.phase}
        else:
            message = f"the model is not loaded yet ({self.phase})"
            status, body = 503, {"error": {"message": message, "type": "unavailable", "param": None, "code": None}}
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})

    @property
    def port(self) -> int:
        """The port bound (the config may ask for 0: any free one)."""
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    def close(self) -> None:
        """Free the port for the real server."""
        self._server.should_exit = True
        self._thread.join()
