"""Drawing on Ray: each worker is an actor that loads the renderer's model once and keeps it warm; each job is one
actor task. The driver (the build) hands a job to the next free worker once the anchors it reads are in its cache,
and stores what comes back: workers write nothing.

A worker whose process dies (killed, out of memory, its node lost) is restarted by Ray, which loads the model again
and runs the task it was drawing once more (``max_restarts``, ``max_task_retries``); a worker that keeps dying fails
its task with one line. Ctrl-C kills the workers, so nothing is left drawing for a build that is gone.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storyboard.errors import BuildError, RenderError, StoryboardError
from storyboard.render import Reference, Rendered, Renderer
from storyboard.resolve import KeyedJob, PanelJob
from storyboard.workers import Delivery, Failures

#: How often Ray restarts a dead worker, and runs the task it was drawing again, before the task fails.
RESTARTS = 3
INSTALL_HINT = "--ray needs Ray, which is not installed; install it with: pip install 'storyboard[ray]'"


def import_ray() -> Any:
    """The `ray` module, or a `BuildError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BuildError(INSTALL_HINT) from None
    return ray


@dataclass
class _Failed:
    """What a worker returns for a job it could not draw (an error the user can act on)."""

    error: StoryboardError


class Worker:
    """A Ray actor's body: one renderer, its model loaded on the first job and kept.

    Ray caps a worker's OpenMP threads at its CPU share; `threads` is the driver's own setting (None: unset), so
    torch, imported later in this process, splits its CPU work as a local build does, and draws the same pixels.
    """

    def __init__(self, engine: Renderer, threads: str | None = None) -> None:
        self.engine = engine
        if "torch" not in sys.modules:
            if threads is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = threads

    def where(self) -> dict[str, Any]:
        import ray

        return {"node": socket.gethostname(), "pid": os.getpid(), "gpus": [str(g) for g in ray.get_gpu_ids()]}

    def draw(self, job: PanelJob, references: dict[str, Reference]) -> Rendered | _Failed:
        extra = {"references": references} if references else {}
        try:
            [rendered] = list(self.engine.render([job], **extra))
        except StoryboardError as exc:
            return _Failed(exc)
        return rendered


class RayWorkers:
    """Workers on a Ray cluster: `address` names an existing one ("auto", "ray://host:10001", "host:6379"); None
    starts a local Ray instance over this machine. `count` workers, by default one per GPU Ray sees (one where it
    sees none); with fewer GPUs than workers, workers share them.

    An already initialised Ray (``ray.init`` by the caller) is used as it is.
    """

    def __init__(self, address: str | None = None, count: int | None = None) -> None:
        if count is not None and count < 1:
            raise BuildError(f"--workers must be at least 1 (got {count})")
        self.address, self.count = address, count
        self.actors: list[Any] = []
        self.names: list[str] = []
        self.startup_seconds = 0.0  # starting Ray (if this started it) and the workers, models not loaded
        self._engine: Renderer | None = None

    @property
    def name(self) -> str:
        count = len(self.actors) or self.count
        return f"ray ({count} worker{'s' if count != 1 else ''})" if count else "ray"

    def start(self, engine: Renderer) -> None:
        """Connect to Ray (or start it) and start the workers for `engine`, unless they are running already."""
        if self.actors and self._engine is engine:
            return
        self.close()
        ray = import_ray()
        began = time.perf_counter()
        if not ray.is_initialized():
            try:
                ray.init(address=self.address or "local", include_dashboard=False, logging_level="WARNING",
                         configure_logging=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
                raise BuildError(f"cannot start or reach {where}: {str(exc).splitlines()[0]}") from None
        resources = ray.cluster_resources()
        gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
        count = self.count or max(1, int(gpus))
        # Each worker asks for its share, so Ray can place them all; on CPUs the share sets the worker's threads.
        share = {"num_gpus": min(1.0, gpus / count)} if gpus else {"num_cpus": cpus / count}
        actor = ray.remote(max_restarts=RESTARTS, max_task_retries=RESTARTS)(Worker)
        threads = os.environ.get("OMP_NUM_THREADS")
        self.actors = [actor.options(**share).remote(engine, threads) for _ in range(count)]
        try:
            places = ray.get([a.where.remote() for a in self.actors])
        except ray.exceptions.RayError as exc:
            self.close()
            reason = next((line.strip() for line in reversed(str(exc).splitlines()) if line.strip()), "")
            raise BuildError(f"the Ray workers could not start: {reason}") from None
        self.names = [_worker_name(n, place, gpus > 0) for n, place in enumerate(places, 1)]
        self._engine = engine
        self.startup_seconds = time.perf_counter() - began

    def draw(self, engine: Renderer, tasks: Sequence[KeyedJob], delivery: Delivery) -> None:
        if not tasks:
            return
        ray = import_ray()
        self.start(engine)
        failures = Failures(delivery)
        pending = list(tasks)
        free = list(range(len(self.actors)))
        running: dict[Any, tuple[KeyedJob, int]] = {}
        try:
            while pending or running:
                while free:
                    task = self._next(pending, delivery, failures)
                    if task is None:
                        break
                    worker = free.pop(0)
                    ref = self.actors[worker].draw.remote(task.job, delivery.references(task))
                    running[ref] = (task, worker)
                    delivery.started(task, self.names[worker])
                if not running:
                    for task in pending:  # nothing runs that could draw what they read
                        failures.unreadable(task)
                    return
                [ref], _ = ray.wait(list(running), num_returns=1)
                task, worker = running.pop(ref)
                free.append(worker)
                result = self._result(ray, ref, task, worker)
                if isinstance(result, _Failed):
                    failures.add(task, result.error)
                else:
                    delivery.done(task, result, self.names[worker])
        except BaseException:
            self.close()  # Ctrl-C or a bug: stop every worker, so nothing draws on for a build that is gone
            raise

    def _next(self, pending: list[KeyedJob], delivery: Delivery, failures: Failures) -> KeyedJob | None:
        """The first pending task whose anchors are in the cache; tasks reading a failed anchor fail now."""
        for task in list(pending):
            if delivery.ready(task):
                pending.remove(task)
                return task
            if any(key in failures.errors for key in task.references.values()):
                pending.remove(task)
                failures.unreadable(task)
        return None

    def _result(self, ray: Any, ref: Any, task: KeyedJob, worker: int) -> Rendered | _Failed:
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return ray.get(ref)
        except RayActorError:
            return _Failed(RenderError(f"{self.names[worker]} died {RESTARTS + 1} times drawing {task.job.label}; "
                                       "see the Ray logs (out of memory?)"))
        except RayTaskError as exc:  # not an error the user can act on: a bug, shown as such
            raise exc.as_instanceof_cause() from None

    def close(self) -> None:
        """Stop the workers (a Ray instance this started ends with the process)."""
        if self.actors:
            ray = import_ray()
            for actor in self.actors:
                ray.kill(actor, no_restart=True)
        self.actors, self.names, self._engine = [], [], None


def _worker_name(number: int, place: dict[str, Any], on_gpus: bool) -> str:
    device = f"GPU {','.join(place['gpus'])}" if on_gpus and place["gpus"] else "CPU"
    return f"worker {number} ({place['node']}, {device})"
