"""A small driver for a real headless Chromium over the DevTools protocol (a websocket, via websocket-client)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


MISSING = ("chromium is not installed: `sudo apt-get install chromium` (Debian/Ubuntu), or set STORYBOARD_CHROMIUM "
           "to a Chrome/Chromium executable")


def find_chromium() -> str | None:
    explicit = os.environ.get("STORYBOARD_CHROMIUM")
    if explicit:
        return explicit
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """One headless browser process; `open()` gives a fresh tab at a given viewport size."""

    def __init__(self, executable: str, timeout: float = 60) -> None:
        import websocket

        self.profile = tempfile.mkdtemp(prefix="storyboard-chromium-")
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--hide-scrollbars", "--mute-audio",
             f"--user-data-dir={self.profile}", "--remote-debugging-port=0", "--allow-file-access-from-files",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        url = self._devtools_url(timeout)
        self.ws = websocket.create_connection(url, timeout=timeout, max_size=None, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def _devtools_url(self, timeout: float) -> str:
        found: list[str] = []
        lines: list[str] = []

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                lines.append(line)
                match = re.search(r"DevTools listening on (ws://\S+)", line)
                if match:
                    found.append(match.group(1))
                    break

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            self.close()
            raise RuntimeError("chromium did not start:\n" + "".join(lines[-20:]))
        # Keep draining stderr so a chatty browser never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.process.stderr or ()], daemon=True).start()
        return found[0]

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self.events.pop(n)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def open(self, url: str, width: int, height: int = 900) -> Tab:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        tab = Tab(self, target, session)
        tab.resize(width, height)
        self.call("Page.enable", session)
        self.call("Page.navigate", session, url=url)
        self.wait_event("Page.loadEventFired", session)
        tab.evaluate("document.fonts.ready.then(() => true)")
        return tab

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


class Tab:
    def __init__(self, browser: Chromium, target: str, session: str) -> None:
        self.browser, self.target, self.session = browser, target, session
        self.width = 0

    def resize(self, width: int, height: int) -> None:
        self.width = width
        self.browser.call("Emulation.setDeviceMetricsOverride", self.session, width=width, height=height,
                          deviceScaleFactor=1, mobile=width < 600)

    def evaluate(self, expression: str) -> Any:
        result = self.browser.call("Runtime.evaluate", self.session, expression=expression, returnByValue=True,
                                   awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def key(self, key: str, key_code: int, text: str = "") -> None:
        """Press and release a key as a user would (`text` for keys that type, like Enter's "\r")."""
        down: dict[str, Any] = {"text": text} if text else {}
        self.browser.call("Input.dispatchKeyEvent", self.session, type="keyDown", key=key, code=key,
                          windowsVirtualKeyCode=key_code, **down)
        self.browser.call("Input.dispatchKeyEvent", self.session, type="keyUp", key=key, code=key,
                          windowsVirtualKeyCode=key_code)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            height = self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1})
        data = self.browser.call("Page.captureScreenshot", self.session, **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.browser.call("Target.closeTarget", targetId=self.target)
