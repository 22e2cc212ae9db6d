"""Watch the story file and the files it refers to; call back once per burst of saves.

Folders are watched, not files: an editor that saves by writing a new file and renaming it over the old one
replaces the file (and its inode) each time, which a watch on the file itself would lose after the first save.
Files are watched through their folder, without recursion; model folders recursively.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from storyboard.story import Story

STEP_MS = 30  # a burst of changes ends after this long without another one
DEBOUNCE_MS = 400  # at most this long is spent gathering one burst


def referenced_paths(story_path: str | Path, story: Story | None, model: str | None = None) -> set[Path]:
    """The story file and the local files and folders it refers to: characters' reference pictures and ComfyUI
    graphs (relative to the story file) and a model given as a path (a folder or a checkpoint file)."""
    paths = {Path(story_path).absolute()}
    name = model or (story.render.model if story is not None else None)
    if name:
        candidate = Path(name).expanduser()
        if candidate.exists():
            paths.add(candidate.absolute())
        config = story.render.config if story is not None else None
        if config and Path(config).expanduser().exists():
            paths.add(Path(config).expanduser().absolute())
    for character in (story.characters.values() if story is not None else ()):
        if character.image:  # watched even while missing: adding it is a change
            paths.add((Path(story_path).absolute().parent / character.image).absolute())
    for graph in (story.render.workflow, story.render.anchor_workflow) if story is not None else ():
        if graph:
            paths.add((Path(story_path).absolute().parent / graph).absolute())
    return paths | {Path(os.path.realpath(p)) for p in paths}


class Watcher:
    """Calls `on_change()` from its own threads when any of `paths()` changes; `refresh()` re-reads `paths()`."""

    def __init__(self, paths: Callable[[], Iterable[Path]], on_change: Callable[[], None]) -> None:
        self._paths = paths
        self._on_change = on_change
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[tuple[threading.Event, threading.Thread]] = []
        self._watching: frozenset[Path] = frozenset()

    def start(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Watch what `paths()` gives now, if that changed."""
        wanted = frozenset(self._paths())
        with self._lock:
            if self._stop.is_set() or wanted == self._watching:
                return
            self._watching = wanted
            old, self._threads = self._threads, []
            for stop, _ in old:
                stop.set()
            files = {p for p in wanted if not p.is_dir()}
            folders = {p for p in wanted if p.is_dir()}
            groups = [({p.parent for p in files}, False), (folders, True)]
            for roots, recursive in groups:
                roots = {root for root in roots if root.is_dir()}
                if roots:
                    stop = threading.Event()
                    thread = threading.Thread(target=self._watch, args=(roots, recursive, wanted, stop),
                                              name="storyboard-watch", daemon=True)
                    self._threads.append((stop, thread))
                    thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            threads, self._threads = self._threads, []
        for stop, thread in threads:
            stop.set()
            thread.join(5)

    def _watch(self, roots: set[Path], recursive: bool, wanted: frozenset[Path], stop: threading.Event) -> None:
        import watchfiles

        files = {str(p) for p in wanted}
        folders = tuple(str(p) + os.sep for p in wanted if p.is_dir())

        def relevant(_change: object, path: str) -> bool:
            return path in files or path.startswith(folders)

        for _changes in watchfiles.watch(*roots, watch_filter=relevant, stop_event=stop, recursive=recursive,
                                         step=STEP_MS, debounce=DEBOUNCE_MS, raise_interrupt=False,
                                         ignore_permission_denied=True):
            if stop.is_set():
                return
            self._on_change()
