"""The live server: the build folder over HTTP, a page that follows the builds, and the page's actions.

Routes:

- ``GET /``: ``index.html`` plus the live layer (``templates/live.js`` and ``live.css``) and this run's token in
  ``<meta name="storyboard-token">``;
- ``GET /events``: Server-Sent Events from the builds (see `storyboard.serve.builder`);
- ``POST /api/panels/{n}/redraw``, ``/variants`` ``{"count": K}``, ``/pick`` ``{"seed": S}``: the same operations
  as ``build --panel N --force``, ``variants`` and ``pick``; each needs the header ``X-Storyboard-Token``;
- ``GET /<file>``: any file of the build folder under its own name, and nothing outside it.

Every request must name this server in its ``Host`` header (the bound address or ``localhost``): a web page the
user visits cannot reach it through a DNS name it controls and read the token (DNS rebinding).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from storyboard.building import MAX_VARIANTS
from storyboard.errors import FolderBusy, StoryboardError, StoryChanged, internal_error
from storyboard.output import OutputFolder
from storyboard.resolve import check_panel_number
from storyboard.serve.builder import Builder
from storyboard.serve.events import EventBus
from storyboard.story import load_story
from storyboard.templates import templates_dir

log = logging.getLogger("storyboard")

TOKEN_HEADER = "x-storyboard-token"
WILDCARD_HOSTS = ("0.0.0.0", "::", "")

PLACEHOLDER = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>storyboard</title></head>
<body><main><p>No page has been built yet.</p></main></body>
</html>
"""


class HostGuard:
    """Refuse requests whose Host header names anything but this server (DNS rebinding)."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host.strip("[]"), port

    def allowed(self, header: str) -> bool:
        if header.startswith("["):
            name, _, rest = header[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            name, _, port = header.rpartition(":") if header.count(":") == 1 else (header, "", "")
        if port and port != str(self.port):
            return False
        name = name.lower()
        if name in ("localhost", self.host.lower()):
            return True
        if self.host in WILDCARD_HOSTS:  # bound to every address: any address of this machine, but no DNS name
            try:
                ipaddress.ip_address(name)
                return True
            except ValueError:
                return False
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not self.allowed(host):
                response = _error(400, f"this server answers only to {self.host}:{self.port} or "
                                       f"localhost:{self.port}, not to Host {host!r}")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class LiveSite:
    """What the routes need: the build folder, the story, the builder, the bus and this run's token."""

    def __init__(self, story_path: Path, out: Path, builder: Builder, bus: EventBus, token: str) -> None:
        self.story_path, self.out, self.builder, self.bus, self.token = story_path, out, builder, bus, token

    # ------------------------------------------------------------------ pages and files

    def live_page(self) -> str:
        try:
            html = OutputFolder(self.out).index_html.read_text(encoding="utf-8")
        except OSError:
            html = PLACEHOLDER
        layer = templates_dir()
        head = (f'<meta name="storyboard-token" content="{self.token}">\n'
                f'<style>\n{(layer / "live.css").read_text(encoding="utf-8")}</style>\n')
        script = f'<script>\n{(layer / "live.js").read_text(encoding="utf-8")}</script>\n'
        html = html.replace("</head>", head + "</head>", 1)
        return html.replace("</body>", script + "</body>", 1)

    def file(self, name: str) -> Path | None:
        """The build folder's file `name`, or None when it names nothing there (or anything outside it)."""
        parts = name.split("/")
        if not name or any(part in ("", ".", "..") or part.startswith(".") or "\\" in part or "\0" in part
                           for part in parts):
            return None
        root = os.path.realpath(self.out)
        target = os.path.realpath(os.path.join(root, *parts))
        if os.path.commonpath([root, target]) != root or not os.path.isfile(target):
            return None  # a symlink out of the folder, or no such file
        return Path(target)

    # ------------------------------------------------------------------ actions

    def check_token(self, request: Request) -> Response | None:
        given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return _error(403, f"missing or wrong {TOKEN_HEADER.title()} header")
        return None

    def panel_number(self, request: Request) -> int:
        """The panel number of the URL, checked against the story as it is now."""
        panel = panel_param(request)
        check_panel_number(panel, len(load_story(self.story_path).panels), self.story_path)
        return panel


MAX_BODY = 64 * 1024  # an action's body is one small JSON object
_PANEL = re.compile(r"[0-9]{1,6}")


