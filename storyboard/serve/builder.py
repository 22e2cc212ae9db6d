"""The one thread that builds for the live server: saves are coalesced, a newer save cancels the running build.

Requests arrive from the file watcher (a save), and from the page (redraw a panel, draw variants). Builds run one
at a time through the `Session`, so the renderer and its pipeline stay loaded between them. A save that arrives
while a build runs stops it at the next denoising step and one build of the latest file follows; panels asked to
be redrawn travel on to that build.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storyboard.building import BuildProgress
from storyboard.errors import BuildCancelled, StoryboardError, internal_error
from storyboard.output import OutputFolder, cache_file
from storyboard.resolve import PanelJob
from storyboard.serve.events import EventBus
from storyboard.session import Session


@dataclass(frozen=True)
class VariantsRequest:
    panel: int
    count: int


class Builder:
    """Runs the session's builds on one thread and tells the bus what happens."""

    def __init__(self, session: Session, bus: EventBus, *, after_build: Callable[[], None] = lambda: None,
                 export: str = "") -> None:
        self.session = session
        self.bus = bus
        self.export = export  # formats to export after each build (`storyboard.export.format_names`); "" for none
        self.after_build = after_build  # e.g. refresh the watcher's list of files the story refers to
        self.builds = 0  # finished builds, successful or not (cancelled ones are not counted)
        self._changed = threading.Condition()
        self._build_wanted = False
        self._redraw: set[int] = set()
        self._variants: list[VariantsRequest] = []
        self._running: str | None = None  # "build" or "variants" while one runs
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="storyboard-builder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Cancel what runs, drop what waits, and wait for the thread to end."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self.session.cancel()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ requests

    def story_saved(self) -> None:
        """The story (or a file it refers to) changed: build the latest file, stopping a build of an older one."""
        with self._changed:
            self._build_wanted = True
            if self._running == "build":
                self.session.cancel()
            self._changed.notify_all()

    def redraw(self, panel: int) -> None:
        with self._changed:
            self._build_wanted = True
            self._redraw.add(panel)
            self._changed.notify_all()

    def draw_variants(self, panel: int, count: int) -> None:
        with self._changed:
            self._variants.append(VariantsRequest(panel, count))
            self._changed.notify_all()

    def wait_idle(self, builds: int, timeout: float | None = None) -> bool:
        """Wait until at least `builds` builds have finished and nothing is waiting or running."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._stopping or (self.builds >= builds and self._running is None
                                           and not self._build_wanted and not self._variants), timeout)

    # ------------------------------------------------------------------ the thread

    def _next(self) -> tuple[str, Any] | None:
        with self._changed:
            self._changed.wait_for(lambda: self._stopping or self._build_wanted or self._variants)
            if self._stopping:
                return None
            if self._build_wanted:
                self._build_wanted = False
                panels, self._redraw = self._redraw, set()
                self._running = "build"
                return "build", panels
            self._running = "variants"
            return "variants", self._variants.pop(0)

    def _finished(self, counted: bool) -> None:
        with self._changed:
            self._running = None
            if counted:
                self.builds += 1
            self._changed.notify_all()

    def _run(self) -> None:
        while (task := self._next()) is not None:
            kind, what = task
            counted = True
            try:
                if kind == "build":
                    counted = self._build(what)
                else:
                    self._draw_variants(what)
            finally:
                self._finished(counted)
            if kind == "build" and counted:
                self.after_build()

    def _build(self, panels: set[int]) -> bool:
        self.bus.publish("build-started", redraw=sorted(panels))
        try:
            result = self.session.build(progress=_Events(self.bus, stopping=lambda: self._stopping), panels=panels)
        except BuildCancelled:
            with self._changed:  # the build that follows draws what this one was asked to redraw
                self._redraw |= panels
            self.bus.publish("build-cancelled")
            return False
        except StoryboardError as exc:
            self.bus.publish("build-failed", error=f"Error: {exc}")
            return True
        except Exception as exc:  # a bug: keep serving, and say so the way the CLI does
            self.bus.publish("build-failed", error=f"Error: {internal_error(exc)}")
            return True
        self.bus.publish("build-done", rendered=result.rendered, reused=result.reused,
                         panels=[{"index": p.job.index, "file": p.job.file, "key": p.key} for p in result.panels])
        if self.export:
            self._export(result)
        return True

    def _export(self, result: Any) -> None:
        """Export the formats asked for, after a build: only those whose inputs changed are made again."""
        from storyboard.export import Built, choose_formats, export_built

        try:
            done = export_built(Built.of(result), choose_formats(self.export, result.story, "--export"))
        except StoryboardError as exc:
            self.bus.publish("export-failed", error=f"Error: {exc}")
            return
        except Exception as exc:
            self.bus.publish("export-failed", error=f"Error: {internal_error(exc)}")
            return
        out = OutputFolder(self.session.out)
        self.bus.publish("export-done", made=[out.relative(e.path) for e in done if e.made],
                         kept=[out.relative(e.path) for e in done if not e.made])

    def _draw_variants(self, request: VariantsRequest) -> None:
        events = _Events(self.bus, variants_of=request.panel, stopping=lambda: self._stopping)
        try:
            result = self.session.variants(request.panel, request.count, progress=events)
        except BuildCancelled:
            return
        except StoryboardError as exc:
            self.bus.publish("variants-failed", panel=request.panel, error=f"Error: {exc}")
            return
        except Exception as exc:
            self.bus.publish("variants-failed", panel=request.panel, error=f"Error: {internal_error(exc)}")
            return
        out = OutputFolder(self.session.out)
        self.bus.publish("variants-done", panel=request.panel, current=result.current_seed,
                         candidates=[{"seed": seed, "src": out.relative(path)}
                                     for seed, path in zip(result.seeds, result.files)],
                         sheet=out.relative(result.sheet))


class _Events(BuildProgress):
    """Build progress as events for the page; a build or variants run stops at its next step once the builder is
    stopping (the session's own cancel can miss a build that was about to start when the server was stopped)."""

    def __init__(self, bus: EventBus, variants_of: int | None = None,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.bus = bus
        self.variants_of = variants_of
        self.stopping = stopping

    def start(self, jobs: list[PanelJob], to_render: list[PanelJob], renderer: str) -> None:
        if self.variants_of is None:
            self.bus.publish("build-drawing", panels=[job.index for job in to_render if not job.is_anchor],
                             renderer=renderer)
        else:
            self.bus.publish("variants-started", panel=self.variants_of, seeds=[job.seed for job in jobs],
                             drawing=[job.seed for job in to_render])

    def panel_started(self, job: PanelJob) -> None:
        self.step(job, 0, job.steps)

    def step(self, job: PanelJob, step: int, total: int) -> None:
        if self.stopping():
            raise BuildCancelled("the server is stopping")
        self._publish(job, "progress", step=step, total=total)

    def cached(self, job: PanelJob, key: str) -> None:
        self._publish(job, "done", src=cache_file(key), key=key)

    def _publish(self, job: PanelJob, what: str, **data: Any) -> None:
        """`anchor-…`, `panel-…` or `variant-…` (`what`: progress or done), naming the job the way the page does."""
        if job.is_anchor:
            self.bus.publish(f"anchor-{what}", character=job.character, **data)
        elif self.variants_of is None:
            self.bus.publish(f"panel-{what}", panel=job.index, **data)
        else:
            self.bus.publish(f"variant-{what}", panel=job.index, seed=job.seed, **data)
