"""Orchestration only: load → resolve → keys → draw what is missing (anchors first) → compose → manifest.

A job is a panel or a character's anchor portrait. Drawn images land in the `PanelCache` (``<out>/cache/<key>.png``)
the moment each is done, named by a hash of everything that decides their pixels (`panel_key`; a panel that reads
anchors has their keys in its own) and carrying their provenance (`storyboard.provenance`), so an interrupted build
loses nothing that was finished and a rebuild draws only what changed. A build holds ``<out>/.lock`` while it runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from storyboard import __version__
from storyboard.cache import PanelCache
from storyboard.compose.book import Sheet, book_from_story, page_key_input, story_sheets
from storyboard.compose.page import CastMember, page_from_story
from storyboard.compose.sheet import contact_sheet
from storyboard.compose.write import BOOK_PDF, page_file, write_book
from storyboard.errors import BuildError, RenderError, StoryboardError, StoryError
from storyboard.files import atomic_save_png, atomic_write_bytes, exclusive_lock, remove_temp_files
from storyboard.provenance import PARAMETERS, STORYBOARD, a1111_parameters, is_complete_png, text_chunk, with_text
from storyboard.render import DEFAULT_RENDERER, Reference, Rendered, Renderer, get_renderer
from storyboard.resolve import PanelJob, anchored_characters, check_panel_number, content_key, resolve_jobs
from storyboard.story import MAX_SEED, Story, load_story
from storyboard.workers import LocalWorkers, Task, Workers

log = logging.getLogger("storyboard")


class BuildProgress:
    """Receives build events; the CLI shows them as a progress bar or plain lines. The default ignores them.

    Jobs are panels and character anchors (`PanelJob.label` names either).
    """

    def start(self, jobs: list[PanelJob], to_render: list[PanelJob], renderer: str) -> None: ...

    def drawing_on(self, job: PanelJob, worker: str) -> None:
        """`worker` ("local", or a Ray worker's name) began drawing `job`; `panel_started` follows."""

    def panel_started(self, job: PanelJob) -> None: ...

    def step(self, job: PanelJob, step: int, total: int) -> None: ...

    def panel_done(self, job: PanelJob) -> None: ...

    def cached(self, job: PanelJob, key: str) -> None:
        """`job`'s image was just saved in the cache under `key` (a live page can show it at once)."""

    def composing(self) -> None: ...


@dataclass
class PanelResult:
    job: PanelJob
    key: str
    rendered: bool
    info: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # the keys of the anchors it read, by name
    page: int = 1  # the page it is on


@dataclass
class BuildResult:
    story: Story
    out_dir: Path
    renderer: str
    panels: list[PanelResult]
    page_key: str = ""
    characters: list[PanelResult] = field(default_factory=list)  # the anchors, in the story's order
    pages: list[tuple[Sheet, str]] = field(default_factory=list)  # a book's pages and their keys; [] for one page

    @property
    def rendered(self) -> int:
        return sum(p.rendered for p in self.panels)

    @property
    def reused(self) -> int:
        return len(self.panels) - self.rendered

    @property
    def anchors_rendered(self) -> int:
        return sum(c.rendered for c in self.characters)

    @property
    def index_html(self) -> Path:
        return self.out_dir / "index.html"

    @property
    def page_png(self) -> Path:
        return self.out_dir / "page.png"

    @property
    def page_pdf(self) -> Path:
        return self.out_dir / "page.pdf"

    @property
    def page_pngs(self) -> list[Path]:
        """The PNG of every page: page.png, or a book's pages/page-01.png…"""
        if not self.pages:
            return [self.page_png]
        return [self.out_dir / page_file(sheet.number) for sheet, _ in self.pages]

    @property
    def pdf(self) -> Path:
        """page.pdf, or a book's book.pdf."""
        return self.out_dir / BOOK_PDF if self.pages else self.page_pdf

    @property
    def manifest(self) -> Path:
        return self.out_dir / "manifest.json"


def default_out_dir(story_path: str | Path) -> Path:
    return Path("build") / Path(story_path).stem


def panel_key(job: PanelJob, renderer: str, identity: dict[str, Any], references: Sequence[str] = ()) -> str:
    """The content key of a panel or anchor: the sha256 of canonical JSON of everything that decides its pixels.

    That is ``job.params()`` (final prompt, negative prompt, seed, width, height, model as named, steps,
    guidance, renderer options such as the scheduler, and for a panel that reads anchors the consistency
    settings), the renderer's name, ``renderer.identity(job)``: what else decides the pixels for that renderer
    (its version, the model's identity such as the hub commit or the file's sha256, the scheduler and its config,
    dtype, device class), and `references`: the keys of the anchors the panel reads, in its `characters` order.
    Captions, titles, layout and the panel's position are not in it unless the renderer draws them (the draft
    renderer does), so editing them re-composes the page without redrawing anything. A panel that reads no
    anchor has exactly the key it had before anchors existed.
    """
    params = {**job.params(), "renderer": renderer, "identity": identity}
    if references:
        params["references"] = list(references)
    return content_key(params)


def picture_key(sha256: str, width: int, height: int) -> str:
    """The key of a character's own reference picture, fitted to the anchor size: its bytes and that size."""
    return content_key({"picture_sha256": sha256, "width": width, "height": height})


@dataclass
class _Context:
    """Where panels are drawn for: written into each PNG's provenance chunk."""

    story: Story
    story_path: str
    out: str | None  # the --out given, when it is not the default folder
    model: str | None  # the --model given
    variant: bool = False

    def record(self, job: PanelJob, key: str, renderer: str, identity: dict[str, Any],
               info: dict[str, Any] | None = None, version: str = __version__,
               references: Mapping[str, str] | None = None) -> dict[str, Any]:
        where = {"character": job.character} if job.is_anchor else {"panel": job.index}
        return {
            "storyboard": version,
            "key": key,
            "renderer": renderer,
            "identity": identity,
            "job": job.to_dict(),
            "story": {"title": self.story.title, "file": self.story_path, **where,
                      "panels": len(self.story.panels)},
            "build": {"out": self.out, "model": self.model},
            "variant": self.variant,
            **({"references": dict(references)} if references else {}),
            **({"info": info} if info else {}),
        }


def _record_text(record: dict[str, Any]) -> str:
    # ASCII keeps the chunk a plain tEXt chunk, so rewriting an unchanged record gives identical bytes.
    return json.dumps(record, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


@dataclass
class _Keyed:
    """A job with its renderer identity, its key, and the keys of the anchors it reads (by character name)."""

    job: PanelJob
    key: str
    identity: dict[str, Any]
    references: dict[str, str] = field(default_factory=dict)


class _Jobs:
    """A build's jobs keyed in dependency order (anchors before the panels that read them)."""

    def __init__(self, engine: Renderer, story_path: str | Path, cache: PanelCache,
                 previous: list[dict[str, Any]]) -> None:
        self.engine, self.story_path, self.cache, self.previous = engine, story_path, cache, previous
        self.keyed: dict[str, _Keyed] = {}  # by job.file
        self.pictures: dict[str, Image.Image] = {}  # fitted reference pictures, by anchor key

    def key(self, job: PanelJob, must_draw: bool = False) -> _Keyed:
        """Key `job` (its anchors must be keyed already). See `_identity` for `must_draw`."""
        if job.image:
            sha, picture = _read_picture(job, self.story_path)
            key = picture_key(sha, job.width, job.height)
            self.pictures[key] = picture
            keyed = _Keyed(job, key, {"picture": Path(job.image).name, "sha256": sha})
        else:
            references = {name: self.anchors()[name].key for name in job.references}
            identity = self._identity(job, list(references.values()), must_draw)
            keyed = _Keyed(job, panel_key(job, self.engine.name, identity, list(references.values())), identity,
                           references)
        self.keyed[job.file] = keyed
        return keyed

    def anchors(self) -> dict[str, _Keyed]:
        """The anchors keyed so far, by character name."""
        return {k.job.character: k for k in self.keyed.values() if k.job.is_anchor}

    def _identity(self, job: PanelJob, references: list[str], must_draw: bool) -> dict[str, Any]:
        """The renderer's identity for `job`.

        When the renderer cannot identify its model (the weights were moved away, the hub is unreachable) a job
        whose image the last build drew from the same job is still reused: nothing that decides its pixels could
        have changed without the model being there to draw them. A job that must be drawn raises the error.
        """
        try:
            return self.engine.identity(job)
        except RenderError:
            if must_draw:
                raise
            for identity in self.previous:
                if self.cache.has(panel_key(job, self.engine.name, identity, references)):
                    return identity
            raise


def build(
    story_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    story: Story | None = None,
    renderer: str | Renderer = DEFAULT_RENDERER,
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
    keeps (and its loaded model with it) across builds. The build holds the output folder's lock while it runs;
    a caller that holds it already (a `storyboard.Session`) calls `build_in`.
    """
    story = story if story is not None else load_story(story_path)
    with exclusive_lock(output_folder(story_path, out_dir), "build"):
        return build_in(story_path, out_dir, story=story, renderer=renderer, model=model, progress=progress,
                        panels=panels, force=force, self_contained=self_contained, cache=cache, workers=workers)


def build_in(
    story_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    story: Story | None = None,
    renderer: str | Renderer = DEFAULT_RENDERER,
    model: str | None = None,
    progress: BuildProgress | None = None,
    panels: Iterable[int] = (),
    force: bool = False,
    self_contained: bool = False,
    cache: str | Path | None = None,
    workers: Workers | None = None,
) -> BuildResult:
    """`build`, for a caller that holds the output folder's lock (`storyboard.files.exclusive_lock`)."""
    progress = progress or BuildProgress()
    engine = get_renderer(renderer) if isinstance(renderer, str) else renderer
    story = story if story is not None else load_story(story_path)
    one = _StoryBuild(story_path, out_dir, story, engine, model=model, panels=panels, force=force,
                      self_contained=self_contained, cache=cache)
    one.prepare()
    progress.start(one.jobs, [k.job for k in _distinct(one.to_draw)], engine.name)
    warming: list[threading.Thread] = []
    _draw([one], engine, workers or LocalWorkers(), progress, stop_at_first_error=True,
          after_first=lambda: warming.append(_warm_page(story, one.panel_jobs, engine.name)))
    for thread in warming:
        thread.join()
    return one.finish(progress)

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
    renderer: str | Renderer = DEFAULT_RENDERER,
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
    not stop the others. Every story's output folder is locked while the batch runs.
    """
    progress = progress or BuildProgress()
    engine = get_renderer(renderer) if isinstance(renderer, str) else renderer
    outcomes = [StoryOutcome(Path(p), Path(out_dir) / Path(p).stem if out_dir is not None else default_out_dir(p))
                for p in story_paths]
    _check_distinct_folders(outcomes)
    builds: list[tuple[StoryOutcome, _StoryBuild]] = []
    with contextlib.ExitStack() as locks:
        for outcome in outcomes:
            held = contextlib.ExitStack()
            try:
                story = load_story(outcome.story_path)
                one = _StoryBuild(outcome.story_path, outcome.out_dir, story, engine, model=model, force=force,
                                  self_contained=self_contained, cache=cache)
                held.enter_context(exclusive_lock(one.out, "build"))
                one.prepare()
            except StoryboardError as exc:
                # The lock sees the failure, so a first build of the story leaves no empty folder behind.
                held.__exit__(type(exc), exc, exc.__traceback__)
                outcome.error = exc
                continue
            locks.enter_context(held)
            builds.append((outcome, one))
        ready = [one for _, one in builds]
        jobs = [job for one in ready for job in one.jobs]
        tasks = _distinct([k for one in ready for k in one.to_draw])
        progress.start(jobs, [k.job for k in tasks], engine.name)
        batch = BatchResult(outcomes, engine.name)
        batch.copied = _draw(ready, engine, workers or LocalWorkers(), progress, stop_at_first_error=False)
        batch.drawn = sum(len(one.drawn_keys) for one in ready)
        batch.duplicates = sum(len(one.to_draw) for one in ready) - len(tasks)
        for outcome, one in builds:
            if one.error is None:
                try:
                    outcome.result = one.finish(progress)
                except StoryboardError as exc:
                    one.error = exc
            outcome.error = one.error
    return batch


def _check_distinct_folders(outcomes: list[StoryOutcome]) -> None:
    seen: dict[Path, Path] = {}
    for outcome in outcomes:
        other = seen.setdefault(outcome.out_dir.resolve(), outcome.story_path)
        if other != outcome.story_path:
            raise BuildError(f"{other} and {outcome.story_path} would both be built into {outcome.out_dir}; "
                             "rename one, or build them apart")


class _StoryBuild:
    """One story's build in three steps: what it needs (`prepare`, under its output folder's lock), drawing
    (`_draw`, shared by the stories of a batch) and publishing its pages (`finish`)."""

    def __init__(self, story_path: str | Path, out_dir: str | Path | None, story: Story, engine: Renderer, *,
                 model: str | None, panels: Iterable[int] = (), force: bool = False, self_contained: bool = False,
                 cache: str | Path | None = None) -> None:
        self.story_path, self.story, self.engine, self.self_contained = story_path, story, engine, self_contained
        self.out = output_folder(story_path, out_dir)
        self.jobs = resolve_jobs(_as_drawn_by(engine, story), model=model, story_dir=Path(story_path).parent)
        self.panel_jobs = [job for job in self.jobs if not job.is_anchor]
        redraw = {check_panel_number(n, len(self.panel_jobs), story_path) for n in panels}
        self.redo = {job.file for job in self.jobs if force or job.index in redraw and not job.is_anchor}
        self.context = _Context(story, str(story_path), _given_out(story_path, out_dir), model)
        self.cache = PanelCache(cache if cache is not None else self.out / "cache")
        self.keyed: list[_Keyed] = []
        self.missing: list[_Keyed] = []
        self.to_draw: list[_Keyed] = []
        self.anchors: dict[str, _Keyed] = {}
        self.previous: dict[str, Any] = {}
        self.drawn_keys: set[str] = set()  # the keys this build drew (a key two stories share counts for one)
        self.error: StoryboardError | None = None

    def prepare(self) -> None:
        """Key every job and store the characters' own pictures; what is left to draw is `to_draw`."""
        remove_temp_files(self.out)
        self.previous = _previous_manifest(self.out)
        keying = _Jobs(self.engine, self.story_path, self.cache,
                       _previous_identities(self.previous, self.engine.name))
        self.keyed = [keying.key(job, must_draw=job.file in self.redo) for job in self.jobs]
        self.missing = [k for k in self.keyed
                        if k.job.file in self.redo and not k.job.image or not self.cache.has(k.key)]
        _store_pictures(self.missing, keying.pictures, self.cache, self.context, self.engine.name)
        self.to_draw = [k for k in self.missing if not k.job.image]
        self.anchors = keying.anchors()

    def forced(self, key: str) -> bool:
        return any(k.key == key and k.job.file in self.redo for k in self.to_draw)

    def finish(self, progress: BuildProgress) -> BuildResult:
        """Publish the panels and anchors, compose the pages if their key changed, and write the manifest."""
        progress.composing()
        drawn: set[str] = set()
        for k in self.missing:  # a key the build drew counts as drawn for the first job that has it
            if k.key in self.drawn_keys and k.key not in drawn or k.job.image:
                drawn.add(k.job.file)
                drawn.add(k.key)
        # What the renderer reported for each panel (e.g. a safety-checker flag) travels in the cached PNG.
        results = [PanelResult(k.job, k.key, k.job.file in drawn,
                               _publish(self.cache, k, self.out / k.job.file, self.context, self.engine.name),
                               k.identity, k.references)
                   for k in self.keyed]
        panel_results = [r for r in results if not r.job.is_anchor]
        anchor_results = [r for r in results if r.job.is_anchor]
        _remove_stale_panels(self.out, len(self.panel_jobs))
        _remove_stale_characters(self.out, {r.job.file for r in anchor_results})

        keys = {r.job.index: r.key for r in panel_results}
        cast = [CastMember(r.job.character, self.cache.open(r.key), r.job.file, r.key) for r in anchor_results] \
            if self.story.layout.cast else []
        story, out, renderer, self_contained = self.story, self.out, self.engine.name, self.self_contained
        sheets = story_sheets(story)
        book = len(sheets) > 1
        for sheet in sheets:
            for number in sheet.panels:
                panel_results[number - 1].page = sheet.number
        keys_of_pages = [content_key(page_key_input(story, self.panel_jobs, keys, renderer=renderer,
                                                    version=__version__, self_contained=self_contained, sheet=sheet,
                                                    book=book, cast=cast))
                         for sheet in sheets]
        page_key = keys_of_pages[0] if not book else content_key(
            {"pages": keys_of_pages, "self_contained": self_contained})
        before = self.previous.get("page") if isinstance(self.previous.get("page"), dict) else {}
        drawn_pages = {entry.get("number"): entry.get("key") for entry in before.get("pages") or []
                       if isinstance(entry, dict)} if book else {}
        stale = [sheet.number for sheet, key in zip(sheets, keys_of_pages)
                 if book and (drawn_pages.get(sheet.number) != key
                              or not is_complete_png(out / page_file(sheet.number)))]
        if page_key != before.get("key") or stale or not _page_complete(out, self_contained, len(sheets)):
            images = {j.index: self.cache.open(keys[j.index]) for j in self.panel_jobs}
            flagged = {r.job.index for r in panel_results if r.info.get("nsfw")}
            write_book(out, book_from_story(story, self.panel_jobs, images, renderer=renderer, version=__version__,
                                            flagged=flagged, cast=cast, sheets=sheets),
                       self_contained=self_contained, pngs=stale)
        result = BuildResult(story, out, renderer, panel_results, page_key, anchor_results,
                             [(sheet, key) for sheet, key in zip(sheets, keys_of_pages)] if book else [])
        _write_if_changed(out / "manifest.json",
                          (json.dumps(manifest(result, self.story_path), ensure_ascii=False, indent=2) + "\n").encode())
        return result


def _read_picture(job: PanelJob, story_path: str | Path) -> tuple[str, Image.Image]:
    """A character's own reference picture: the sha256 of its bytes, and the picture fitted to the anchor size."""
    path = Path(job.image)
    shown = _shown_path(path, story_path)

    def refuse(problem: str) -> StoryError:
        return StoryError(f"cannot use {shown} as the reference picture of {job.character!r}: {problem}",
                          file=story_path, field=f"characters.{job.character}.image")

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise refuse("no such file") from None
    except IsADirectoryError:
        raise refuse("it is a folder") from None
    except OSError as exc:
        raise refuse(exc.strerror or str(exc)) from None
    try:
        with Image.open(path) as image:
            image.load()
            picture = ImageOps.fit(ImageOps.exif_transpose(image).convert("RGB"), (job.width, job.height),
                                   Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise refuse("not an image Pillow can read") from None
    return hashlib.sha256(data).hexdigest(), picture


def _shown_path(path: Path, story_path: str | Path) -> Path:
    """`path` as the user can find it: beside the story file's path when it lies below the story's folder."""
    try:
        return Path(story_path).parent / path.relative_to(Path(story_path).parent.resolve())
    except ValueError:
        return path


def _store_pictures(missing: list[_Keyed], pictures: Mapping[str, Image.Image], cache: PanelCache,
                    context: _Context, renderer: str) -> None:
    """Put the fitted reference pictures that are not cached yet into the cache, like drawn anchors."""
    for k in missing:
        if k.job.image:
            pnginfo = PngInfo()
            pnginfo.add_text(STORYBOARD, _record_text(context.record(k.job, k.key, renderer, k.identity)))
            cache.put(k.key, pictures[k.key], pnginfo)


def _as_drawn_by(engine: Renderer, story: Story) -> Story:
    """`story` as `engine` can draw it: a renderer that cannot read anchors draws no anchor portraits, and its
    panels are keyed and drawn as with ``consistency: none``; one that cannot apply LoRAs draws and keys its panels
    without them. The build says so once."""
    if not getattr(engine, "applies_loras", True) and (story.render.loras or any(
            c.lora for c in story.characters.values())):
        log.warning("the %s renderer cannot apply LoRAs; render.loras and the characters' lora are not used",
                    engine.name)
        story = story.model_copy(update={
            "render": story.render.model_copy(update={"loras": []}),
            "characters": {name: c.model_copy(update={"lora": None}) for name, c in story.characters.items()}})
    if getattr(engine, "reads_references", False) or story.render.consistency == "none" \
            or not anchored_characters(story):
        return story
    log.warning("the %s renderer cannot read character anchors; panels that list characters are drawn from their "
                "prompts alone (render.consistency: none)", engine.name)
    return story.model_copy(update={"render": story.render.model_copy(update={"consistency": "none"})})


def output_folder(story_path: str | Path, out_dir: str | Path | None) -> Path:
    """The folder a build of `story_path` writes into: `out_dir`, or ``build/<story file name>``."""
    out = Path(out_dir) if out_dir is not None else default_out_dir(story_path)
    if out.exists() and not out.is_dir():
        raise BuildError(f"output folder {out} exists and is not a folder")
    return out


def _given_out(story_path: str | Path, out_dir: str | Path | None) -> str | None:
    if out_dir is None or Path(out_dir) == default_out_dir(story_path):
        return None
    return str(out_dir)


def _previous_manifest(out: Path) -> dict[str, Any]:
    """The manifest the last build of `out` wrote; {} if there is none, or it is not one storyboard wrote."""
    try:
        data = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _previous_identities(previous: dict[str, Any], renderer: str) -> list[dict[str, Any]]:
    """The renderer identities the last build recorded, for when the model cannot be identified now."""
    panels = previous.get("panels") if previous.get("renderer") == renderer else None
    found: list[dict[str, Any]] = []
    for panel in panels if isinstance(panels, list) else []:
        identity = panel.get("identity") if isinstance(panel, dict) else None
        if isinstance(identity, dict) and identity not in found:
            found.append(identity)
    return found


def _page_complete(out: Path, self_contained: bool, pages: int = 1) -> bool:
    fonts = self_contained or any((out / "fonts").glob("*.woff"))
    if pages > 1:
        drawn = all(is_complete_png(out / page_file(n)) for n in range(1, pages + 1)) and (out / BOOK_PDF).is_file()
    else:
        drawn = is_complete_png(out / "page.png") and (out / "page.pdf").is_file()
    return drawn and (out / "index.html").is_file() and fonts


def _distinct(keyed: Iterable[_Keyed]) -> list[_Keyed]:
    """The first job of each key, in order."""
    seen: dict[str, _Keyed] = {}
    for k in keyed:
        seen.setdefault(k.key, k)
    return list(seen.values())


@dataclass
class _Owner:
    """A job a build needs drawn, with the cache it goes into, what its provenance says, and the anchors it
    may read."""

    keyed: _Keyed
    cache: PanelCache
    context: _Context
    anchors: Mapping[str, _Keyed]
    build: _StoryBuild | None = None


def _draw(builds: Sequence[_StoryBuild], engine: Renderer, workers: Workers, progress: BuildProgress, *,
          stop_at_first_error: bool, after_first: Callable[[], object] = lambda: None) -> int:
    """Draw what `builds` miss, each distinct key once, into every cache that needs it; return how many images
    were copied from another build's cache instead of being drawn.

    A failure is raised at once with `stop_at_first_error`; otherwise it becomes the `error` of every build
    that needed the job, and the rest is drawn.
    """
    owners: dict[str, list[_Owner]] = {}
    for one in builds:
        for k in one.to_draw:
            owners.setdefault(k.key, []).append(_Owner(k, one.cache, one.context, one.anchors, one))
    copied = 0
    for key, needing in list(owners.items()):
        holder = next((one for one in builds if one not in {o.build for o in needing}
                       and any(k.key == key for k in one.keyed)), None)
        if holder is not None and not any(o.build.forced(key) for o in needing if o.build):
            for owner in needing:  # another story of the batch has it cached already
                owner.cache.put_bytes(key, holder.cache.read_bytes(key))
            del owners[key]
            copied += 1
    _draw_owned(owners, engine, workers, progress, stop_at_first_error, after_first)
    return copied


def _draw_owned(owners: dict[str, list[_Owner]], engine: Renderer, workers: Workers, progress: BuildProgress,
                stop_at_first_error: bool = True, after_first: Callable[[], object] = lambda: None) -> None:
    first = [needing[0].keyed for needing in owners.values()]
    # Anchors first, so that the panels reading them find them in the cache.
    tasks = [Task(k.job, k.key, k.references) for k in sorted(first, key=lambda k: not k.job.is_anchor)]
    workers.draw(engine, tasks, _Storing(owners, engine.name, progress, stop_at_first_error, after_first))


class _Storing:
    """The build's side of drawing (`storyboard.workers.Delivery`): workers hand each drawn image here, and only
    here is it written, into the cache of every build that needs it, with its provenance."""

    def __init__(self, owners: dict[str, list[_Owner]], renderer: str, progress: BuildProgress,
                 stop_at_first_error: bool, after_first: Callable[[], object]) -> None:
        self.owners, self.renderer, self.progress = owners, renderer, progress
        self.stop_at_first_error, self.after_first = stop_at_first_error, after_first
        self.stored: set[tuple[Path, str]] = set()
        self.images: dict[tuple[Path, str], Image.Image] = {}
        self.done_count = 0

    def ready(self, task: Task) -> bool:
        cache = self.owners[task.key][0].cache
        return all(self._has(cache, key) for key in task.references.values())

    def _has(self, cache: PanelCache, key: str) -> bool:
        if (cache.folder, key) not in self.stored and cache.has(key):
            self.stored.add((cache.folder, key))
        return (cache.folder, key) in self.stored

    def references(self, task: Task) -> dict[str, Reference]:
        owner = self.owners[task.key][0]
        found = {}
        for name, key in task.references.items():
            if (owner.cache.folder, key) not in self.images:
                self.images[owner.cache.folder, key] = owner.cache.open(key)
            found[name] = Reference(owner.anchors[name].job, self.images[owner.cache.folder, key])
        return found

    def started(self, task: Task, worker: str) -> None:
        self.progress.drawing_on(task.job, worker)
        self.progress.panel_started(task.job)

    def step(self, job: PanelJob, step: int, total: int) -> None:
        self.progress.step(job, step, total)

    def done(self, task: Task, rendered: Rendered, worker: str) -> None:
        needing = self.owners[task.key]
        written: set[Path] = set()
        for owner in needing:
            if owner.cache.folder in written:  # a shared cache: once
                continue
            k = owner.keyed
            pnginfo = PngInfo()
            pnginfo.add_text(PARAMETERS, a1111_parameters(k.job, k.identity, self.renderer))
            pnginfo.add_text(STORYBOARD, _record_text(owner.context.record(k.job, k.key, self.renderer, k.identity,
                                                                           rendered.info, references=k.references)))
            owner.cache.put(k.key, rendered.image, pnginfo)
            written.add(owner.cache.folder)
            self.stored.add((owner.cache.folder, k.key))
        for owner in needing:
            self.progress.cached(owner.keyed.job, task.key)
        if needing[0].build is not None:
            needing[0].build.drawn_keys.add(task.key)
        self.progress.panel_done(task.job)
        self.done_count += 1
        if self.done_count == 1:
            self.after_first()

    def failed(self, task: Task, error: StoryboardError) -> None:
        if self.stop_at_first_error:
            raise error
        for owner in self.owners[task.key]:
            if owner.build is not None and owner.build.error is None:
                owner.build.error = error


def manifest(result: BuildResult, story_path: str | Path) -> dict[str, Any]:
    return {
        "storyboard": __version__,
        "story": str(story_path),
        "title": result.story.title,
        **({"planned_by": result.story.planned_by.model_dump()} if result.story.planned_by else {}),
        "renderer": result.renderer,
        "page": _page_entry(result),
        "panels": [
            {
                "index": p.job.index,
                "file": p.job.file,
                "prompt": p.job.prompt,
                "negative_prompt": p.job.negative_prompt,
                "seed": p.job.seed,
                "width": p.job.width,
                "height": p.job.height,
                "model": p.job.model,
                "steps": p.job.steps,
                "guidance": p.job.guidance,
                "caption": p.job.caption,
                "characters": list(p.job.characters),
                "key": p.key,
                "rendered": p.rendered,
                "page": p.page,
                "identity": p.identity,
                **({"references": p.references} if p.references else {}),
                **({"info": p.info} if p.info else {}),
            }
            for p in result.panels
        ],
        "characters": [
            {
                "name": c.job.character,
                "file": c.job.file,
                "key": c.key,
                "seed": c.job.seed,
                "prompt": c.job.prompt,
                "rendered": c.rendered,
                **({"image": result.story.characters[c.job.character].image} if c.job.image else {}),
            }
            for c in result.characters
        ],
    }


def _page_entry(result: BuildResult) -> dict[str, Any]:
    layout = result.story.layout
    if not result.pages:
        return {"png": "page.png", "pdf": "page.pdf", "html": "index.html",
                **layout.model_dump(include={"columns", "direction", "page"}), "key": result.page_key}
    return {"pdf": BOOK_PDF, "html": "index.html",
            **layout.model_dump(include={"columns", "rows", "direction", "page"}), "key": result.page_key,
            "pages": [{"number": sheet.number, "png": page_file(sheet.number), "panels": list(sheet.panels),
                       **({"chapter": sheet.chapter} if sheet.chapter else {}), "key": key}
                      for sheet, key in result.pages]}


def _warm_page(story: Story, jobs: list[PanelJob], renderer: str) -> threading.Thread:
    """Cut the page's font subsets and import the PDF writer while panels are drawn: neither needs their pixels.

    Started once the model is loaded, so that it overlaps the drawing (which leaves the interpreter free while
    torch computes) rather than the imports and the model load.

    The page is composed again once the panels exist; that reuses the subsets (they are memoised) and reports
    any error, so a failure here is ignored.
    """
    def warm() -> None:
        try:
            blank = {job.index: Image.new("RGB", (job.width, job.height)) for job in jobs}
            page_from_story(story, jobs, blank, renderer=renderer, version=__version__).fonts
            import fpdf  # noqa: F401
        except Exception:
            pass

    thread = threading.Thread(target=warm, name="storyboard-page-fonts", daemon=True)
    thread.start()
    return thread


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write `data` atomically unless the file already holds it, so unchanged outputs keep their times."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    atomic_write_bytes(path, data)


def _publish(cache: PanelCache, keyed: _Keyed, target: Path, context: _Context, renderer: str) -> dict[str, Any]:
    """Copy a cached image to `target`, atomically, unless it is already identical; return the renderer's info
    recorded when it was drawn.

    The copy's provenance names the story, panel and build it is published for now (a cached image may have
    been drawn for another panel number, or as a variant); the rest of the file is the cached bytes.
    """
    cached = cache.read_bytes(keyed.key)
    try:
        drawn = json.loads(text_chunk(cached, STORYBOARD) or "{}")
    except ValueError:
        drawn = {}
    drawn = drawn if isinstance(drawn, dict) else {}
    info = drawn.get("info") if isinstance(drawn.get("info"), dict) else {}
    record = context.record(keyed.job, keyed.key, renderer, keyed.identity, info,
                            drawn.get("storyboard", __version__), keyed.references)
    _write_if_changed(target, with_text(cached, STORYBOARD, _record_text(record)))
    return info


_PANEL_FILE = re.compile(r"^panel-(\d+)\.png$")


def _remove_stale_panels(out: Path, count: int) -> None:
    """Remove panel files left by an earlier build of a longer story."""
    folder = out / "panels"
    for path in folder.glob("panel-*.png"):
        match = _PANEL_FILE.match(path.name)
        if match and int(match.group(1)) > count:
            path.unlink(missing_ok=True)


def _remove_stale_characters(out: Path, current: set[str]) -> None:
    """Remove anchor files of characters that no panel lists any more (or that were renamed)."""
    for path in (out / "characters").glob("*.png"):
        if f"characters/{path.name}" not in current:
            path.unlink(missing_ok=True)


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


def variants_dir(out: Path, panel: int) -> Path:
    return out / "variants" / f"panel-{panel:02d}"


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
    renderer: str | Renderer = DEFAULT_RENDERER,
    model: str | None = None,
    progress: BuildProgress | None = None,
    story: Story | None = None,
    cache: str | Path | None = None,
) -> VariantsResult:
    """Draw `count` candidate seeds for one panel into ``<out>/variants/panel-NN/seed-S.png``, plus a contact sheet.

    Candidates go through the same cache as builds, so after ``storyboard pick`` the next build reuses the chosen
    one. The page, ``panels/`` and the manifest are left alone. Holds the output folder's lock while it runs; a
    caller that holds it already calls `variants_in`.
    """
    story = story if story is not None else load_story(story_path)
    with exclusive_lock(output_folder(story_path, out_dir), "variants run"):
        return variants_in(story_path, panel, count, seed_start=seed_start, out_dir=out_dir, renderer=renderer,
                           model=model, progress=progress, story=story, cache=cache)


def variants_in(
    story_path: str | Path,
    panel: int,
    count: int,
    *,
    seed_start: int | None = None,
    out_dir: str | Path | None = None,
    renderer: str | Renderer = DEFAULT_RENDERER,
    model: str | None = None,
    progress: BuildProgress | None = None,
    story: Story | None = None,
    cache: str | Path | None = None,
) -> VariantsResult:
    """`variants`, for a caller that holds the output folder's lock."""
    progress = progress or BuildProgress()
    story = story if story is not None else load_story(story_path)
    out = output_folder(story_path, out_dir)
    engine = get_renderer(renderer) if isinstance(renderer, str) else renderer
    jobs = resolve_jobs(_as_drawn_by(engine, story), model=model, story_dir=Path(story_path).parent)
    panel_jobs = [j for j in jobs if not j.is_anchor]
    job = panel_jobs[check_panel_number(panel, len(panel_jobs), story_path) - 1]
    if not 1 <= count <= MAX_VARIANTS:
        raise BuildError(f"--count must be between 1 and {MAX_VARIANTS} (got {count})")
    seeds = candidate_seeds(job.seed, count, seed_start)
    if seeds[0] < 0 or seeds[-1] > MAX_SEED:
        start = f"--seed-start {seed_start}" if seed_start is not None else f"panel {panel}'s seed {job.seed}"
        raise BuildError(f"{start} with --count {count} gives seeds {seeds[0]} to {seeds[-1]}; "
                         f"seeds lie between 0 and {MAX_SEED}")
    candidates = [replace(job, seed=seed) for seed in seeds]
    anchors = [j for j in jobs if j.character in job.references]
    context = _Context(story, str(story_path), _given_out(story_path, out_dir), model, variant=True)

    remove_temp_files(out)
    cache = PanelCache(cache if cache is not None else out / "cache")
    keying = _Jobs(engine, story_path, cache, [])
    work = [keying.key(j, must_draw=not j.is_anchor) for j in anchors + candidates]
    missing = [k for k in work if not cache.has(k.key)]
    _store_pictures(missing, keying.pictures, cache, context, engine.name)
    to_draw = [k for k in missing if not k.job.image]
    progress.start(candidates, [k.job for k in to_draw], engine.name)
    read = keying.anchors()
    _draw_owned({k.key: [_Owner(k, cache, context, read)] for k in _distinct(to_draw)}, engine, LocalWorkers(),
                progress)

    progress.composing()
    folder = variants_dir(out, panel)
    files = []
    shown = [k for k in work if not k.job.is_anchor]
    for k in shown:
        files.append(folder / f"seed-{k.job.seed}.png")
        _publish(cache, k, files[-1], context, engine.name)
    sheet = contact_sheet(f"{story.title} · panel {panel}", [(cache.open(k.key), k.job.seed) for k in shown],
                          job.seed)
    atomic_save_png(folder / "contact-sheet.png", sheet)
    return VariantsResult(panel, seeds, job.seed, files, folder / "contact-sheet.png",
                          sum(not k.job.is_anchor for k in to_draw), engine.name, [j.character for j in anchors],
                          sum(k.job.is_anchor for k in to_draw))


class _CallableModule(types.ModuleType):
    """``storyboard.build`` names both this module and its `build` function. Once the module is imported, the
    package attribute is the module (Python's import system sets it), so calling it builds, as the function does."""

    def __call__(self, *args: Any, **kwargs: Any) -> BuildResult:
        return build(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
