"""The live page's event bus: build threads publish, every open `/events` stream receives.

Publishing is thread-safe and never blocks a build: each subscriber has a bounded queue on its own event loop, and
a subscriber too slow to keep up is dropped (its browser reconnects and catches up from the next build).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Event:
    kind: str  # build-started, panel-progress, panel-done, build-done, build-failed, variant-done, variants-done
    data: dict[str, Any] = field(default_factory=dict)


class _Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False

    def offer(self, event: Event | None) -> None:
        """Runs on the subscriber's loop."""
        if self.dropped:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            self.queue = asyncio.Queue(1)
            self.queue.put_nowait(None)


class EventBus:
    """Fan-out of build events to the open streams, remembering the last error for streams that open later."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[_Subscriber] = set()
        self._closed = False
        self.last_error: Event | None = None  # the build-failed event the page should show now, if any

    def publish(self, kind: str, **data: Any) -> None:
        event = Event(kind, data)
        with self._lock:
            if kind == "build-failed":
                self.last_error = event
            elif kind == "build-done":
                self.last_error = None
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber.loop.call_soon_threadsafe(subscriber.offer, event)
            except RuntimeError:  # its loop has closed: the server is shutting down
                pass

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Event | None]]:
        """A queue of events for the calling event loop's stream; None in it means the stream should end."""
        subscriber = _Subscriber(asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                subscriber.offer(None)
            else:
                if self.last_error is not None:
                    subscriber.offer(self.last_error)
                self._subscribers.add(subscriber)
        try:
            yield _QueueView(subscriber)  # type: ignore[misc]
        finally:
            with self._lock:
                self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        with self._lock:
            self._closed = True
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber.loop.call_soon_threadsafe(subscriber.offer, None)
            except RuntimeError:
                pass


class _QueueView:
    """`get()` from a subscriber's current queue (it is swapped for a one-item queue when it is dropped)."""

    def __init__(self, subscriber: _Subscriber) -> None:
        self._subscriber = subscriber

    async def get(self) -> Event | None:
        return await self._subscriber.queue.get()
