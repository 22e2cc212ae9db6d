"""A real `storyboard serve` process on a free port, for tests and benchmarks, with a small HTTP client."""

from __future__ import annotations

import http.client
import json
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from conftest import storyboard_process


class ServeProcess:
    def __init__(self, story: Path, out: Path, *args: str, env: dict[str, str] | None = None,
                 wait: float = 60) -> None:
        self.process = storyboard_process("serve", str(story), "--out", str(out), "--port", "0", *args, env=env)
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.process.stdout, self.stdout.put), daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr, self.stderr.append), daemon=True).start()
        self.port = 0
        if wait:
            self.wait_serving(wait)

    @staticmethod
    def _read(stream: Any, put: Any) -> None:
        for line in stream:
            put(line)

    def wait_serving(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.stdout.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise RuntimeError(f"serve exited {self.process.returncode}: {''.join(self.stderr)}") from None
                continue
            match = re.fullmatch(r"Serving http://127\.0\.0\.1:(\d+)/\n", line)
            if match:
                self.port = int(match.group(1))
                return line
            raise AssertionError(f"unexpected output {line!r}")
        raise TimeoutError("serve did not print its address")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw: bytes | None = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            connection.request(method, path, body=data, headers=headers or {})
            reply = connection.getresponse()
            content = reply.read()
        finally:
            connection.close()
        try:
            return reply.status, json.loads(content)
        except ValueError:
            return reply.status, content

    def token(self) -> str:
        status, page = self.request("GET", "/")
        assert status == 200
        return re.search(rb'<meta name="storyboard-token" content="([^"]+)">', page).group(1).decode()

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C, as a terminal sends it; the exit status."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)  # tests/run_storyboard.py: every thread's stack on stderr
            time.sleep(1)
            self.process.kill()
            self.process.wait()
            time.sleep(0.2)
            raise AssertionError(f"serve did not stop within {timeout} s of Ctrl-C; its stderr:\n"
                                 + "".join(self.stderr)) from None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
