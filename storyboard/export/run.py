"""Making the asked formats, each only when what it is made from changed, each file whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard import __version__
from storyboard.errors import BuildError, ExportError
from storyboard.export.built import Built
from storyboard.export.formats import Format
from storyboard.files import NEW_FILE_MODE, atomic_write_text
from storyboard.resolve import content_key


class ExportProgress:
    """Receives export events; the CLI shows them. The default ignores them."""

    def making(self, name: str, path: Path, frames: int = 0) -> None:
        """`name` is being made into `path`; `frames` > 0 when it reports each frame (`frame`)."""

    def frame(self, done: int, total: int) -> None: ...


@dataclass(frozen=True)
class Exported:
    format: str
    path: Path
    made: bool  # False: the file was already made from the same inputs, and left as it was


def export_built(built: Built, formats: list[Format], progress: ExportProgress | None = None) -> list[Exported]:
    """Make each of `formats` for `built` into its file in the build folder, unless the file is there and was made
    from the same inputs (`exports.json` keeps what each was made from): then its bytes and mtime stay.

    A file is made under a temporary name in the folder's scratch folder and renamed into place once complete,
    so an interrupted export leaves the previous file (or none) under the final name, never half of one.
    """
    progress = progress or ExportProgress()
    folder = built.folder
    for board in built.boards:
        if not built.picture(board).is_file():
            raise ExportError(f"{built.picture(board)} is missing: build the story before exporting it")
    record = _read_record(folder.exports)
    inputs = built.inputs()
    done: list[Exported] = []
    for fmt in formats:
        path = folder.export_file(fmt.name, built.book_name)
        key = content_key({"format": fmt.name, "format_version": fmt.version, "storyboard": __version__, **inputs})
        before = record.get(fmt.name)
        if isinstance(before, dict) and before.get("key") == key and before.get("file") == path.name \
                and path.is_file():
            done.append(Exported(fmt.name, path, made=False))
            continue
        _make(fmt, built, path, progress)
        if isinstance(before, dict) and isinstance(before.get("file"), str) and before["file"] != path.name:
            stale = folder / before["file"]  # made for an earlier title
            if stale.parent == folder.root and stale.suffix == path.suffix:
                stale.unlink(missing_ok=True)
        record[fmt.name] = {"key": key, "file": path.name}
        atomic_write_text(folder.exports, json.dumps(record, indent=2, sort_keys=True) + "\n")
        done.append(Exported(fmt.name, path, made=True))
    return done


def _make(fmt: Format, built: Built, path: Path, progress: ExportProgress) -> None:
    scratch = built.folder.scratch_dir
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=scratch)
        os.close(fd)
    except OSError as exc:
        raise BuildError(f"cannot write in {scratch}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        fmt.make(built, tmp, progress)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, NEW_FILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        raise BuildError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
        try:
            scratch.rmdir()
        except OSError:
            pass


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
