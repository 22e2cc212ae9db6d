"""How the CLI shows a build's progress: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from storyboard.building import BuildProgress
from storyboard.resolve import PanelJob


class PlainProgress(BuildProgress):
    """One line per panel, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = 0
        self.done = 0
        self.workers: dict[PanelJob, str] = {}  # who is drawing what, when that is not this process

    def _say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, jobs: list[PanelJob], to_render: list[PanelJob], renderer: str) -> None:
        self.total = len(to_render)
        if to_render:
            anchors = sum(job.is_anchor for job in to_render)
            panels = len(to_render) - anchors
            what = f"{panels} of {sum(not job.is_anchor for job in jobs)} panels"
            if anchors:
                what += f" and {anchors} character anchor{'s' if anchors > 1 else ''}"
            self._say(f"drawing {what} with the {renderer} renderer")

    def drawing_on(self, job: PanelJob, worker: str) -> None:
        if worker != "local":
            self.workers[job] = worker

    def panel_done(self, job: PanelJob) -> None:
        self.done += 1
        worker = self.workers.pop(job, None)
        self._say(f"{job.label} done{f' on {worker}' if worker else ''} ({self.done}/{self.total})")

    def composing(self) -> None:
        self._say("composing the page")


class RichProgress(BuildProgress):
    """A bar over all panels and one over the denoising steps of the panel being drawn; on Ray, one line per
    worker saying what it draws."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )
        self.panels = None
        self.steps = None
        self.workers: dict[str, Any] = {}  # a line per Ray worker, by name
        self.drawn_by: dict[PanelJob, str] = {}

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, jobs: list[PanelJob], to_render: list[PanelJob], renderer: str) -> None:
        if to_render:
            self.panels = self.progress.add_task(f"panels ({renderer})", total=len(to_render))

    def drawing_on(self, job: PanelJob, worker: str) -> None:
        if worker == "local":
            return
        if worker not in self.workers:
            self.workers[worker] = self.progress.add_task("", total=None)
        self.progress.update(self.workers[worker], description=f"{worker}: {job.label}")
        self.drawn_by[job] = worker

    def panel_started(self, job: PanelJob) -> None:
        if self.workers:  # Ray workers report no steps; their lines show what each draws
            return
        first = self.steps is None
        if self.steps is not None:
            self.progress.remove_task(self.steps)
        # Until the first step the renderer is loading its model, which can take longer than drawing a panel.
        label = f"{job.label}: loading the model" if first else f"{job.label} steps"
        self.steps = self.progress.add_task(label, total=job.steps)

    def step(self, job: PanelJob, step: int, total: int) -> None:
        if self.steps is not None:
            self.progress.update(self.steps, completed=step, total=total, description=f"{job.label} steps")

    def panel_done(self, job: PanelJob) -> None:
        if self.panels is not None:
            self.progress.advance(self.panels)
        worker = self.drawn_by.pop(job, None)
        if worker is not None:
            self.progress.update(self.workers[worker], description=f"{worker}: idle")

    def composing(self) -> None:
        for line in self.workers.values():
            self.progress.remove_task(line)
        self.workers.clear()
        if self.steps is not None:
            self.progress.remove_task(self.steps)
            self.steps = None
