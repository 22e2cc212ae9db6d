"""A real chat server on 127.0.0.1, scripted per test, speaking two wire formats.

- DashScope native: ``POST /api/v1/services/aigc/text-generation/generation``; success is
  ``{"request_id", "output": {"choices": [{"finish_reason", "message": {"role", "content"}}]}, "usage"}``
  (``output.text`` when ``result_format`` is not ``message``); errors are ``{"code", "message", "request_id"}``.
- OpenAI chat completions: ``POST /v1/chat/completions``; errors are ``{"error": {"message", "type", "code"}}``.

Each request takes the next step of the script, rendered in the format of the path it came to, so one script
serves both providers. Every request is recorded (path, headers, JSON body) for assertions.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import Drop, Fail, Hang, JsonHandler, LoopbackServer

DASHSCOPE_PATH = "/api/v1/services/aigc/text-generation/generation"
OPENAI_PATH = "/v1/chat/completions"


@dataclass
class Say:
    """A successful reply whose message content is `content`; "{authorization}" in it becomes the request's
    Authorization header (a server that leaks it). `before` runs first (e.g. to edit the story mid-request)."""

    content: str
    before: Callable[[], None] | None = None


@dataclass
class Trickle:
    """Send the status line and headers, then one byte every `interval` seconds: never a complete reply."""

    interval: float = 0.1


@dataclass
class Cut:
    """Start a successful reply, then hang up halfway through its body."""


@dataclass
class Raw:
    status: int
    body: bytes
    content_type: str = "application/json"


DASHSCOPE_ERRORS = {
    400: ("InvalidParameter", "Model not exist."),
    401: ("InvalidApiKey", "Invalid API-key provided."),
    403: ("AccessDenied", "Access denied."),
    429: ("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
    500: ("InternalError", "An internal error has occured, please try again later or contact service support."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
}
OPENAI_ERRORS = {
    400: ("invalid_request_error", "model_not_found", "The model does not exist."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", "forbidden", "You are not allowed to use this model."),
    429: ("rate_limit_error", "rate_limit_exceeded", "Rate limit reached, please try again later."),
    500: ("server_error", "internal_error", "The server had an error while processing your request."),
    503: ("server_error", "overloaded", "The engine is currently overloaded."),
}


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        if self.path == DASHSCOPE_PATH:
            return self.body["input"]["messages"]
        return self.body["messages"]


class ChatServer(LoopbackServer):
    def __init__(self) -> None:
        self.script: deque[Any] = deque()
        super().__init__(_handler(self))

    @property
    def dashscope_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def add(self, *steps: Any) -> ChatServer:
        self.script.extend(steps)
        return self



def _handler(chat: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            chat.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if self.path not in (DASHSCOPE_PATH, OPENAI_PATH):
                return self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            step = chat.script.popleft() if chat.script else Fail(500, message="the test script has no more replies")
            native = self.path == DASHSCOPE_PATH
            if isinstance(step, Say):
                if step.before is not None:
                    step.before()
                content = step.content.replace("{authorization}", str(self.headers.get("Authorization")))
                return self._json(200, _dashscope_ok(content, body) if native else _openai_ok(content, body))
            if isinstance(step, Fail):
                message = step.message
                if step.echo_auth:
                    message = f"{message or 'rejected'}; you sent Authorization: {self.headers.get('Authorization')}"
                error = _dashscope_error(step, message) if native else _openai_error(step, message)
                return self._json(step.status, error, step.headers)
            if isinstance(step, Hang):
                chat.stopping.wait(step.seconds)
                self.close_connection = True
                return None
            if isinstance(step, Trickle):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    while not chat.stopping.wait(step.interval):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True
                return None
            if isinstance(step, Cut):
                data = json.dumps(_dashscope_ok("{}", body) if native else _openai_ok("{}", body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return None
            if isinstance(step, Drop):
                self.close_connection = True
                return None
            if isinstance(step, Raw):
                return self._send(step.status, step.body, step.content_type)
            raise TypeError(f"unknown script step {step!r}")

    return Handler


def _dashscope_ok(content: str, request: Any) -> dict[str, Any]:
    usage = {"input_tokens": 100, "output_tokens": 200, "total_tokens": 300}
    if isinstance(request, dict) and request.get("parameters", {}).get("result_format") == "message":
        output = {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}
    else:
        output = {"text": content, "finish_reason": "stop"}
    return {"request_id": str(uuid.uuid4()), "output": output, "usage": usage}


def _openai_ok(content: str, request: Any) -> dict[str, Any]:
    model = request.get("model", "") if isinstance(request, dict) else ""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 200, "total_tokens": 300},
    }


def _dashscope_error(step: Fail, message: str) -> dict[str, Any]:
    code, default = DASHSCOPE_ERRORS.get(step.status, ("Unknown", "error"))
    return {"code": step.code or code, "message": message or default, "request_id": str(uuid.uuid4())}


def _openai_error(step: Fail, message: str) -> dict[str, Any]:
    kind, code, default = OPENAI_ERRORS.get(step.status, ("api_error", "error", "error"))
    return {"error": {"message": message or default, "type": kind, "param": None, "code": step.code or code}}
