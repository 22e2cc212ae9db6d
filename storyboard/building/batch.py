"""Several stories with one renderer: each distinct key drawn once, however many stories need it."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storyboard.building.draw import draw_missing
from storyboard.building.keys import distinct
from storyboard.building.options import BuildOptions, Target, readable_stories
from storyboard.building.progress import BuildProgress
from storyboard.building.results import BuildResult
from storyboard.building.story_build import StoryBuild
from storyboard.errors import BuildError, StoryboardError
from storyboard.files import exclusive_lock
from storyboard.output import default_out_dir
from storyboard.render import Renderer
from storyboard.workers import LocalWorkers, Workers


@dataclass
class StoryOutcome:
    """One story of a batch: its build's result, or the error that stopped it."""

    story_path: Path
    out_dir: Path
    result: BuildResult | None = None
    error: StoryboardError | None = None


@dataclass
class BatchResult:
    stories: list[StoryOutcome]
    renderer: str
    drawn: int = 0  # distinct images drawn, anchors included
    duplicates: int = 0  # jobs that had the key of another job to draw in the batch, so were drawn once for both
    copied: int = 0  # images another story's cache already held

    @property
    def failed(self) -> list[StoryOutcome]:
        return [s for s in self.stories if s.error is not None]


def build_many(
    story_paths: Sequence[str | Path],
    out_dir: str | Path | None = None,
    *,
    renderer: str | Renderer | None = None,
    model: str | None = None,
    progress: BuildProgress | None = None,
    force: bool = False,
    self_contained: bool = False,
    cache: str | Path | None = None,
    workers: Workers | None = None,
) -> BatchResult:
    """Build several stories with one renderer (its model loaded once) into ``<out_dir>/<story file stem>/``
    (default ``build/<stem>``), drawing each distinct key once: a panel two stories share (or one story has
    twice) is drawn once and stored in each cache that needs it.

    A story that fails (an invalid file, a panel that cannot be drawn) is reported in its `StoryOutcome` and does
    not stop the others. Every story's output folder is locked while the batch runs. Without `renderer`, the one
    the stories' `render.renderer` names draws them (they must agree), else `DEFAULT_RENDERER`.
    """
    options = BuildOptions(renderer=renderer, model=model, cache=cache, progress=progress or BuildProgress(),
                           force=force, self_contained=self_contained, workers=workers or LocalWorkers())
    engine = options.engine(readable_stories(story_paths) if renderer is None else ())
    outcomes = [StoryOutcome(Path(p), Path(out_dir) / Path(p).stem if out_dir is not None else default_out_dir(p))
                for p in story_paths]
    _check_distinct_folders(outcomes)
    with contextlib.ExitStack() as locks:
        builds = _prepare_all(outcomes, engine, options, locks)
        ready = [one for _, one in builds]
        tasks = distinct([k for one in ready for k in one.to_draw])
        options.progress.start([job for one in ready for job in one.jobs], [k.job for k in tasks], engine.name)
        batch = BatchResult(outcomes, engine.name)
        batch.copied = draw_missing(ready, engine, options.workers, options.progress, stop_at_first_error=False)
        batch.drawn = sum(len(one.drawn_keys) for one in ready)
        batch.duplicates = sum(len(one.to_draw) for one in ready) - len(tasks)
        for outcome, one in builds:
            if one.error is None:
                try:
                    outcome.result = one.finish(options.progress)
                except StoryboardError as exc:
                    one.error = exc
            outcome.error = one.error
    return batch


def _prepare_all(outcomes: list[StoryOutcome], engine: Renderer, options: BuildOptions,
                 locks: contextlib.ExitStack) -> list[tuple[StoryOutcome, StoryBuild]]:
    """Load, lock and key every story; a story that fails gets its error and is left out."""
    builds: list[tuple[StoryOutcome, StoryBuild]] = []
    for outcome in outcomes:
        held = contextlib.ExitStack()
        try:
            one = StoryBuild(Target.of(outcome.story_path, outcome.out_dir), engine, options, force=options.force,
                             self_contained=options.self_contained)
            held.enter_context(exclusive_lock(one.out.root, "build"))
            one.prepare()
        except StoryboardError as exc:
            # The lock sees the failure, so a first build of the story leaves no empty folder behind.
            held.__exit__(type(exc), exc, exc.__traceback__)
            outcome.error = exc
            continue
        locks.enter_context(held)
        builds.append((outcome, one))
    return builds


def _check_distinct_folders(outcomes: list[StoryOutcome]) -> None:
    seen: dict[Path, Path] = {}
    for outcome in outcomes:
        other = seen.setdefault(outcome.out_dir.resolve(), outcome.story_path)
        if other != outcome.story_path:
            raise BuildError(f"{other} and {outcome.story_path} would both be built into {outcome.out_dir}; "
                             "rename one, or build them apart")
