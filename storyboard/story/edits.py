"""Story edits as transactions: storyboard never writes over a change to the story file it has not read.

Whoever writes the story file for the user (`storyboard pick`, the live page's Pick, `storyboard plan`) reads it,
applies its change and writes it back only if the file on disk still holds what it read, checked just before the
atomic rename; when the file changed meanwhile (the user saved it), the change is made again on what is there now,
a few times, and then refused. A file that does not parse is refused as it is: nothing is written over it.

Writers of one file are serialised by a lock per file in this process and by an advisory ``flock`` on the file's
folder across processes (a lock file beside the story would be a stray file in the user's folder).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from storyboard.errors import StoryChanged
from storyboard.files import atomic_write_bytes
from storyboard.story.document import StoryDocument, document_from_bytes
from storyboard.story.reader import read_bytes

T = TypeVar("T")
ATTEMPTS = 5

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def edit_story(path: str | Path, change: Callable[[StoryDocument], T], *, require_panels: bool = True) -> T:
    """Apply `change` to the story file at `path` as one transaction; return what `change` returned.

    `change` edits the document in place and may raise to refuse; it is called again on the file as it is now if
    the file changed before the write. Raises `StoryError` for a file that does not parse (and writes nothing), and
    `StoryChanged` when the file kept changing under the edit.
    """
    path = Path(path)
    with writing(path):
        for _ in range(ATTEMPTS):
            before = read_bytes(path)
            document = document_from_bytes(before, path, require_panels=require_panels)
            result = change(document)
            text = document.dump()
            document_from_bytes(text.encode("utf-8"), path, require_panels=require_panels)  # still a valid story
            if write_if_unchanged(path, before, text.encode("utf-8")):
                return result
    raise StoryChanged(f"{path} kept changing while storyboard was writing it; nothing was written, try again")


def write_if_unchanged(path: Path, before: bytes | None, data: bytes) -> bool:
    """Write `data` to `path` atomically if the file still holds `before` (`None`: if there is still no file);
    whether it was written. Call it while holding the file's lock (`writing`; `edit_story` holds it)."""
    if before is None:
        if path.exists():
            return False
        return atomic_write_bytes(path, data)
    return atomic_write_bytes(path, data, expect=before)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Hold the lock of the story file at `path` against other storyboard writers, in this process and others."""
    resolved = Path(os.path.realpath(path))
    with _locks_guard:
        lock = _locks.setdefault(resolved, threading.Lock())
    with lock, _folder_lock(resolved.parent):
        yield


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock across processes
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # an unreadable folder: the read that follows reports it
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
