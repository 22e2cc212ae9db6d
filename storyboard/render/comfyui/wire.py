"""The wire to one ComfyUI server: its HTTP routes (`requests`), and its websocket (`websocket-client`) read on a
thread of its own.

ComfyUI sends a client the messages of its own prompts only when the websocket's ``clientId`` is the
``client_id`` the prompts were queued with; without it the socket carries nothing but ``status``.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from storyboard.errors import RendererAuthError, RendererRequestError, StoryboardError
from storyboard.http import RENDERER_ERRORS, describe, keep_secret, requests_errors, shown_url, status_error

URL_ENV = "COMFYUI_URL"
DEFAULT_URL = "http://127.0.0.1:8188"
DROPPED = object()  # what `Messages.get` gives once the websocket has closed


def server_url(url: str) -> str:
    """The server's root address, checked; a password in it is kept out of everything storyboard prints."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RendererRequestError(f"--base-url must be an http:// or https:// address such as {DEFAULT_URL} "
                                   f"(got {shown_url(url)!r})")
    if parts.password:
        keep_secret(unquote(parts.password))
    return url


class Wire:
    """HTTP requests to the server at `base_url`; errors come out as the renderer errors every remote renderer
    raises (a refused connection or a 5xx is worth another try, a 4xx is not)."""

    def __init__(self, base_url: str, where: str) -> None:
        import requests

        self.base_url, self.where = base_url, where
        self.session = requests.Session()

    def call(self, method: str, path: str, seconds: float, *, body: Any = None, files: Any = None,
             raw: bool = False, label: str = "") -> Any:
        """The reply to one request: its JSON, or its bytes with `raw`; `label` names the panel a graph is queued
        for. A timeout is raised as `requests.Timeout` for the caller, which knows what it asked for."""
        with requests_errors(self.where, RENDERER_ERRORS):
            response = self.session.request(method, self.base_url + path, json=body, files=files, timeout=seconds)
        if response.status_code != 200:
            raise self._refusal(response, path, label)
        if raw:
            return response.content
        try:
            return response.json()
        except ValueError:
            raise RendererRequestError(f"{self.where} answered {path} with something that is not JSON; is it a "
                                       "ComfyUI server?") from None

    def _refusal(self, response: Any, path: str, label: str) -> StoryboardError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if status == 400 and path == "/prompt" and isinstance(body, dict):
            return RendererRequestError(f"{self.where} refused the graph for {label or 'a panel'}: "
                                        f"{describe(prompt_error(body), 300)}")
        said = describe(response.text, 120) if body is None else describe(json.dumps(body), 160)
        detail = f"HTTP {status}" + (f" {said}" if said else "")
        if status in (401, 403):
            return RendererAuthError(f"{self.where} refused access ({detail}); a proxy in front of ComfyUI that "
                                     "asks for a password takes it in the address: http://user:password@host:port")
        return status_error(self.where, status, detail, key_env=URL_ENV, model="the graph", headers=response.headers,
                            errors=RENDERER_ERRORS,
                            not_found=f"is it a ComfyUI server, and is the address the one it prints (e.g. "
                                      f"{DEFAULT_URL})?")


def prompt_error(body: dict[str, Any]) -> str:
    """What ComfyUI's refusal of a graph says: its error, and each node's errors."""
    error = body.get("error")
    parts = [str(error.get("message") or error.get("type")) if isinstance(error, dict) else str(error or "")]
    node_errors = body.get("node_errors")
    for node_id, found in (node_errors.items() if isinstance(node_errors, dict) else ()):
        if not isinstance(found, dict):
            continue
        for problem in found.get("errors") or []:
            if isinstance(problem, dict):
                parts.append(f"node {node_id} ({found.get('class_type', '?')}): {problem.get('message', '')}"
                             f"{': ' + str(problem['details']) if problem.get('details') else ''}")
    return "; ".join(part for part in parts if part) or "no reason given"


class Messages:
    """The server's websocket for `client_id`: its JSON messages as ``(type, data)`` in a queue, then `DROPPED`
    once it closes. Binary messages (previews) are skipped."""

    def __init__(self, base_url: str, client_id: str, seconds: float) -> None:
        import websocket

        parts = urlsplit(base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        netloc = parts.netloc.rpartition("@")[2]
        url = urlunsplit((scheme, netloc, f"{parts.path}/ws", f"clientId={quote(client_id)}", ""))
        header = []
        if parts.username is not None:
            userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            header.append(f"Authorization: Basic {keep_secret(base64.b64encode(userinfo.encode()).decode())}")
        # No Origin header: ComfyUI refuses a websocket or POST whose Origin names another host than it is asked
        # by (its guard against web pages driving a local server), which a proxy or another name for it trips.
        self._socket = websocket.create_connection(url, timeout=seconds, header=header, suppress_origin=True,
                                                   enable_multithread=True)
        self._socket.settimeout(None)  # a quiet server (a model loading, a slow step) is no failure
        self.queue: queue.Queue[Any] = queue.Queue()
        self.open = True
        threading.Thread(target=self._read, name="storyboard-comfyui-websocket", daemon=True).start()

    def _read(self) -> None:
        import websocket

        try:
            while True:
                frame = self._socket.recv()
                if isinstance(frame, bytes):
                    continue
                if not frame and not self._socket.connected:
                    break
                try:
                    message = json.loads(frame)
                except ValueError:
                    continue
                if isinstance(message, dict) and isinstance(message.get("type"), str):
                    data = message.get("data")
                    self.queue.put((message["type"], data if isinstance(data, dict) else {}))
        except (websocket.WebSocketException, OSError):
            pass  # closed or reset: whoever waits follows its prompt by asking for its history instead
        finally:
            self.open = False
            self.queue.put(DROPPED)

    def get(self, seconds: float) -> Any:
        """The next message, `DROPPED`, or None when none came within `seconds`."""
        try:
            return self.queue.get(timeout=seconds)
        except queue.Empty:
            return None
