"""Candidate seeds for one panel, drawn through the same cache as builds, and a contact sheet of them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from storyboard.building.draw import Owner, draw_owned
from storyboard.building.keys import Keying, as_drawn_by, distinct
from storyboard.building.options import Drawing, Target
from storyboard.building.progress import BuildProgress
from storyboard.building.publish import publish, store_pictures
from storyboard.building.record import Recorder
from storyboard.cache import PanelCache
from storyboard.compose.contact_sheet import contact_sheet
from storyboard.errors import BuildError
from storyboard.files import atomic_save_png, exclusive_lock
from storyboard.render import Renderer
from storyboard.resolve import KeyedJob, PanelJob, check_panel_number, resolve_jobs
from storyboard.story import MAX_SEED, Story
from storyboard.workers import LocalWorkers

MAX_VARIANTS = 100


@dataclass
class VariantsResult:
    panel: int
    seeds: list[int]
    current_seed: int
    files: list[Path]
    sheet: Path
    rendered: int
    renderer: str
    characters: list[str] = field(default_factory=list)  # the anchors the panel reads, by character name
    anchors_rendered: int = 0

    @property
    def reused(self) -> int:
        return len(self.seeds) - self.rendered


def candidate_seeds(current: int, count: int, start: int | None = None) -> list[int]:
    """`count` consecutive seeds from `start`, by default from the panel's current seed.

    So by default the first candidate is the picture the page shows now, and the others are the next seeds up;
    ``--seed-start`` picks another run of seeds.
    """
    first = current if start is None else start
    return list(range(first, first + count))


def variants(
    story_path: str | Path,
    panel: int,
    count: int,
    *,
    seed_start: int | None = None,
    out_dir: str | Path | None = None,
    renderer: str | Renderer | None = None,
    model: str | None = None,
    progress: BuildProgress | None = None,
    story: Story | None = None,
    cache: str | Path | None = None,
) -> VariantsResult:
    """Draw `count` candidate seeds for one panel into ``<out>/variants/panel-NN/seed-S.png``, plus a contact sheet.

    Candidates go through the same cache as builds, so after ``storyboard pick`` the next build reuses the chosen
    one. The page, ``panels/`` and the manifest are left alone. Holds the output folder's lock while it runs; a
    caller that holds it already calls `variants_locked`.
    """
    target = Target.of(story_path, out_dir, story)
    drawing = Drawing(renderer=renderer, model=model, cache=cache, progress=progress or BuildProgress())
    with exclusive_lock(target.out.root, "variants run"):
        return variants_locked(target, panel, count, drawing, seed_start=seed_start)


def variants_locked(target: Target, panel: int, count: int, drawing: Drawing, *,
                    seed_start: int | None = None) -> VariantsResult:
    """`variants`, for a caller that holds the output folder's lock."""
    engine = drawing.engine([target.story])
    jobs = resolve_jobs(as_drawn_by(engine, target.story, target.folder), model=drawing.model, story_dir=target.folder)
    panel_jobs = [j for j in jobs if not j.is_anchor]
    job = panel_jobs[check_panel_number(panel, len(panel_jobs), target.path) - 1]
    candidates = [replace(job, seed=seed) for seed in _seeds(job, panel, count, seed_start)]
    anchors = [j for j in jobs if j.character in job.references]
    recorder = Recorder(target.story, str(target.path), target.given_out, drawing.model, variant=True)

    target.out.remove_temp_files()
    cache = PanelCache(target.cache_dir(drawing.cache))
    keying = Keying(engine, target.path, cache, [])
    work = [keying.key(j, must_draw=not j.is_anchor) for j in anchors + candidates]
    missing = [k for k in work if not cache.has(k.key)]
    store_pictures(missing, keying.pictures, cache, recorder, engine.name)
    to_draw = [k for k in missing if not k.job.image]
    drawing.progress.start(candidates, [k.job for k in to_draw], engine.name)
    read = keying.anchors()
    draw_owned({k.key: [Owner(k, cache, recorder, read)] for k in distinct(to_draw)}, engine, LocalWorkers(),
               drawing.progress)

    drawing.progress.composing()
    shown = [k for k in work if not k.job.is_anchor]
    files = _publish_candidates(target, panel, shown, cache, recorder, engine.name)
    sheet = contact_sheet(f"{target.story.title} · panel {panel}", [(cache.open(k.key), k.job.seed) for k in shown],
                          job.seed)
    atomic_save_png(target.out.contact_sheet(panel), sheet)
    return VariantsResult(panel, [c.seed for c in candidates], job.seed, files, target.out.contact_sheet(panel),
                          sum(not k.job.is_anchor for k in to_draw), engine.name, [j.character for j in anchors],
                          sum(k.job.is_anchor for k in to_draw))


def _seeds(job: PanelJob, panel: int, count: int, seed_start: int | None) -> list[int]:
    if not 1 <= count <= MAX_VARIANTS:
        raise BuildError(f"--count must be between 1 and {MAX_VARIANTS} (got {count})")
    seeds = candidate_seeds(job.seed, count, seed_start)
    if seeds[0] < 0 or seeds[-1] > MAX_SEED:
        start = f"--seed-start {seed_start}" if seed_start is not None else f"panel {panel}'s seed {job.seed}"
        raise BuildError(f"{start} with --count {count} gives seeds {seeds[0]} to {seeds[-1]}; "
                         f"seeds lie between 0 and {MAX_SEED}")
    return seeds


def _publish_candidates(target: Target, panel: int, shown: list[KeyedJob], cache: PanelCache,
                        recorder: Recorder, renderer: str) -> list[Path]:
    files = []
    for k in shown:
        files.append(target.out.variant(panel, k.job.seed))
        publish(cache, k, files[-1], recorder, renderer)
    return files
