"""A real image service on 127.0.0.1, scripted per test, speaking two wire formats.

- DashScope image synthesis, asynchronous: ``POST /api/v1/services/aigc/text2image/image-synthesis`` with
  ``X-DashScope-Async: enable`` answers ``{"request_id", "output": {"task_id", "task_status": "PENDING"}}``;
  ``GET /api/v1/tasks/{task_id}`` answers ``RUNNING`` (``polls`` times) and then ``SUCCEEDED`` with
  ``output.results[].url``; that address (``/results/{task_id}.png``) is served here too. Errors are
  ``{"code", "message", "request_id"}``; a request without ``Authorization: Bearer <key>`` is a 401.
- The A1111 web UI API: ``GET /sdapi/v1/sd-models`` and ``POST /sdapi/v1/txt2img``, whose reply holds the image as
  base64 PNG in ``images`` and the generation info as a JSON string in ``info``; with ``auth`` set, HTTP basic auth
  is required. Errors are FastAPI's ``{"detail": ...}``.

The picture drawn for a request is `expected_colour(prompt, seed)` at the size asked for, so a test can tell from
the pixels that its own prompt and seed reached the server. Each route takes the next step of its own script
(`add(route, ...)`) and succeeds when the script is empty. Every request is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import Drop, Fail, Hang, JsonHandler, LoopbackServer
from PIL import Image

SUBMIT_PATH = "/api/v1/services/aigc/text2image/image-synthesis"
TASKS_PREFIX = "/api/v1/tasks/"
RESULTS_PREFIX = "/results/"
MODELS_PATH = "/sdapi/v1/sd-models"
TXT2IMG_PATH = "/sdapi/v1/txt2img"

CHECKPOINTS = [
    {"title": "v1-5-pruned-emaonly.safetensors [6ce0161689]", "model_name": "v1-5-pruned-emaonly",
     "hash": "6ce0161689", "sha256": "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
     "filename": "/srv/webui/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors", "config": None},
    {"title": "sd_xl_base_1.0.safetensors [31e35c80fc]", "model_name": "sd_xl_base_1.0", "hash": "31e35c80fc",
     "sha256": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
     "filename": "/srv/webui/models/Stable-diffusion/sd_xl_base_1.0.safetensors", "config": None},
]


def expected_colour(prompt: str, seed: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{prompt}\0{seed}".encode()).digest()
    return digest[0], digest[1], digest[2]


@dataclass
class TaskFails:
    """DashScope: the task ends FAILED with this code and message (a poll step)."""

    code: str = "DataInspectionFailed"
    message: str = "Output data may contain inappropriate content."


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any


DASHSCOPE_ERRORS = {
    400: ("InvalidParameter", "Model not exist."),
    401: ("InvalidApiKey", "Invalid API-key provided."),
    403: ("AccessDenied", "Access denied."),
    429: ("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
    500: ("InternalError", "An internal error has occured, please try again later or contact service support."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
}


class ImageServer(LoopbackServer):
    def __init__(self, *, key: str = "", auth: tuple[str, str] | None = None, polls: int = 1) -> None:
        self.key = key  # DashScope: the API key it accepts
        self.auth = auth  # A1111: the user and password it requires, if any
        self.polls = polls  # DashScope: how many looks at a task answer RUNNING before it is done
        self.scripts: dict[str, deque[Any]] = defaultdict(deque)
        self.tasks: dict[str, dict[str, Any]] = {}
        super().__init__(_handler(self))

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dashscope_url(self) -> str:
        return f"{self.root}/api/v1"

    def add(self, route: str, *steps: Any) -> ImageServer:
        """Script `route` ("submit", "poll", "result", "models", "txt2img") with `steps`, taken one per request."""
        self.scripts[route].extend(steps)
        return self

    def drawn(self) -> list[Request]:
        """The requests that asked for a picture (DashScope submissions and A1111 txt2img calls)."""
        return [r for r in self.requests if r.path in (SUBMIT_PATH, TXT2IMG_PATH)]



def _png(colour: tuple[int, int, int], width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def _handler(server: ImageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append(Request(method, self.path, headers, body))
            path = self.path.split("?", 1)[0]
            if method == "POST" and path == SUBMIT_PATH:
                return self._step("submit", native=True) or self._submit(body)
            if method == "GET" and path.startswith(TASKS_PREFIX):
                return self._step("poll", native=True) or self._poll(path[len(TASKS_PREFIX):])
            if method == "GET" and path.startswith(RESULTS_PREFIX):
                return self._step("result", native=True) or self._result(path[len(RESULTS_PREFIX):])
            if method == "GET" and path == MODELS_PATH:
                return self._step("models", native=False) or self._a1111_auth() or self._json(200, CHECKPOINTS)
            if method == "POST" and path == TXT2IMG_PATH:
                return self._step("txt2img", native=False) or self._a1111_auth() or self._txt2img(body)
            return self._json(404, {"detail": "Not Found"})

        # ------------------------------------------------------------ scripted steps

        def _step(self, route: str, *, native: bool) -> bool:
            """Play the next scripted step of `route`; False when there is none (the request then succeeds)."""
            script = server.scripts[route]
            if not script:
                return False
            step = script.popleft()
            if isinstance(step, Fail):
                message = step.message or DASHSCOPE_ERRORS.get(step.status, ("", "error"))[1]
                if step.echo_auth:
                    message = f"{message}; you sent Authorization: {self.headers.get('Authorization')}"
                if native:
                    code = step.code or DASHSCOPE_ERRORS.get(step.status, ("Unknown", ""))[0]
                    self._json(step.status, {"code": code, "message": message, "request_id": str(uuid.uuid4())},
                               step.headers)
                else:
                    self._json(step.status, {"detail": message}, step.headers)
                return True
            if isinstance(step, Hang):
                server.stopping.wait(step.seconds)
                self.close_connection = True
                return True
            if isinstance(step, Drop):
                self.close_connection = True
                return True
            if isinstance(step, TaskFails):
                task_id = self.path[len(TASKS_PREFIX):]
                self._json(200, {"request_id": str(uuid.uuid4()), "output": {
                    "task_id": task_id, "task_status": "FAILED", "code": step.code, "message": step.message}})
                return True
            raise TypeError(f"unknown script step {step!r}")

        # ------------------------------------------------------------ DashScope

        def _dashscope_auth(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {server.key}":
                return False
            code, message = DASHSCOPE_ERRORS[401]
            self._json(401, {"code": code, "message": message, "request_id": str(uuid.uuid4())})
            return True

        def _submit(self, body: Any) -> None:
            if self._dashscope_auth():
                return
            if self.headers.get("X-DashScope-Async") != "enable":
                return self._json(403, {"code": "AccessDenied", "request_id": str(uuid.uuid4()),
                                        "message": "current user api does not support synchronous calls"})
            width, height = (int(n) for n in body["parameters"]["size"].split("*"))
            task_id = str(uuid.uuid4())
            colour = expected_colour(body["input"]["prompt"], body["parameters"]["seed"])
            server.tasks[task_id] = {"looks": 0, "png": _png(colour, width, height)}
            self._json(200, {"request_id": str(uuid.uuid4()),
                             "output": {"task_id": task_id, "task_status": "PENDING"}})

        def _poll(self, task_id: str) -> None:
            if self._dashscope_auth():
                return
            task = server.tasks.get(task_id)
            if task is None:
                return self._json(404, {"code": "NotFound", "message": "task not found",
                                        "request_id": str(uuid.uuid4())})
            task["looks"] += 1
            output: dict[str, Any] = {"task_id": task_id, "task_status": "RUNNING"}
            if task["looks"] > server.polls:
                output = {"task_id": task_id, "task_status": "SUCCEEDED",
                          "results": [{"url": f"{server.root}{RESULTS_PREFIX}{task_id}.png?Expires=1&Signature=x"}],
                          "task_metrics": {"TOTAL": 1, "SUCCEEDED": 1, "FAILED": 0}}
            self._json(200, {"request_id": str(uuid.uuid4()), "output": output,
                             **({"usage": {"image_count": 1}} if output["task_status"] == "SUCCEEDED" else {})})

        def _result(self, name: str) -> None:
            task = server.tasks.get(name.removesuffix(".png"))
            if task is None or "authorization" in {k.lower() for k in self.headers}:
                return self._send(403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml")
            self._send(200, task["png"], "image/png")

        # ------------------------------------------------------------ A1111

        def _a1111_auth(self) -> bool:
            if server.auth is None:
                return False
            expected = "Basic " + base64.b64encode(":".join(server.auth).encode()).decode()
            if self.headers.get("Authorization") == expected:
                return False
            self._json(401, {"detail": "Incorrect username or password"}, {"WWW-Authenticate": "Basic"})
            return True

        def _txt2img(self, body: Any) -> None:
            checkpoint = body.get("override_settings", {}).get("sd_model_checkpoint")
            model = next((c for c in CHECKPOINTS if c["title"] == checkpoint), None)
            if model is None:
                return self._json(500, {"error": "RuntimeError", "detail": "",
                                        "errors": f"checkpoint {checkpoint!r} not found"})
            png = _png(expected_colour(body["prompt"], body["seed"]), body["width"], body["height"])
            info = {"prompt": body["prompt"], "seed": body["seed"], "sd_model_name": model["model_name"],
                    "sd_model_hash": model["hash"], "sampler_name": body.get("sampler_name")}
            self._json(200, {"images": [base64.b64encode(png).decode()], "parameters": body,
                             "info": json.dumps(info)})

        # ------------------------------------------------------------ the wire

    return Handler
