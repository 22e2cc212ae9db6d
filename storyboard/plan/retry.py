"""One retry policy for every provider: exponential backoff with jitter, and a hard deadline on each attempt.

SDK timeouts bound each socket read, so a server that trickles a byte now and then would hold them forever; the
deadline here bounds the whole attempt. A request past its deadline is abandoned in its daemon thread.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from storyboard.errors import ProviderUnavailable
from storyboard.plan.backend import ChatBackend, Message

BACKOFF_ENV = "STORYBOARD_PLAN_BACKOFF"


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # attempts after the first
    backoff: float = 1.0  # seconds before the first retry; doubled for each one after
    max_backoff: float = 30.0
    max_retry_after: float = 60.0  # a server asking for a longer pause gets a clear error instead of a long wait

    @classmethod
    def from_env(cls, retries: int = 3) -> RetryPolicy:
        """The default policy; `STORYBOARD_PLAN_BACKOFF` (seconds) sets the base delay, e.g. 0 in tests."""
        raw = os.environ.get(BACKOFF_ENV)
        try:
            backoff = float(raw) if raw else cls.backoff
        except ValueError:
            backoff = cls.backoff
        return cls(retries=max(0, retries), backoff=max(0.0, backoff))

    def delay(self, retry: int, server_asked: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        if server_asked is not None:
            return server_asked
        base = min(self.max_backoff, self.backoff * 2 ** (retry - 1))
        return base * (0.5 + random.random() / 2)  # jitter keeps many clients from retrying in lockstep


def ask(backend: ChatBackend, messages: Sequence[Message], *, timeout: float, policy: RetryPolicy,
        notify: Callable[[str], None] = lambda line: None, sleep: Callable[[float], None] = time.sleep) -> str:
    """`backend.complete(messages)`, retried on `ProviderUnavailable`; other errors pass straight through."""
    attempts = policy.retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return _within(timeout, lambda: backend.complete(messages, timeout=timeout),
                           f"{backend.provider} {backend.model} did not finish answering within {timeout:g} s")
        except ProviderUnavailable as exc:
            wait = exc.retry_after
            if wait is not None and wait > policy.max_retry_after:
                raise ProviderUnavailable(f"{exc}; the server asks to wait {wait:g} s, try again later") from None
            if attempt == attempts:
                tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
                raise ProviderUnavailable(f"{exc}; gave up after {tries}") from None
            pause = policy.delay(attempt, wait)
            notify(f"{exc}; retrying in {pause:.1f} s (attempt {attempt + 1} of {attempts})")
            sleep(pause)
    raise AssertionError("unreachable")


def _within(seconds: float, call: Callable[[], str], message: str) -> str:
    """Run `call` in a daemon thread; stop waiting after `seconds`, plus a moment in which the SDK's own timeout,
    if it works, fires first."""
    result: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # handed to the caller's thread, never printed by this one
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="storyboard-plan-request", daemon=True).start()
    if not done.wait(seconds + min(1.0, seconds / 2)):
        raise ProviderUnavailable(message)
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]
