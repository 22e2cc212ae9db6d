"""Where jobs are drawn: in this process (`LocalWorkers`), or on Ray actors (`storyboard.workers.ray_cluster`).

The build decides *what* to draw (keyed jobs, each distinct key once, anchors before the panels that read them) and
alone writes the cache, the pages and the manifest. Workers only decide *where* each job runs: they take the jobs
in dependency order and hand each drawn image back through a `Delivery`, which stores it. A job whose anchors are
not in the cache yet (`Delivery.ready`) waits until they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from storyboard.errors import RenderError, StoryboardError
from storyboard.render import Reference, Rendered, Renderer
from storyboard.resolve import KeyedJob, PanelJob


class Delivery(Protocol):
    """The build's side of drawing: what a job reads, and where a drawn job goes."""

    def ready(self, task: KeyedJob) -> bool:
        """Whether every anchor `task` reads is in the cache."""

    def references(self, task: KeyedJob) -> dict[str, Reference]:
        """The anchors `task` reads, by character name, read back from the cache."""

    def started(self, task: KeyedJob, worker: str) -> None:
        """`worker` began drawing `task`."""

    def step(self, job: PanelJob, step: int, total: int) -> None:
        """A denoising step of `job` is done (local workers only)."""

    def done(self, task: KeyedJob, rendered: Rendered, worker: str) -> None:
        """`task` was drawn by `worker`: store it. Raising stops the drawing."""

    def failed(self, task: KeyedJob, error: StoryboardError) -> None:
        """`task` could not be drawn (nor can any job that reads it). Raising stops the drawing (a one-story
        build stops at its first error; a batch goes on with the other stories)."""


class Workers(Protocol):
    #: How progress names them: "local", "ray (4 workers)".
    name: str

    def draw(self, engine: Renderer, tasks: Sequence[KeyedJob], delivery: Delivery) -> None:
        """Draw `tasks` (distinct keys, anchors before the panels that read them) with `engine`'s renderer,
        handing each to `delivery`. A `StoryboardError` drawing a job goes to `delivery.failed` and the others
        are still drawn; anything else (Ctrl-C, a bug) stops the drawing and propagates."""

    def close(self) -> None:
        """Let go of what the workers hold (Ray actors); local workers hold nothing."""


class LocalWorkers:
    """Draw every job in this process, one renderer call per run of jobs that read the same anchors."""

    name = "local"

    def draw(self, engine: Renderer, tasks: Sequence[KeyedJob], delivery: Delivery) -> None:
        failures = Failures(delivery)
        for batch in _batches(tasks):
            waiting = [t for t in batch if not delivery.ready(t)]
            for task in waiting:
                failures.unreadable(task)
            batch = [t for t in batch if t not in waiting]
            if not batch:
                continue
            references: dict[str, Reference] = {}
            for task in batch:
                references.update(delivery.references(task))
            _draw_locally(engine, batch, references, delivery, failures)

    def close(self) -> None:
        pass


class Failures:
    """The jobs that could not be drawn, so that a panel reading a failed anchor fails with the anchor's error."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.errors: dict[str, StoryboardError] = {}

    def add(self, task: KeyedJob, error: StoryboardError) -> None:
        self.errors[task.key] = error
        self.delivery.failed(task, error)

    def unreadable(self, task: KeyedJob) -> None:
        """`task` reads an anchor that is not in the cache."""
        error = next((self.errors[key] for key in task.references.values() if key in self.errors), None)
        self.add(task, error or RenderError(f"{task.job.label} cannot be drawn: an anchor it reads is missing"))


def _draw_locally(engine: Renderer, batch: list[KeyedJob], references: dict[str, Reference],
                  delivery: Delivery, failures: Failures) -> None:
    delivery.started(batch[0], "local")
    # Only panels that read anchors pass `references`, so a renderer that reads none needs no such argument.
    extra = {"references": references} if references else {}
    position = 0
    try:
        for rendered in engine.render([t.job for t in batch], on_step=delivery.step, **extra):
            task = batch[position]
            if rendered.job != task.job:
                raise RenderError(f"the {engine.name} renderer returned {rendered.job.label} out of order")
            delivery.done(task, rendered, "local")
            position += 1
            if position < len(batch):
                delivery.started(batch[position], "local")
    except StoryboardError as exc:
        for task in batch[position:]:
            failures.add(task, exc)


def _batches(tasks: Sequence[KeyedJob]) -> list[list[KeyedJob]]:
    """`tasks` in runs a renderer can draw in one call: anchors apart from panels (a panel reads its anchors from
    the cache, so they must be drawn before its call starts), and no two panels in a run reading different
    anchors under the same character name (two stories of a batch may both have a "fox")."""
    runs: list[list[KeyedJob]] = []
    names: dict[str, str] = {}
    for task in tasks:
        run = runs[-1] if runs else None
        fits = run is not None and run[0].job.is_anchor == task.job.is_anchor and all(
            names.get(name, key) == key for name, key in task.references.items())
        if not fits:
            runs.append([])
            names = {}
        runs[-1].append(task)
        names.update(task.references)
    return runs
