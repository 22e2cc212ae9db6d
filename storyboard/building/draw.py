"""Drawing what builds miss: each distinct key once, anchors first, into every cache that needs it.

Workers decide where a job runs (`storyboard.workers`); `Storing` is the build's side of it, and the only place a
drawn image is written, with its provenance.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from storyboard.building.progress import BuildProgress
from storyboard.building.record import Recorder
from storyboard.cache import PanelCache
from storyboard.errors import StoryboardError
from storyboard.render import Reference, Rendered, Renderer
from storyboard.resolve import KeyedJob, PanelJob
from storyboard.workers import Workers

if TYPE_CHECKING:
    from storyboard.building.story_build import StoryBuild


@dataclass
class Owner:
    """A job a build needs drawn, with the cache it goes into, what its provenance says, and the anchors it
    may read."""

    keyed: KeyedJob
    cache: PanelCache
    recorder: Recorder
    anchors: Mapping[str, KeyedJob]
    build: StoryBuild | None = None


def draw_missing(builds: Sequence[StoryBuild], engine: Renderer, workers: Workers, progress: BuildProgress, *,
                 stop_at_first_error: bool, after_first: Callable[[], object] = lambda: None) -> int:
    """Draw what `builds` miss, each distinct key once, into every cache that needs it; return how many images
    were copied from another build's cache instead of being drawn.

    A failure is raised at once with `stop_at_first_error`; otherwise it becomes the `error` of every build
    that needed the job, and the rest is drawn.
    """
    owners: dict[str, list[Owner]] = {}
    for one in builds:
        for k in one.to_draw:
            owners.setdefault(k.key, []).append(Owner(k, one.cache, one.recorder, one.anchors, one))
    copied = 0
    for key, needing in list(owners.items()):
        holder = next((one for one in builds if one not in {o.build for o in needing}
                       and any(k.key == key for k in one.keyed)), None)
        if holder is not None and not any(o.build.forced(key) for o in needing if o.build):
            for owner in needing:  # another story of the batch has it cached already
                owner.cache.put_bytes(key, holder.cache.read_bytes(key))
            del owners[key]
            copied += 1
    draw_owned(owners, engine, workers, progress, stop_at_first_error, after_first)
    return copied


def draw_owned(owners: dict[str, list[Owner]], engine: Renderer, workers: Workers, progress: BuildProgress,
               stop_at_first_error: bool = True, after_first: Callable[[], object] = lambda: None) -> None:
    first = [needing[0].keyed for needing in owners.values()]
    # Anchors first, so that the panels reading them find them in the cache.
    jobs = sorted(first, key=lambda k: not k.job.is_anchor)
    storing = Storing(owners, engine.name, progress, stop_at_first_error, after_first)
    try:
        workers.draw(engine, jobs, storing)
    except BaseException:
        storing.close(announce=False)
        raise
    storing.close()


class Storing:
    """The build's side of drawing (`storyboard.workers.Delivery`): workers hand each drawn image here, and only
    here is it written, into the cache of every build that needs it, with its provenance.

    An image is encoded and written on a thread of its own while the next one is drawn (zlib and the disk leave
    the interpreter free); its `cached` and `panel_done` events follow once it is on disk (seen at the next event
    of the drawing), in the order the images were drawn. At most `WAITING` images wait to be written, and `close`
    writes every image handed over, even when the build is interrupted: what was drawn is kept.
    """

    WAITING = 2

    def __init__(self, owners: dict[str, list[Owner]], renderer: str, progress: BuildProgress,
                 stop_at_first_error: bool, after_first: Callable[[], object]) -> None:
        self.owners, self.renderer, self.progress = owners, renderer, progress
        self.stop_at_first_error, self.after_first = stop_at_first_error, after_first
        self.stored: set[tuple[Path, str]] = set()
        self.images: dict[tuple[Path, str], Image.Image] = {}
        self.done_count = 0
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storyboard-store")
        self.writing: deque[tuple[KeyedJob, Future[None]]] = deque()

    def ready(self, task: KeyedJob) -> bool:
        self._settle(wait=len(self.writing))  # the anchors it reads may still be on their way to the disk
        cache = self.owners[task.key][0].cache
        return all(self._has(cache, key) for key in task.references.values())

    def _has(self, cache: PanelCache, key: str) -> bool:
        if (cache.folder, key) not in self.stored and cache.has(key):
            self.stored.add((cache.folder, key))
        return (cache.folder, key) in self.stored

    def references(self, task: KeyedJob) -> dict[str, Reference]:
        owner = self.owners[task.key][0]
        found = {}
        for name, key in task.references.items():
            if (owner.cache.folder, key) not in self.images:
                self.images[owner.cache.folder, key] = owner.cache.open(key)
            found[name] = Reference(owner.anchors[name].job, self.images[owner.cache.folder, key], key)
        return found

    def started(self, task: KeyedJob, worker: str) -> None:
        self._settle()
        self.progress.drawing_on(task.job, worker)
        self.progress.panel_started(task.job)

    def step(self, job: PanelJob, step: int, total: int) -> None:
        self._settle()
        self.progress.step(job, step, total)

    def done(self, task: KeyedJob, rendered: Rendered, worker: str) -> None:
        needing, pictures = self.owners[task.key], []
        for owner in needing:
            if owner.cache.folder not in {cache.folder for cache, _ in pictures}:  # a shared cache: once
                pictures.append((owner.cache, owner.recorder.pnginfo(owner.keyed, self.renderer, rendered.info)))
        self.writing.append((task, self.writer.submit(self._write, task.key, rendered.image, pictures)))
        self._settle(wait=len(self.writing) - self.WAITING)

    @staticmethod
    def _write(key: str, image: Image.Image, pictures: list[tuple[PanelCache, Any]]) -> None:
        for cache, pnginfo in pictures:
            cache.put(key, image, pnginfo)

    def _settle(self, wait: int = 0) -> None:
        """Announce the images written so far, in order, after waiting for the first `wait` of them."""
        while self.writing and (wait > 0 or self.writing[0][1].done()):
            task, future = self.writing.popleft()
            wait -= 1
            future.result()
            needing = self.owners[task.key]
            for owner in needing:
                self.stored.add((owner.cache.folder, task.key))
            for owner in needing:
                self.progress.cached(owner.keyed.job, task.key)
            if needing[0].build is not None:
                needing[0].build.drawn_keys.add(task.key)
            self.progress.panel_done(task.job)
            self.done_count += 1
            if self.done_count == 1:
                self.after_first()

    def close(self, announce: bool = True) -> None:
        """Write every image handed over, and announce them (not when the drawing stopped on an exception)."""
        try:
            if announce:
                self._settle(wait=len(self.writing))
        finally:
            self.writer.shutdown(wait=True)

    def failed(self, task: KeyedJob, error: StoryboardError) -> None:
        if self.stop_at_first_error:
            raise error
        for owner in self.owners[task.key]:
            if owner.build is not None and owner.build.error is None:
                owner.build.error = error
