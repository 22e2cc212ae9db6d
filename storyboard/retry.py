"""One retry policy for every remote service: exponential backoff with jitter, and hard time limits.

The planner's LLM providers and the remote renderers both call `retrying`. A call that raises
`ServiceUnavailable` (rate limit, server error, timeout, dropped connection) is tried again after a pause; any other
error passes straight through.

SDK timeouts bound each socket read, so a server that trickles a byte now and then would hold them forever; the
limits here bound the whole attempt (`timeout`) and, for a renderer, the whole panel with all its retries and
pauses (`deadline`). A request past its limit is abandoned in its daemon thread.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from storyboard.errors import ServiceUnavailable

T = TypeVar("T")

BACKOFF_ENV = "STORYBOARD_BACKOFF"
_OLD_BACKOFF_ENV = "STORYBOARD_PLAN_BACKOFF"  # its first name, when only the planner retried


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # attempts after the first
    backoff: float = 1.0  # seconds before the first retry; doubled for each one after
    max_backoff: float = 30.0
    max_retry_after: float = 60.0  # a server asking for a longer pause gets a clear error instead of a long wait

    @classmethod
    def from_env(cls, retries: int = 3) -> RetryPolicy:
        """The default policy; `STORYBOARD_BACKOFF` (seconds) sets the base delay, e.g. 0 in tests."""
        raw = os.environ.get(BACKOFF_ENV) or os.environ.get(_OLD_BACKOFF_ENV)
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


class Deadline:
    """A moment after which no more time is spent on something (a panel): every attempt and pause fits before it."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def left(self) -> float:
        return max(0.0, self._end - self._clock())


def retrying(call: Callable[[float], T], *, policy: RetryPolicy, timeout: float,
             late: Callable[[float], ServiceUnavailable], deadline: Deadline | None = None,
             notify: Callable[[str], None] = lambda line: None,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """`call(seconds)`, retried on `ServiceUnavailable`; other errors pass straight through.

    Each attempt gets `timeout` seconds (less when `deadline` is nearer) and is passed that number, for the SDK's own
    timeout; `late(seconds)` is the error for an attempt that took longer. A retry the deadline leaves no time for
    is not made: the last error is raised, saying so.
    """
    attempts = policy.retries + 1
    for attempt in range(1, attempts + 1):
        budget = timeout if deadline is None else min(timeout, deadline.left())
        try:
            if budget <= 0:
                raise late(0.0)
            return within(budget, lambda: call(budget), late)  # noqa: B023 - called in this iteration
        except ServiceUnavailable as exc:
            error = type(exc)
            wait = exc.retry_after
            if wait is not None and wait > policy.max_retry_after:
                raise error(f"{exc}; the server asks to wait {wait:g} s, try again later") from None
            if attempt == attempts:
                tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
                raise error(f"{exc}; gave up after {tries}") from None
            pause = policy.delay(attempt, wait)
            if deadline is not None and pause >= deadline.left():
                raise error(f"{exc}; no time left for another try within {deadline.seconds:g} s") from None
            notify(f"{exc}; retrying in {pause:.1f} s (attempt {attempt + 1} of {attempts})")
            sleep(pause)
    raise AssertionError("unreachable")


def within(seconds: float, call: Callable[[], T], late: Callable[[float], ServiceUnavailable]) -> T:
    """Run `call` in a daemon thread; stop waiting after `seconds`, plus a moment in which the SDK's own timeout,
    if it works, fires first, and raise `late(seconds)`."""
    result: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # handed to the caller's thread, never printed by this one
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="storyboard-request", daemon=True).start()
    if not done.wait(seconds + min(1.0, seconds / 2)):
        raise late(seconds)
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]
