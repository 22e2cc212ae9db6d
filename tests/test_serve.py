"""`storyboard serve` as a real process on a free port: its HTTP surface, Ctrl-C, and the live page in Chromium."""

from __future__ import annotations

import os
import re
import socket
import textwrap
import time
from pathlib import Path

import pytest
from serve_process import ServeProcess

from storyboard.errors import FolderBusy, StoryError
from storyboard.files import exclusive_lock

STORY = """
# A story for the live server.
title: Live story
render:
  width: 64
  height: 64
  steps: 4
  seed: 40
panels:
  - prompt: a red apple on a table   # the first panel
    caption: An apple
  - prompt: a green field
    caption: A field
  - prompt: a lighthouse at dusk
"""


@pytest.fixture
def story(tmp_path: Path) -> Path:
    path = tmp_path / "story.yaml"
    path.write_text(textwrap.dedent(STORY).lstrip("\n"), encoding="utf-8")
    return path


def wait_for(condition, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def drawn(log: Path) -> list[str]:
    return log.read_text().split("\n")[:-1] if log.exists() else []


def replace_file(path: Path, text: str) -> None:
    """Save as editors that write a new file and rename it over the old one do."""
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def test_http_surface_refuses_what_it_must(story, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "secret.txt").write_text("not for the web")
    server = ServeProcess(story, out, "--renderer", "small")
    try:
        assert (out / "index.html").is_file()
        status, page = server.request("GET", "/")
        assert status == 200 and b'<meta name="storyboard-token"' in page and b"EventSource" in page
        assert server.request("GET", "/panels/panel-01.png")[0] == 200
        assert server.request("GET", "/manifest.json")[1]["title"] == "Live story"
        token = server.token()

        # Writes need this run's token.
        assert server.request("POST", "/api/panels/1/redraw")[0] == 403
        assert server.request("POST", "/api/panels/1/redraw", headers={"X-Storyboard-Token": "guess"})[0] == 403
        status, reply = server.request("POST", "/api/panels/1/pick", {"seed": 5})
        assert status == 403 and story.read_text() == textwrap.dedent(STORY).lstrip("\n")
        # A name other than this server's (DNS rebinding) is refused, even with the token.
        for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1:1"):
            status, reply = server.request("GET", "/", headers={"Host": host})
            assert status == 400 and "answers only to" in reply["error"], host
        assert server.request("GET", "/", headers={"Host": f"localhost:{server.port}"})[0] == 200

        # Nothing outside the build folder, however it is spelled.
        os.symlink(tmp_path / "secret.txt", out / "link.txt")
        os.symlink(tmp_path, out / "up")
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/panels/..%2f..%2fsecret.txt", "/panels/../../story.yaml",
                     "/link.txt", "/up/secret.txt", "/.lock", "/%2Fetc%2Fpasswd", "//etc/passwd", "/cache"):
            status, body = server.request("GET", path)
            assert status == 404 and b"not for the web" not in str(body).encode(), path

        # Bad bodies: a 4xx with a one-line JSON error; nothing queued, nothing written.
        auth = {"X-Storyboard-Token": token}
        for path, raw, expected in [
            ("/api/panels/1/variants", b"{not json", "not JSON"),
            ("/api/panels/1/variants", b'{"count": "4"}', 'integer "count"'),
            ("/api/panels/1/variants", b'{"count": 0}', "between 1 and 100"),
            ("/api/panels/1/pick", b"[]", 'integer "seed"'),
            ("/api/panels/1/pick", b'{"seed": true}', 'integer "seed"'),
            ("/api/panels/1/pick", b'{"seed": -1}', "seed: must be between 0"),
            ("/api/panels/9/redraw", b"", "panel 9"),
        ]:
            status, reply = server.request("POST", path, headers=auth, raw=raw)
            assert 400 <= status < 500 and expected in reply["error"] and "\n" not in reply["error"], (path, reply)
        assert story.read_text() == textwrap.dedent(STORY).lstrip("\n")

        # A client that goes away in the middle of the event stream does not hurt the server.
        with socket.create_connection(("127.0.0.1", server.port)) as client:
            client.sendall(f"GET /events HTTP/1.1\r\nHost: localhost:{server.port}\r\n\r\n".encode())
            assert client.recv(100).startswith(b"HTTP/1.1 200")
        assert server.request("GET", "/manifest.json")[0] == 200

        assert server.interrupt() == 0
    finally:
        server.close()
    with exclusive_lock(out):  # released
        pass


