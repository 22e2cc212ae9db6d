"""One story's build in three steps: what it needs (`prepare`, under its output folder's lock), drawing
(`storyboard.building.draw`, shared by the stories of a batch) and publishing (`finish`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from storyboard.building.keys import Keying, as_drawn_by
from storyboard.building.manifest import manifest_bytes, previous_identities, previous_manifest, previous_page_keys
from storyboard.building.options import Drawing, Target
from storyboard.building.progress import BuildProgress
from storyboard.building.publish import Pages, publish, remove_stale, store_pictures, write_if_changed
from storyboard.building.record import Recorder
from storyboard.building.results import BuildResult, PanelResult
from storyboard.cache import PanelCache
from storyboard.compose.book import book_pages
from storyboard.compose.page import CastMember
from storyboard.errors import StoryboardError
from storyboard.output import INDEX_HTML, default_out_dir
from storyboard.render import Renderer
from storyboard.resolve import KeyedJob, check_panel_number, resolve_jobs
from storyboard.story.edition import display_name, editions_of


def edition_links(target: Target) -> list[tuple[str, str]]:
    """The story's editions (and, for an edition, its original and the other editions) as (language, link from
    this page), when every one is built into its default folder; [] for a story without editions."""
    if target.given_out is not None:
        return []
    here = default_out_dir(target.path)
    return [(language, Path(os.path.relpath(default_out_dir(path) / INDEX_HTML, here)).as_posix())
            for language, path in editions_of(target.path, target.story)]


class StoryBuild:
    """What one story's build needs drawn, and how it publishes its outputs once they are drawn."""

    def __init__(self, target: Target, engine: Renderer, drawing: Drawing, *, panels: Any = (),
                 force: bool = False, self_contained: bool = False) -> None:
        self.target, self.engine, self.self_contained = target, engine, self_contained
        self.story, self.story_path, self.out = target.story, target.path, target.out
        self.jobs = resolve_jobs(as_drawn_by(engine, self.story, target.folder), model=drawing.model,
                                 story_dir=target.folder)
        self.panel_jobs = [job for job in self.jobs if not job.is_anchor]
        redraw = {check_panel_number(n, len(self.panel_jobs), target.path) for n in panels}
        # The jobs to draw again even when cached, named by their file (unique within a build).
        self.redo = {job.file for job in self.jobs if force or job.index in redraw and not job.is_anchor}
        self.recorder = Recorder(self.story, str(target.path), target.given_out, drawing.model)
        self.cache = PanelCache(target.cache_dir(drawing.cache))
        self.keyed: list[KeyedJob] = []
        self.missing: list[KeyedJob] = []
        self.to_draw: list[KeyedJob] = []
        self.anchors: dict[str, KeyedJob] = {}
        self.previous: dict[str, Any] = {}
        self.drawn_keys: set[str] = set()  # the keys this build drew (a key two stories share counts for one)
        self.error: StoryboardError | None = None

    def prepare(self) -> None:
        """Key every job and store the characters' own pictures; what is left to draw is `to_draw`."""
        self.out.remove_temp_files()
        self.previous = previous_manifest(self.out)
        self.engine.prepare(self.jobs)
        keying = Keying(self.engine, self.story_path, self.cache, previous_identities(self.previous, self.engine.name))
        self.keyed = [keying.key(job, must_draw=job.file in self.redo) for job in self.jobs]
        self.missing = [k for k in self.keyed
                        if k.job.file in self.redo and not k.job.image or not self.cache.has(k.key)]
        store_pictures(self.missing, keying.pictures, self.cache, self.recorder, self.engine.name)
        self.to_draw = [k for k in self.missing if not k.job.image]
        self.anchors = keying.anchors()

    def forced(self, key: str) -> bool:
        return any(k.key == key and k.job.file in self.redo for k in self.to_draw)

    def finish(self, progress: BuildProgress) -> BuildResult:
        """Publish the panels and anchors, compose the pages if their key changed, and write the manifest."""
        progress.composing()
        results = self._publish()
        panels = [r for r in results if not r.job.is_anchor]
        anchors = [r for r in results if r.job.is_anchor]
        remove_stale(self.out, len(self.panel_jobs), {r.job.file for r in anchors})
        cast = [CastMember(display_name(self.story, r.job.character), self.cache.open(r.key), r.job.file, r.key)
                for r in anchors] if self.story.layout.cast else []
        book = book_pages(self.story)
        for page in book:
            for number in page.panels:
                panels[number - 1].page = page.number
        pages = Pages(self.story, self.panel_jobs, {r.job.index: r.key for r in panels}, self.engine,
                      self.self_contained, cast, book, edition_links(self.target))
        pages.write(self.out, self.cache, previous_page_keys(self.previous),
                    flagged={r.job.index for r in panels if r.info.get("nsfw")})
        result = BuildResult(self.story, self.out.root, self.engine.name, panels, pages.key, anchors, pages.listed())
        write_if_changed(self.out.manifest, manifest_bytes(result, str(self.story_path)))
        return result

    def _publish(self) -> list[PanelResult]:
        """Every job's image copied from the cache to its file. A key the build drew counts as drawn for the first
        job that has it; a user's own picture stored now counts as drawn. What the renderer reported (e.g. a
        safety-checker flag) travels in the cached PNG."""
        drawn_files: set[str] = set()
        credited: set[str] = set()  # keys already counted for a job
        for k in self.missing:
            if k.job.image or k.key in self.drawn_keys and k.key not in credited:
                drawn_files.add(k.job.file)
                credited.add(k.key)
        return [PanelResult(k.job, k.key, k.job.file in drawn_files,
                            publish(self.cache, k, self.out / k.job.file, self.recorder, self.engine.name),
                            dict(k.identity), dict(k.references))
                for k in self.keyed]
