"""Atomic file writes: a temp file in the same folder, flushed, then renamed over the target.

A reader, or a build interrupted at any instant, sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import io
import logging
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from storyboard.errors import BuildError, FolderBusy

log = logging.getLogger("storyboard")


def atomic_write_bytes(path: str | Path, data: bytes, *, expect: bytes | None = None) -> bool:
    """Write `data` to `path` whole or not at all (a temp file renamed over it); whether it was written.

    With `expect`, only if the file still holds `expect`: a file saved meanwhile (an editor renaming its own temp
    file over it) is left as the user saved it, and nothing is written.
    """
    path = Path(path)
    if path.is_symlink():  # write what the link points to, as editors do, instead of replacing the link
        path = Path(os.path.realpath(path))
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own for every write, so that two threads writing one file never share a temp file; the
        # pid in it lets `remove_temp_files` recognise what a dead process left.
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:  # a rewritten file keeps its permissions (a private 0600 story); a new one gets the usual ones
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        if expect is not None:
            return _replace_if(tmp, path, data, expect)
        os.replace(tmp, path)
        return True
    except OSError as exc:
        raise BuildError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink(missing_ok=True)


def _replace_if(tmp: Path, path: Path, data: bytes, expect: bytes) -> bool:
    """Put `tmp` (holding `data`) in place of `path` if `path` holds `expect`.

    Where the system can swap two names atomically (Linux's renameat2), the new file is swapped in and what it
    displaced is checked afterwards: a save that came in between is swapped straight back, so it is never lost, not
    even for a moment's race. Elsewhere the file is compared right before the rename.
    """
    if not _exchange(tmp, path):
        if path.read_bytes() != expect:
            return False
        os.replace(tmp, path)
        return True
    for _ in range(8):
        displaced = tmp.read_bytes()
        if displaced == expect:
            return True
        _exchange(tmp, path)  # the user's save goes back; `tmp` holds what was in place a moment ago
        if tmp.read_bytes() == data:
            return False
    os.replace(tmp, path)  # saves kept arriving: the newest one displaced goes back in place
    return False


def _exchange(a: Path, b: Path) -> bool:
    """Swap the files named `a` and `b` in one step; False where the system cannot."""
    libc = _libc()
    if libc is None:
        return False
    at_cwd = -100  # AT_FDCWD
    if libc.renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), 2) == 0:  # RENAME_EXCHANGE
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # the file system or kernel cannot
        return False
    raise OSError(error, os.strerror(error), str(b))


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        return libc
    except (OSError, AttributeError):
        return None


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def encode_png(image: Image.Image, pnginfo: Any = None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=pnginfo)
    return buffer.getvalue()


def atomic_save_png(path: str | Path, image: Image.Image, pnginfo: Any = None) -> None:
    atomic_write_bytes(path, encode_png(image, pnginfo))


_TEMP_FILE = re.compile(r"^\..+\.\d+(-\w+)?\.tmp$")  # .<name>.<pid>-<random>.tmp (and the older .<pid>.tmp)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: setting and restoring the umask later could race with another thread creating a file.
_UMASK = _read_umask()
#: The permissions of a file made the usual way (open, then umask): for files first made under another name.
NEW_FILE_MODE = 0o666 & ~_UMASK


def read_regular_file(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them, or `ValueError` saying in a few words why
    not: no such file, a folder, a FIFO or device (which could block or never end), a loop of links, too large.

    The file is checked again once open, so a file swapped for a FIFO in between is refused too.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except ValueError:
        raise ValueError("the path holds a NUL character") from None
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except IsADirectoryError:
        raise ValueError("it is a folder") from None
    except PermissionError:
        raise ValueError("permission denied") from None
    except OSError as exc:
        problem = "a loop of symbolic links" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise ValueError(problem) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ValueError("it is a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe or a device?)")
    with os.fdopen(fd, "rb") as f:
        if info.st_size > limit:
            raise ValueError(f"it is {info.st_size // 1024} KiB; at most {limit // 1024} KiB")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"it is more than {limit // 1024} KiB; at most {limit // 1024} KiB")
    return data


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_complete_png(path: Path) -> bool:
    """Whether `path` is a PNG file that ends with its IEND chunk (a cheap check against truncated files)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(-12, 2)
            tail = f.read(12)
    except OSError:
        return False
    return head == PNG_SIGNATURE and tail == b"\0\0\0\0IEND\xaeB`\x82"


def remove_temp_files(folder: str | Path, subfolders: Sequence[str]) -> int:
    """Delete temp files that `atomic_write_bytes` left in `folder` and its `subfolders` when its process died;
    return how many.

    Call it only while holding `exclusive_lock(folder)`: then no live writer can own one of them.
    """
    folder = Path(folder)
    # Only where a build writes: `--out` may name a folder full of other things (the story's own, a home, /),
    # whose temp files belong to other programs and whose tree may be huge or unreadable.
    candidates = [folder.glob(".*.tmp")] + [(folder / sub).rglob(".*.tmp") for sub in subfolders]
    removed = 0
    for path in (p for found in candidates for p in found):
        if _TEMP_FILE.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@contextmanager
def exclusive_lock(folder: str | Path, what: str = "build", *, wait: bool = False) -> Iterator[bool]:
    """Hold ``<folder>/.lock`` while `what` runs, or raise `FolderBusy` at once naming the holder and its pid (with
    `wait`, say so and wait for it instead); yield whether the folder is locked.

    The lock is an advisory ``flock``: the operating system drops it when the holding process exits, however it
    dies (Ctrl-C, ``kill -9``, a crash), so a stale lock file never blocks the next build. Where ``fcntl`` does not
    exist (Windows) nothing is locked.
    """
    folder = Path(folder)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield False
        return
    created = _missing_parents(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise BuildError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid, _, other = os.pread(fd, 64, 0).decode("ascii", "replace").strip().partition(" ")
            busy = f"another {other or 'build'} of {folder} is running{f' (pid {pid})' if pid.isdigit() else ''}"
            if not wait:
                raise FolderBusy(f"{busy}; wait for it to finish") from None
            log.warning("%s; waiting for it to finish", busy)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {what}\n".encode("ascii"), 0)
        try:
            yield True
        except BaseException:
            if created:  # a first build that failed leaves no empty folders behind
                _remove_if_empty(folder / ".lock", created)
            raise
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def _missing_parents(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def _remove_if_empty(lock: Path, created: list[Path]) -> None:
    """Remove the lock file, empty folders under it and the `created` folders, if nothing else was written there."""
    folder = created[0]
    try:
        if [p for p in folder.rglob("*") if not p.is_dir()] not in ([], [lock]):
            return
        lock.unlink(missing_ok=True)
        for path in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            path.rmdir()
        for path in created:
            path.rmdir()
    except OSError:
        pass  # something appeared meanwhile: leave it


def user_cache_dir() -> Path:
    """Where storyboard keeps what it can recompute (model hashes, font subsets): $STORYBOARD_CACHE_DIR, else
    $XDG_CACHE_HOME/storyboard, else ~/.cache/storyboard."""
    if os.environ.get("STORYBOARD_CACHE_DIR"):
        return Path(os.environ["STORYBOARD_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "storyboard"
