"""`storyboard serve`: build once, serve the build folder with a live page, rebuild on every save."""

from __future__ import annotations

import secrets
import socket
import webbrowser
from collections.abc import Callable
from pathlib import Path

from storyboard.errors import ServeError, StoryError
from storyboard.render import Renderer
from storyboard.serve.app import WILDCARD_HOSTS, LiveSite, create_app
from storyboard.serve.builder import Builder
from storyboard.serve.events import EventBus
from storyboard.serve.watch import Watcher, referenced_paths
from storyboard.session import Session
from storyboard.story import load_story


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), made before the first build so a taken port fails
    at once."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in WILDCARD_HOSTS else host
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"


def serve(story_path: str | Path, out_dir: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          open_browser: bool = False, renderer: str | Renderer | None = None, model: str | None = None,
          say: Callable[[str], None] = print, warn: Callable[[str], None] = print, export: str = "") -> None:
    """Build the story, serve its page on host:port and rebuild on every save, until interrupted (Ctrl-C).

    `export` names formats (`storyboard export --format`) to export again after each build."""
    import uvicorn

    story_path = Path(story_path)
    token = secrets.token_urlsafe(32)
    with Session(story_path, out_dir, renderer=renderer, model=model) as session:
        sock = listen(host, port)
        port = sock.getsockname()[1]
        bus = EventBus()

        def paths() -> set[Path]:
            try:
                story = load_story(story_path)
            except StoryError:
                story = None
            return referenced_paths(story_path, story, model)

        watcher = Watcher(paths, lambda: builder.story_saved())
        builder = Builder(session, bus, after_build=watcher.refresh, export=export)
        site = LiveSite(story_path, session.out, builder, bus, token)
        server = uvicorn.Server(uvicorn.Config(create_app(site, host, port), log_level="warning", lifespan="off",
                                               timeout_graceful_shutdown=1))
        try:
            builder.start()
            watcher.start()
            builder.story_saved()
            builder.wait_idle(1)
            if bus.last_error is not None:  # the page shows it too; the server stays up for the fix
                warn(bus.last_error.data["error"])
            url = url_of(host, port)
            say(f"Serving {url}")
            if host in WILDCARD_HOSTS:
                warn(f"Warning: listening on every network address ({host or '*'}): anyone who can reach this "
                     "machine can see the page and, with the token in it, redraw panels and edit the story file")
            if open_browser:
                webbrowser.open(url)
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
        finally:
            bus.close()
            watcher.stop()
            builder.stop()
            sock.close()
