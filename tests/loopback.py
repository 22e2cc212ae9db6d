"""What the tests' fake servers share: a real HTTP server on 127.0.0.1 and a free port, in a background thread,
a request handler that answers JSON, and the script steps every fake service plays the same way."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackServer:
    """Serves `handler` on 127.0.0.1 (a port the system picks) once `start`ed; `requests` is for subclasses to
    record what reached them."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.requests: list[Any] = []
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet handler with helpers to answer JSON or any body."""

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Fail:
    """An HTTP error the way the real service sends it. `echo_auth` puts the request's credentials into the error
    message, as a careless proxy might."""

    status: int
    code: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    echo_auth: bool = False


@dataclass
class Hang:
    """Accept the request and say nothing for `seconds` (or until the server stops), then hang up."""

    seconds: float = 30.0


@dataclass
class Drop:
    """Close the connection without answering."""
