"""A long-lived build session: one output folder, one renderer kept warm, builds that can be cancelled.

`storyboard serve` runs every build through one `Session`; a Python user can too::

    with storyboard.Session("story.yaml", renderer="diffusers") as session:
        session.build()          # loads the model and draws every panel
        ...                      # edit story.yaml
        session.build()          # draws only the changed panels, with the model already loaded

The session holds the output folder's lock from `open()` (or ``with``) to `close()`, so a ``storyboard build`` of
the same folder from another terminal stops at once with the usual one-line error instead of interleaving its
writes with ours. `cancel()` (from any thread) stops the running build at the next denoising step, raising
`BuildCancelled`; panels finished before it stay in the cache, so the next build reuses them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from storyboard.building import (
    BuildOptions,
    BuildProgress,
    BuildResult,
    Drawing,
    Target,
    VariantsResult,
    build_locked,
    variants_locked,
)
from storyboard.building.options import readable_stories
from storyboard.errors import BuildCancelled, BuildError
from storyboard.files import exclusive_lock
from storyboard.output import OutputFolder
from storyboard.render import Renderer
from storyboard.resolve import PanelJob
from storyboard.story import Story


class Session:
    """Builds of one story into one output folder, with one renderer instance kept between them (by default the
    one the story's `render.renderer` names when the session starts, else `DEFAULT_RENDERER`)."""

    def __init__(self, story_path: str | Path, out_dir: str | Path | None = None, *,
                 renderer: str | Renderer | None = None, model: str | None = None) -> None:
        self.story_path = Path(story_path)
        self.out_dir = out_dir
        self.out = OutputFolder.of(story_path, out_dir).root
        self.model = model
        self.renderer: Renderer = Drawing(renderer).engine(readable_stories([story_path]) if renderer is None else ())
        self._cancel = threading.Event()
        self._busy = threading.Lock()  # one build at a time, whichever thread asks
        self._held: ExitStack | None = None

    def open(self) -> Session:
        """Take the output folder's lock (raises `FolderBusy` if another build or session holds it)."""
        if self._held is None:
            held = ExitStack()
            held.enter_context(exclusive_lock(self.out, "storyboard serve"))
            self._held = held
        return self

    def close(self) -> None:
        """Stop what runs, wait for it, and release the lock. The renderer is kept (and its model with it)."""
        self.cancel()
        with self._busy:
            held, self._held = self._held, None
        if held is not None:
            held.close()

    def __enter__(self) -> Session:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cancel(self) -> None:
        """Stop the running build or variants run at its next step (no-op when none runs)."""
        self._cancel.set()

    def build(self, *, story: Story | None = None, progress: BuildProgress | None = None,
              panels: Iterable[int] = (), force: bool = False, self_contained: bool = False) -> BuildResult:
        """Build the story file (or the in-memory `story`) with the session's renderer; see `storyboard.build`."""
        with self._running():
            options = BuildOptions(renderer=self.renderer, model=self.model, panels=panels, force=force,
                                   self_contained=self_contained,
                                   progress=_Cancellable(progress or BuildProgress(), self._cancel))
            return build_locked(Target.of(self.story_path, self.out_dir, story), options)

    def variants(self, panel: int, count: int, *, seed_start: int | None = None, story: Story | None = None,
                 progress: BuildProgress | None = None) -> VariantsResult:
        """Draw candidate seeds for one panel; see `storyboard.variants`."""
        with self._running():
            drawing = Drawing(renderer=self.renderer, model=self.model,
                              progress=_Cancellable(progress or BuildProgress(), self._cancel))
            return variants_locked(Target.of(self.story_path, self.out_dir, story), panel, count, drawing,
                                   seed_start=seed_start)

    def _running(self) -> Any:
        session = self

        class Running:
            def __enter__(self) -> None:
                session._busy.acquire()
                if session._held is None:
                    session._busy.release()
                    raise BuildError("the session is closed; open it (or use `with`) before building")
                session._cancel.clear()

            def __exit__(self, *exc: object) -> None:
                session._busy.release()

        return Running()


class _Cancellable(BuildProgress):
    """Passes events on, and raises `BuildCancelled` at the first one after `cancel` was set.

    Steps come from inside the renderer's denoising loop, so raising there stops the panel being drawn; the
    panels already saved in the cache stay.
    """

    def __init__(self, inner: BuildProgress, cancel: threading.Event) -> None:
        self.inner = inner
        self.cancelled = cancel

    def _check(self) -> None:
        if self.cancelled.is_set():
            raise BuildCancelled("build cancelled")

    def start(self, jobs: list[PanelJob], to_render: list[PanelJob], renderer: str) -> None:
        self._check()
        self.inner.start(jobs, to_render, renderer)

    def panel_started(self, job: PanelJob) -> None:
        self._check()
        self.inner.panel_started(job)

    def step(self, job: PanelJob, step: int, total: int) -> None:
        self._check()
        self.inner.step(job, step, total)

    def cached(self, job: PanelJob, key: str) -> None:
        self.inner.cached(job, key)

    def panel_done(self, job: PanelJob) -> None:
        self.inner.panel_done(job)
        self._check()

    def composing(self) -> None:
        self._check()
        self.inner.composing()