def test_ctrl_c_mid_build_exits_cleanly_and_keeps_finished_panels(story, tmp_path):
    out, log = tmp_path / "out", tmp_path / "drawn.log"
    text = textwrap.dedent(STORY).lstrip("\n") + "".join(f"  - prompt: extra scene {i}\n" for i in range(5))
    story.write_text(text)
    env = {"SMALL_RENDERER_LOG": str(log), "SMALL_RENDERER_DELAY": "0.6"}
    server = ServeProcess(story, out, "--renderer", "small", env=env, wait=0)
    try:
        wait_for(lambda: len(drawn(log)) >= 2, "two panels drawn")
        started = time.monotonic()
        assert server.interrupt() == 0
        assert time.monotonic() - started < 5  # the panel being drawn stops at its next step
    finally:
        server.close()
    finished = len(drawn(log))
    assert 2 <= finished < 8
    assert [p.name for p in out.rglob("*.tmp")] == []

    from conftest import storyboard_process

    build = storyboard_process("build", str(story), "--out", str(out), "--renderer", "small",
                               env={"SMALL_RENDERER_LOG": str(log)})
    stdout, stderr = build.communicate(timeout=60)
    assert build.returncode == 0, stderr
    assert stdout.startswith(f"rendered {8 - finished}, reused {finished} ")


