"""A long-lived build session: one output folder, one renderer kept warm, builds that can be cancelled.

`storyboard serve` runs every build through one `Session`; a Python user can too::

    with storyboard.Session("story.yaml", renderer="diffusers") as session:
        session.build()          # loads the model and draws every panel
        ...                      # edit story.yaml
        session.build()          # draws only the changed panels, with the model already loaded

`cancel()` (from any thread) stops the running build at the next denoising step, raising `BuildCancelled`;
panels finished before it stay in the cache, so the next build reuses them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from storyboard.build import BuildProgress, BuildResult, VariantsResult, _out_folder, build, variants
from storyboard.errors import BuildCancelled
from storyboard.render import DEFAULT_RENDERER, Renderer, get_renderer
from storyboard.resolve import PanelJob


class Session:
    """Builds of one story into one output folder, with one renderer instance kept between them."""

    def __init__(self, story_path: str | Path, out_dir: str | Path | None = None, *,
                 renderer: str | Renderer = DEFAULT_RENDERER, model: str | None = None) -> None:
        self.story_path = Path(story_path)
        self.out_dir = out_dir
        self.out = _out_folder(story_path, out_dir)
        self.model = model
        self.renderer: Renderer = get_renderer(renderer) if isinstance(renderer, str) else renderer
        self._cancel = threading.Event()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.cancel()

    def cancel(self) -> None:
        """Stop the running build or variants run at its next step (no-op when none runs)."""
        self._cancel.set()

    def build(self, *, progress: BuildProgress | None = None, panels: Iterable[int] = (),
              force: bool = False, self_contained: bool = False) -> BuildResult:
        self._cancel.clear()
        return build(self.story_path, self.out_dir, renderer=self.renderer, model=self.model,
                     progress=_Cancellable(progress or BuildProgress(), self._cancel), panels=panels, force=force,
                     self_contained=self_contained)

    def variants(self, panel: int, count: int, *, seed_start: int | None = None,
                 progress: BuildProgress | None = None) -> VariantsResult:
        self._cancel.clear()
        return variants(self.story_path, panel, count, seed_start=seed_start, out_dir=self.out_dir,
                        renderer=self.renderer, model=self.model,
                        progress=_Cancellable(progress or BuildProgress(), self._cancel))


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

    def panel_done(self, job: PanelJob) -> None:
        self.inner.panel_done(job)
        self._check()

    def composing(self) -> None:
        self._check()
        self.inner.composing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