def panel_param(request: Request) -> int:
    """The URL's panel number, checked as text before it becomes a number (a number of thousands of digits would
    otherwise trip Python's limit on converting them)."""
    text = request.path_params["n"]
    if not _PANEL.fullmatch(text):
        shown = repr(text) if len(text) <= 20 else f"{text[:20]!r}... ({len(text)} characters)"
        raise _BadRequest(f"{shown} is not a panel number")
    return int(text)


async def _body(request: Request, field: str) -> int:
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY:
        raise _TooLarge(f"the request body must be at most {MAX_BODY // 1024} KiB")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise _TooLarge(f"the request body must be at most {MAX_BODY // 1024} KiB")
    try:
        data = json.loads(body or b"null")
    except RecursionError:
        raise _BadRequest("the request body is nested too deeply") from None
    except ValueError:
        raise _BadRequest("the request body is not JSON") from None
    value = data.get(field) if isinstance(data, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _BadRequest(f'the request body must be a JSON object with an integer "{field}"')
    return value


class _BadRequest(Exception):
    status = 400


class _TooLarge(_BadRequest):
    status = 413


Endpoint = Callable[[Request], Awaitable[Response]]


def action(site: LiveSite, handler: Endpoint) -> Endpoint:
    """`handler` behind the token, its errors answered as one line: a folder another process holds, or a story file
    that kept changing under an edit, is a conflict (409); any other `StoryboardError` and a malformed body are the
    request's fault (400)."""
    async def endpoint(request: Request) -> Response:
        refused = site.check_token(request)
        if refused is not None:
            return refused
        try:
            return await handler(request)
        except _BadRequest as exc:
            return _error(exc.status, str(exc))
        except StoryboardError as exc:
            return _error(409 if isinstance(exc, FolderBusy | StoryChanged) else 400, f"Error: {exc}")
        except Exception as exc:  # a bug: one line for the page and the log, never a traceback
            log.error("storyboard serve: %s", internal_error(exc))
            return _error(500, f"Error: {internal_error(exc)}")
    return endpoint


def event_stream(site: LiveSite) -> Response:
    """The build events as Server-Sent Events, until the server stops."""
    from sse_starlette.sse import EventSourceResponse

    async def stream() -> Any:
        with site.bus.subscribe() as queue:
            while (event := await queue.get()) is not None:
                yield {"event": event.kind, "data": json.dumps(event.data, ensure_ascii=False)}

    return EventSourceResponse(stream(), ping=10, headers={"Cache-Control": "no-store"})


def create_app(site: LiveSite, host: str, port: int) -> ASGIApp:
    async def page(request: Request) -> Response:
        html = await run_in_threadpool(site.live_page)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def events(request: Request) -> Response:
        return event_stream(site)

    async def static(request: Request) -> Response:
        path = site.file(request.path_params["path"])
        if path is None:
            return _error(404, "not found")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    async def redraw(request: Request) -> Response:
        panel = await run_in_threadpool(site.panel_number, request)
        site.builder.redraw(panel)
        return JSONResponse({"queued": "redraw", "panel": panel}, status_code=202)

    async def variants(request: Request) -> Response:
        count = await _body(request, "count")
        if not 1 <= count <= MAX_VARIANTS:
            raise _BadRequest(f'"count" must be between 1 and {MAX_VARIANTS} (got {count})')
        panel = await run_in_threadpool(site.panel_number, request)
        site.builder.draw_variants(panel, count)
        return JSONResponse({"queued": "variants", "panel": panel, "count": count}, status_code=202)

    async def pick(request: Request) -> Response:
        from storyboard.edit import pick_seed

        seed = await _body(request, "seed")
        panel = panel_param(request)
        before = await run_in_threadpool(pick_seed, site.story_path, panel, seed)
        return JSONResponse({"panel": panel, "seed": seed, "before": before})

    routes = [
        Route("/", page),
        Route("/events", events),
        Route("/api/panels/{n}/redraw", action(site, redraw), methods=["POST"]),
        Route("/api/panels/{n}/variants", action(site, variants), methods=["POST"]),
        Route("/api/panels/{n}/pick", action(site, pick), methods=["POST"]),
        Route("/{path:path}", static, methods=["GET", "HEAD"]),
    ]
    return HostGuard(Starlette(routes=routes), host, port)
