"""Where a model is, and what it is, read from disk alone: no torch, no diffusers, no network.

`render.model` (or `--model`) names a hub id (read from the normal Hugging Face cache), a local diffusers folder, or
a single `.safetensors` / `.ckpt` checkpoint. A model's fingerprint (the hub commit, a folder's configs and file
stamps, a checkpoint's sha256) is what its panels' keys hold.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.errors import BuildError, ModelNotFound, RenderError
from storyboard.files import atomic_write_text, user_cache_dir
from storyboard.hub import HUB_ID, cached_snapshot, first_line, hub_cache_dir, hub_offline, looks_local

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
MODEL_INDEX = "model_index.json"


@dataclass(frozen=True)
class ModelSource:
    """What `render.model` names, found without torch and without the network."""

    name: str  # as the user wrote it
    kind: str  # "hub", "folder" or "file"
    path: Path | None = None  # folder or file; for "hub" the cached snapshot, if any
    revision: str | None = None  # hub: the commit of the cached snapshot


def locate(model: str) -> ModelSource:
    """Decide whether `model` is a checkpoint file, a diffusers folder or a hub id."""
    path = Path(model).expanduser()
    if path.is_file():
        return ModelSource(model, "file", path.resolve())
    if path.is_dir():
        return ModelSource(model, "folder", path.resolve())
    if model.lower().endswith(CHECKPOINT_SUFFIXES) or looks_local(model):
        raise ModelNotFound(f"model {model!r} not found: no such file or folder ({path.resolve()}); "
                            f"{fix_hint(None)}")
    cached = cached_snapshot(model, MODEL_INDEX)
    if cached:
        return ModelSource(model, "hub", cached[0], cached[1])
    return ModelSource(model, "hub")


def locate_config(config: str) -> ModelSource:
    """What `render.config` names: the diffusers folder or hub id whose configs a single-file checkpoint loads with."""
    source = locate(config)
    if source.kind == "file":
        raise ModelNotFound(f"render.config {config!r} is a file; it must be a diffusers folder or hub id")
    return source


def fix_hint(repo_id: str | None) -> str:
    download = ""
    if repo_id:
        download = f"download it with `storyboard download {repo_id}`, "
    return f"{download}pass a local diffusers folder or .safetensors file with --model, or use --renderer draft"


def not_cached(repo_id: str) -> ModelNotFound:
    """The error for a hub model that is not in the cache: with HF_HUB_OFFLINE=1 it cannot be fetched; without it,
    nothing fetched it yet (fetching is `prepare`'s or `storyboard download`'s, never `identity`'s)."""
    if hub_offline():
        return ModelNotFound(f"model {repo_id!r} is not in the Hugging Face cache ({hub_cache_dir()}) and "
                             f"HF_HUB_OFFLINE=1 forbids downloading it; {fix_hint(repo_id)}")
    return ModelNotFound(f"model {repo_id!r} is not in the Hugging Face cache ({hub_cache_dir()}); "
                         f"{fix_hint(repo_id)}")


def read_model_index(folder: Path) -> dict[str, Any]:
    """A diffusers folder's model_index.json; {} when there is none or it cannot be read (see `check_model_index`)."""
    try:
        return json.loads((folder / MODEL_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def check_model_index(source: ModelSource, what: str = "model") -> dict[str, Any]:
    """The model_index.json of a folder about to be loaded. A folder without one is not a diffusers pipeline
    (`ModelNotFound`); one that is there but broken is reported as what it is."""
    index_file = Path(source.path or source.name) / MODEL_INDEX
    if not index_file.is_file():
        raise ModelNotFound(f"{what} {source.name!r} is a folder without {MODEL_INDEX}, so not a diffusers pipeline; "
                            f"{fix_hint(None)}")
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RenderError(f"cannot load {what} {source.name!r}: its {MODEL_INDEX} cannot be read "
                          f"({type(exc).__name__}: {first_line(exc)})") from None
    if not isinstance(index, dict):
        raise RenderError(f"cannot load {what} {source.name!r}: its {MODEL_INDEX} is not a JSON object")
    return index


def pipeline_class_name(source: ModelSource) -> str:
    """The pipeline class a folder or cached hub model names, read from its model_index.json ('' if unknown)."""
    if source.path is None or source.kind == "file":
        return ""
    return str(read_model_index(source.path).get("_class_name", ""))


# --------------------------------------------------------------------------- cheap fingerprints


_folder_hashes: dict[tuple[Path, tuple[tuple[str, int, int], ...]], str] = {}
_file_hashes: dict[tuple[str, int, int], str] = {}


def _folder_files(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(relative name, size, mtime) of every file in a model folder, hidden ones left out: cheap, no reading."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        stat = path.stat()
        found.append((rel.as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def folder_fingerprint(folder: Path) -> str:
    """sha256 over a diffusers folder: the contents of its *.json configs, and the names, sizes and modification
    times of every other file (weights, tokenizer files).

    Remembered by the folder's file list with sizes and times, so a folder saved again in place (a fine-tune
    written over the old weights, an edited config) gets a new fingerprint in a process that runs for hours.
    """
    files = _folder_files(folder)
    if (folder, files) in _folder_hashes:
        return _folder_hashes[folder, files]
    digest = hashlib.sha256()
    for rel, size, mtime_ns in files:
        digest.update(rel.encode() + b"\0")
        if rel.endswith(".json"):
            digest.update((folder / rel).read_bytes())
        else:
            digest.update(f"{size}:{mtime_ns}".encode())
        digest.update(b"\0")
    if len(_folder_hashes) > 64:
        _folder_hashes.clear()
    _folder_hashes[folder, files] = digest.hexdigest()
    return _folder_hashes[folder, files]


def model_stamp(model: str) -> tuple[Any, ...]:
    """What changes when the model `model` names changes on disk, read cheaply (stat calls, the hub's ref file):
    part of the memo key of identities, so a long-running process never keeps a stale one."""
    path = Path(model).expanduser()
    try:
        if path.is_file():
            stat = path.stat()
            return ("file", str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if path.is_dir():
            return ("folder", str(path.resolve()), _folder_files(path))
    except OSError:
        return ("gone", model)
    return ("hub", cached_snapshot(model, MODEL_INDEX) if HUB_ID.match(model) else None)


def file_sha256(path: Path) -> str:
    """sha256 of a checkpoint file, remembered by path, size and mtime in `<user cache>/storyboard/hashes.json`
    (several GB take seconds to hash; the second build should not)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _file_hashes:
        return _file_hashes[key]
    store = user_cache_dir() / "hashes.json"
    try:
        known = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    entry = known.get(str(path)) if isinstance(known, dict) else None
    if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        sha = str(entry.get("sha256"))
    else:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        sha = digest.hexdigest()
        known = known if isinstance(known, dict) else {}
        known[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
        try:
            atomic_write_text(store, json.dumps(known, indent=1, sort_keys=True))
        except BuildError:
            pass  # an unwritable cache only costs the next build a re-hash
    _file_hashes[key] = sha
    return sha


def model_identity(source: ModelSource) -> dict[str, Any]:
    if source.kind == "file":
        sha = file_sha256(source.path)
        # `model_hash` is the A1111 "AutoV2" short hash, as shown by civitai and in A1111 PNG parameters.
        return {"model": source.name, "sha256": sha, "model_hash": sha[:10]}
    if source.kind == "folder":
        return {"model": source.name, "folder_sha256": folder_fingerprint(source.path)}
    return {"model": source.name, "revision": source.revision}
