"""The server before its engine is up: alive to the kubelet, unready to callers, while it waits for a
checkpoint and loads and compiles it.

Loading a model and compiling every shape takes minutes, and a server deployed beside the training
job that writes its checkpoint waits hours: a process that listened only once loaded would fail its
liveness probe meanwhile and be restarted for ever. This answers GET /healthz with 200 and
everything else with 503 in OpenAI's error shape, on the server's own port, until the real server
takes the port over.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    server: StartupServer

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _answer(self) -> None:
        if self.path.split("?", 1)[0] == "/healthz":
            self._send(200, {"status": self.server.phase})
            return
        message = f"the model is not loaded yet ({self.server.phase})"
        self._send(503, {"error": {"message": message, "type": "unavailable", "param": None, "code": None}})

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        return


class StartupServer(ThreadingHTTPServer):
    """Serves in a thread of its own until `close()`; `phase` says what the server is doing."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int) -> None:
        super().__init__((host, port), _Handler)
        self.phase = "starting"
        self._thread = threading.Thread(target=self.serve_forever, name="startup-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Free the port for the real server."""
        self.shutdown()
        self.server_close()
        self._thread.join()
