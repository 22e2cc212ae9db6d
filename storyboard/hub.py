"""The Hugging Face hub as storyboard reads it: where its cache is, whether the network is allowed, what a repo id
looks like, and what the cache already holds, all without importing huggingface_hub, torch or diffusers.

The renderer (`storyboard.render.diffusers`) and the checker (`storyboard.check`) both stand on this, so that a model
counts as "cached" and a name as "a hub id" the same way for both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

#: What a hub repo id looks like: ``owner/name`` (or a bare legacy name such as ``gpt2``).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, found the way huggingface_hub finds it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE forbids the network, read now (huggingface_hub reads it once, at its import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def looks_local(name: str) -> bool:
    """Whether `name` can only mean a path on this machine (absolute, relative, Windows-style, or no repo id)."""
    return (Path(name).expanduser().is_absolute() or name.startswith((".", "~")) or "\\" in name
            or not HUB_ID.match(name))


def cached_snapshot(repo_id: str, needs: str, revision: str = "main") -> tuple[Path, str] | None:
    """The cached snapshot folder and commit of a hub repo whose snapshot holds the file `needs` (e.g.
    ``model_index.json``), or None; reads the cache's files only."""
    repo = hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / revision
    try:
        commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    except OSError:
        return None
    snapshot = repo / "snapshots" / commit
    if not (snapshot / needs).is_file():
        return None
    return snapshot, commit


def cached_file(repo_id: str, filename: str, revision: str = "main") -> tuple[Path, str] | None:
    """One file of a hub repo in the cache (`filename` relative to the repo's root) and the commit of its snapshot,
    or None; reads the cache's files only."""
    found = cached_snapshot(repo_id, filename, revision)
    return (found[0] / filename, found[1]) if found else None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a one-line error shows."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def causes(exc: BaseException) -> tuple[set[str], BaseException]:
    """The type names along `exc`'s chain of causes, and the deepest cause (the one worth showing)."""
    names: set[str] = set()
    chain: BaseException | None = exc
    root = exc
    while chain is not None and len(names) < 20:
        names.add(type(chain).__name__)
        root = chain
        chain = chain.__cause__ or chain.__context__
    return names, root


@contextlib.contextmanager
def quiet_libraries(libraries: tuple[str, ...] = ("diffusers", "transformers")) -> Iterator[None]:
    """Silence library chatter (missing torchvision, CLIP truncation, progress bars, deprecations) while loading
    and drawing: what the user should hear, storyboard says itself, once, in its own words.

    Even their errors: a failure that matters is raised, and storyboard reports it as one line. `libraries` are
    imported here (those installed), since one imported for the first time inside the block would set its own
    verbosity again.
    """
    controls = []
    for name in libraries:
        with contextlib.suppress(ImportError):
            controls.append(__import__(f"{name}.utils.logging", fromlist=["logging"]))
    loggers = [logging.getLogger(name) for name in (*libraries, "peft")]
    levels = [logger.level for logger in loggers]
    verbosities = [control.get_verbosity() for control in controls]
    bars = [control.is_progress_bar_enabled() for control in controls]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        for control in controls:
            control.set_verbosity(logging.CRITICAL)
            control.disable_progress_bar()
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
            for control, verbosity, enabled in zip(controls, verbosities, bars, strict=True):
                control.set_verbosity(verbosity)
                if enabled:
                    control.enable_progress_bar()