def test_a_bad_address_is_one_line(story, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        from conftest import storyboard_process

        process = storyboard_process("serve", str(story), "--out", str(tmp_path / "out"), "--renderer", "small",
                                     "--port", str(port))
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert re.fullmatch(rf"Error: cannot listen on 127\.0\.0\.1:{port}: .+\n", stderr), stderr


# --------------------------------------------------------------------------- the live page in Chromium


WATCH_EVENTS = """
window.seen = [];
window.marker = "still the same page";
const watch = new EventSource("/events");
for (const kind of ["build-started", "panel-progress", "panel-done", "build-done", "build-failed",
                    "build-cancelled", "variant-done", "variants-done"])
  watch.addEventListener(kind, e => window.seen.push([kind, JSON.parse(e.data)]));
new Promise(resolve => watch.onopen = () => resolve(true));
"""


def poll(tab, expression: str, what: str, timeout: float = 30):
    return wait_for(lambda: tab.evaluate(expression), what, timeout)


def builds_done(tab) -> int:
    return tab.evaluate("window.seen.filter(e => e[0] === 'build-done').length")


def panel_key(tab, n: int) -> str:
    return tab.evaluate(f"document.querySelector('#panel-{n} .art img').dataset.key || ''")


def manifest_key(out: Path, n: int) -> str:
    import json

    return json.loads((out / "manifest.json").read_text())["panels"][n - 1]["key"]


def test_live_page_follows_edits_errors_and_actions(chromium, story, tmp_path):
    out, log = tmp_path / "out", tmp_path / "drawn.log"
    server = ServeProcess(story, out, "--renderer", "small",
                          env={"SMALL_RENDERER_LOG": str(log), "SMALL_RENDERER_DELAY": "0.4"})
    tab = chromium.open(server.url, 1280, 300)
    original = story.read_text()
    try:
        tab.evaluate(WATCH_EVENTS)
        tab.evaluate("window.scrollTo(0, 120)")
        assert tab.evaluate("window.scrollY") == 120
        before = tab.evaluate("document.querySelector('#panel-2 .art img').src")

        # An edit appears without a reload; its progress arrives step by step.
        replace_file(story, original.replace("a green field", "a yellow field"))
        poll(tab, "window.seen.some(e => e[0] === 'build-done')", "the rebuild")
        assert tab.evaluate("window.marker") == "still the same page"
        assert tab.evaluate("window.scrollY") == 120
        steps = tab.evaluate("window.seen.filter(e => e[0] === 'panel-progress' && e[1].panel === 2)"
                             ".map(e => [e[1].step, e[1].total])")
        assert steps == [[0, 4], [1, 4], [2, 4], [3, 4], [4, 4]]
        assert [line.split()[0] for line in drawn(log)][-1] == "2" and len(drawn(log)) == 4
        poll(tab, f"document.querySelector('#panel-2 .art img').dataset.key === '{manifest_key(out, 2)}'",
             "the new image of panel 2")
        assert tab.evaluate("document.querySelector('#panel-2 .art img').src") != before
        poll(tab, "(() => { const i = document.querySelector('#panel-2 .art img');"
                  " return i.complete && i.naturalWidth === 64; })()", "the new image to load")
        assert "a yellow field" in tab.evaluate("document.querySelector('#panel-2 details').textContent")

        # Bad YAML: the last good page stays, with the CLI's one-line error over it; the next good save clears it.
        replace_file(story, original.replace("  - prompt: a green field", "  - prompt: [a green field"))
        message = poll(tab, "(() => { const e = document.getElementById('sb-error');"
                            " return !e.hidden && e.textContent; })()", "the error overlay")
        assert re.fullmatch(rf"Error: {re.escape(str(story))}:\d+: .+", message), message
        assert tab.evaluate("document.querySelectorAll('figure.panel').length") == 3
        replace_file(story, original.replace("a green field", "a yellow field"))
        poll(tab, "document.getElementById('sb-error').hidden", "the overlay to clear")

        # Two saves in quick succession: the page ends matching the second.
        mark = tab.evaluate("window.seen.length")
        story.write_text(original.replace("a red apple", "a blue apple"))
        poll(tab, f"window.seen.slice({mark}).some(e => e[0] === 'panel-progress' && e[1].step === 1)",
             "the first save's build to draw")
        story.write_text(original.replace("a red apple", "a purple apple"))
        poll(tab, f"window.seen.slice({mark}).some(e => e[0] === 'build-done') && "
                  "document.querySelector('#panel-1 details').textContent.includes('a purple apple')",
             "the page of the second save")
        kinds = tab.evaluate(f"window.seen.slice({mark}).map(e => e[0]).filter(k => k.startsWith('build'))")
        assert kinds == ["build-started", "build-cancelled", "build-started", "build-done"], kinds
        wait_for(lambda: panel_key(tab, 1) == manifest_key(out, 1), "panel 1's image to match the manifest")
        assert "purple apple" in (out / "manifest.json").read_text()

        # Redraw from the page = build --panel N --force.
        count = len(drawn(log))
        done = builds_done(tab)
        tab.evaluate("document.querySelector('#panel-3 [data-action=redraw]').click()")
        poll(tab, f"window.seen.filter(e => e[0] === 'build-done').length > {done}", "the redraw")
        assert [line.split()[0] for line in drawn(log)[count:]] == ["3"]

        # Variants in place, then pick one: one line of the YAML changes, and the next build draws nothing.
        tab.evaluate("document.querySelector('#panel-3 [data-action=variants]').click()")
        poll(tab, "document.querySelectorAll('#panel-3 .sb-variants img').length === 4 && "
                  "[...document.querySelectorAll('#panel-3 .sb-variants img')]"
                  ".every(i => i.complete && i.naturalWidth)",
             "four candidates")
        seeds = tab.evaluate("[...document.querySelectorAll('#panel-3 .sb-variants button')].map(b => b.dataset.seed)")
        assert seeds == ["42", "43", "44", "45"]
        edited_before = story.read_text()
        count = len(drawn(log))
        done = builds_done(tab)
        tab.evaluate("document.querySelector('#panel-3 .sb-variants [data-seed=\"44\"]').click()")
        poll(tab, f"window.seen.filter(e => e[0] === 'build-done').length > {done}", "the build after the pick")
        changed = [(a, b) for a, b in zip(edited_before.splitlines(), story.read_text().splitlines()) if a != b]
        added = len(story.read_text().splitlines()) - len(edited_before.splitlines())
        assert (changed, added) == ([], 1) or (len(changed) == 1 and added == 0), (changed, added)
        assert "    seed: 44" in story.read_text()
        assert len(drawn(log)) == count  # the picked candidate is reused from the cache
        wait_for(lambda: panel_key(tab, 3) == manifest_key(out, 3), "panel 3 shows the picked seed")
        assert tab.evaluate("document.querySelector('#panel-3 details summary').textContent").endswith("seed 44")
        assert server.interrupt() == 0
    finally:
        tab.close()
        server.close()


def test_host_guard_accepts_this_server_only():
    from storyboard.serve.app import HostGuard

    local = HostGuard(None, "127.0.0.1", 8000)
    assert local.allowed("127.0.0.1:8000") and local.allowed("localhost:8000") and local.allowed("LOCALHOST:8000")
    for host in ("127.0.0.1:8001", "evil.example:8000", "evil.example", "", "192.168.1.5:8000", "[::1]:8000"):
        assert not local.allowed(host), host
    # Bound to every address: any IP address of the machine, but no DNS name a web site could point at it.
    everywhere = HostGuard(None, "0.0.0.0", 8000)
    assert everywhere.allowed("192.168.1.5:8000") and everywhere.allowed("[::1]:8000")
    assert everywhere.allowed("localhost:8000")
    assert not everywhere.allowed("evil.example:8000") and not everywhere.allowed("192.168.1.5:9000")


class Refusing:
    """A builder that refuses every redraw with the error it is given."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def redraw(self, panel: int) -> None:
        raise self.error


@pytest.mark.parametrize("error, status", [
    (FolderBusy("another build of out is running (pid 7); wait for it to finish"), 409),
    (StoryError("another panel says so"), 400),  # the word "another" does not make a conflict
])
def test_an_action_answers_409_to_a_busy_folder_and_400_to_other_errors(story, tmp_path, error, status):
    from starlette.testclient import TestClient

    from storyboard.serve.app import TOKEN_HEADER, LiveSite, create_app
    from storyboard.serve.events import EventBus

    site = LiveSite(story, tmp_path / "out", Refusing(error), EventBus(), "token")  # type: ignore[arg-type]
    with TestClient(create_app(site, "127.0.0.1", 8000), base_url="http://127.0.0.1:8000") as client:
        reply = client.post("/api/panels/1/redraw", headers={TOKEN_HEADER: "token"})
    assert (reply.status_code, reply.json()) == (status, {"error": f"Error: {error}"})
