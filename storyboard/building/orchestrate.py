"""A build, top to bottom: load → resolve → key jobs, anchors first → draw what is missing → publish → compose →
manifest.

A job is a panel or a character's anchor portrait. Drawn images land in the `PanelCache` (``<out>/cache/<key>.png``)
the moment each is done, named by a hash of everything that decides their pixels (`panel_key`; a panel that reads
anchors has their keys in its own) and carrying their provenance, so an interrupted build loses nothing that was
finished and a rebuild draws only what changed. A build holds ``<out>/.lock`` while it runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from storyboard.building.draw import draw_missing
from storyboard.building.keys import distinct
from storyboard.building.options import BuildOptions, Target
from storyboard.building.progress import BuildProgress
from storyboard.building.publish import warm_page
from storyboard.building.results import BuildResult
from storyboard.building.story_build import StoryBuild
from storyboard.files import exclusive_lock
from storyboard.render import Renderer
from storyboard.story import Story
from storyboard.workers import LocalWorkers, Workers


def build(
    story_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    story: Story | None = None,
    renderer: str | Renderer | None = None,
    model: str | None = None,
    progress: BuildProgress | None = None,
    panels: Iterable[int] = (),
    force: bool = False,
    self_contained: bool = False,
    cache: str | Path | None = None,
    workers: Workers | None = None,
) -> BuildResult:
    """Build the comic page for the story file at `story_path` into `out_dir` (default ``build/<stem>``).

    Only jobs whose content key (see `panel_key`) has no cached image are drawn, each distinct key once: the
    anchors of the characters panels list, then the panels. `panels` (1-based numbers) are redrawn even when
    cached (their anchors are drawn only if missing), and `force` redraws every panel and anchor.
    `self_contained` writes index.html with the images and fonts inlined, so that one file can be mailed or
    uploaded. The characters' anchors are shown as the cast under the title of the first page when
    `layout.cast` is on.

    `cache` is a cache folder to keep drawn images in instead of ``<out>/cache``; any number of builds may share
    one (see `PanelCache`), and a build never deletes from it. `workers` decides where jobs are drawn: in this
    process (`LocalWorkers`, the default) or on Ray (`storyboard.workers.ray_cluster.RayWorkers`); the pixels,
    keys, cache and outputs are the same either way.

    A story longer than one page (`layout.rows`, `page_break`, `chapter`) is written as pages/page-NN.png,
    book.pdf and index.html; each page has its own key, and only pages whose key changed are drawn again.

    `story` builds that in-memory story instead of the file's contents; `story_path` still places the default
    output folder and the files the story names relative to itself. `renderer` may be an instance the caller
    keeps (and its loaded model with it) across builds; without one, the story's `render.renderer` names it (else
    it is `DEFAULT_RENDERER`). The build holds the output folder's lock while it runs;
    a caller that holds it already (a `storyboard.Session`) calls `build_locked`.
    """
    target = Target.of(story_path, out_dir, story)
    options = BuildOptions(renderer=renderer, model=model, cache=cache, progress=progress or BuildProgress(),
                           panels=panels, force=force, self_contained=self_contained,
                           workers=workers or LocalWorkers())
    with exclusive_lock(target.out.root, "build"):
        return build_locked(target, options)


def build_locked(target: Target, options: BuildOptions) -> BuildResult:
    """`build`, for a caller that holds the output folder's lock (`storyboard.files.exclusive_lock`)."""
    engine = options.engine([target.story])
    one = StoryBuild(target, engine, options, panels=options.panels, force=options.force,
                     self_contained=options.self_contained)
    one.prepare()
    options.progress.start(one.jobs, [k.job for k in distinct(one.to_draw)], engine.name)
    # The page's fonts are cut while the first panels are drawn (see `warm_page`).
    warming: list[threading.Thread] = []
    draw_missing([one], engine, options.workers, options.progress, stop_at_first_error=True,
                 after_first=lambda: warming.append(warm_page(target.story, one.panel_jobs, engine)))
    for thread in warming:
        thread.join()
    return one.finish(options.progress)
