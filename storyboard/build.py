"""Orchestration only: load → resolve → render what is missing → compose → manifest.

Rendered panels land in ``<out>/cache/<key>.png`` the moment each is done, named by a hash of everything that
decides their pixels (`panel_key`) and carrying their provenance (`storyboard.provenance`), so an interrupted build
loses nothing that was finished and a rebuild draws only what changed. A build holds ``<out>/.lock`` while it runs.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from storyboard import __version__
from storyboard.compose.book import Sheet, book_from_story, page_key_input, story_sheets
from storyboard.compose.page import CastMember, page_from_story
from storyboard.compose.sheet import contact_sheet
from storyboard.compose.write import BOOK_PDF, page_file, write_book
from storyboard.errors import BuildError, RenderError
from storyboard.files import atomic_save_png, atomic_write_bytes, exclusive_lock, remove_temp_files
from storyboard.provenance import PARAMETERS, STORYBOARD, a1111_parameters, is_complete_png, text_chunk, with_text
from storyboard.render import DEFAULT_RENDERER, Renderer, get_renderer
from storyboard.resolve import PanelJob, check_panel_number, content_key, resolve
from storyboard.story import MAX_SEED, Story, load_story


class BuildProgress:
    """Receives build events; the CLI shows them as a progress bar or plain lines. The default ignores them."""

    def start(self, jobs: list[PanelJob], to_render: list[PanelJob], renderer: str) -> None: ...

    def panel_started(self, job: PanelJob) -> None: ...

    def step(self, job: PanelJob, step: int, total: int) -> None: ...

    def panel_done(self, job: PanelJob) -> None: ...

    def composing(self) -> None: ...


@dataclass
class PanelResult:
    job: PanelJob
    key: str
    rendered: bool
    info: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    page: int = 1  # the page it is on


@dataclass
class BuildResult:
    story: Story
    out_dir: Path
    renderer: str
    panels: list[PanelResult]
    page_key: str = ""
    pages: list[tuple[Sheet, str]] = field(default_factory=list)  # a book's pages and their keys; [] for one page

    @property
    def rendered(self) -> int:
        return sum(p.rendered for p in self.panels)

    @property
    def reused(self) -> int:
        return len(self.panels) - self.rendered

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


def panel_key(job: PanelJob, renderer: str, identity: dict[str, Any]) -> str:
    """The content key of a panel: the sha256 of canonical JSON of everything that decides its pixels.

    That is ``job.params()`` (final prompt, negative prompt, seed, width, height, model as named, steps,
    guidance, renderer options such as the scheduler), the renderer's name, and ``renderer.identity(job)``: what
    else decides the pixels for that renderer (its version, the model's identity such as the hub commit or the
    file's sha256, the scheduler and its config, dtype, device class). Captions, titles, layout and the panel's
    position are not in it unless the renderer draws them (the draft renderer does), so editing them re-composes
    the page without redrawing anything.
    """
    return content_key({**job.params(), "renderer": renderer, "identity": identity})


@dataclass
class _Context:
    """Where panels are drawn for: written into each PNG's provenance chunk."""

    story: Story
    story_path: str
    out: str | None  # the --out given, when it is not the default folder
    model: str | None  # the --model given
    variant: bool = False

    def record(self, job: PanelJob, key: str, renderer: str, identity: dict[str, Any],
               info: dict[str, Any] | None = None, version: str = __version__) -> dict[str, Any]:
        return {
            "storyboard": version,
            "key": key,
            "renderer": renderer,
            "identity": identity,
            "job": job.to_dict(),
            "story": {"title": self.story.title, "file": self.story_path, "panel": job.index,
                      "panels": len(self.story.panels)},
            "build": {"out": self.out, "model": self.model},
            "variant": self.variant,
            **({"info": info} if info else {}),
        }


def _record_text(record: dict[str, Any]) -> str:
    # ASCII keeps the chunk a plain tEXt chunk, so rewriting an unchanged record gives identical bytes.
    return json.dumps(record, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)


def build(
    story_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    renderer: str | Renderer = DEFAULT_RENDERER,
    model: str | None = None,
    progress: BuildProgress | None = None,
    panels: Iterable[int] = (),
    force: bool = False,
    self_contained: bool = False,
    cast: Sequence[CastMember] = (),
) -> BuildResult:
    """Build the comic page for the story file at `story_path` into `out_dir` (default ``build/<stem>``).

    Only panels whose content key (see `panel_key`) has no cached image are drawn; `panels` (1-based numbers)
    are redrawn even when cached, and `force` redraws every panel. `self_contained` writes index.html with the
    images and fonts inlined, so that one file can be mailed or uploaded. `cast` (portraits of the characters)
    is shown under the title of the first page when `layout.cast` is on.

    A story longer than one page (`layout.rows`, `page_break`, `chapter`) is written as pages/page-NN.png,
    book.pdf and index.html; each page has its own key, and only pages whose key changed are drawn again.
    """
    progress = progress or BuildProgress()
    story = load_story(story_path)
    out = _out_folder(story_path, out_dir)
    engine = get_renderer(renderer) if isinstance(renderer, str) else renderer
    jobs = resolve(story, model=model)
    redraw = {check_panel_number(n, len(jobs), story_path) for n in panels}
    if force:
        redraw = {job.index for job in jobs}
    context = _Context(story, str(story_path), _given_out(story_path, out_dir), model)

    with exclusive_lock(out, "build"):
        remove_temp_files(out)
        cache = out / "cache"
        previous = _previous_manifest(out)
        identities = _identities(engine, jobs, cache, _previous_identities(previous, engine.name), redraw)
        keys = {job.index: panel_key(job, engine.name, identities[job.index]) for job in jobs}
        missing = [job for job in jobs
                   if job.index in redraw or not is_complete_png(cache / f"{keys[job.index]}.png")]
        progress.start(jobs, missing, engine.name)
        work = [(job, keys[job.index], identities[job.index]) for job in missing]
        warming: list[threading.Thread] = []
        _render(engine, work, cache, context, progress,
                after_first=lambda: warming.append(_warm_page(story, jobs, engine.name)))
        for thread in warming:
            thread.join()
        drawn = {job.index for job, _, _ in work}

        progress.composing()
        # What the renderer reported for each panel (e.g. a safety-checker flag) travels in the cached PNG.
        infos = {job.index: _publish(cache / f"{keys[job.index]}.png", out / job.file, context, job, engine.name,
                                     identities[job.index]) for job in jobs}
        results = [PanelResult(job, keys[job.index], job.index in drawn, infos[job.index],
                               identities[job.index]) for job in jobs]
        _remove_stale_panels(out, len(jobs))

        sheets = story_sheets(story)
        book = len(sheets) > 1
        for result_panel in results:
            result_panel.page = next(sheet.number for sheet in sheets if result_panel.job.index in sheet.panels)
        keys_of_pages = [content_key(page_key_input(story, jobs, keys, renderer=engine.name, version=__version__,
                                                    self_contained=self_contained, sheet=sheet, book=book,
                                                    cast=cast))
                         for sheet in sheets]
        page_key = keys_of_pages[0] if not book else content_key(
            {"pages": keys_of_pages, "self_contained": self_contained})
        before = previous.get("page") if isinstance(previous.get("page"), dict) else {}
        drawn_pages = {entry.get("number"): entry.get("key") for entry in before.get("pages") or []
                       if isinstance(entry, dict)} if book else {}
        stale = [sheet.number for sheet, key in zip(sheets, keys_of_pages)
                 if book and (drawn_pages.get(sheet.number) != key
                              or not is_complete_png(out / page_file(sheet.number)))]
        if page_key != before.get("key") or stale or not _page_complete(out, self_contained, len(sheets)):
            images = {j.index: _open(cache / f"{keys[j.index]}.png") for j in jobs}
            flagged = {index for index, info in infos.items() if info.get("nsfw")}
            write_book(out, book_from_story(story, jobs, images, renderer=engine.name, version=__version__,
                                            flagged=flagged, cast=cast, sheets=sheets),
                       self_contained=self_contained, pngs=stale)
        result = BuildResult(story, out, engine.name, results, page_key,
                             [(sheet, key) for sheet, key in zip(sheets, keys_of_pages)] if book else [])
        _write_if_changed(out / "manifest.json",
                          (json.dumps(manifest(result, story_path), ensure_ascii=False, indent=2) + "\n").encode())
    return result


def _out_folder(story_path: str | Path, out_dir: str | Path | None) -> Path:
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


def _identities(engine: Renderer, jobs: list[PanelJob], cache: Path, previous: list[dict[str, Any]],
                redraw: set[int]) -> dict[int, dict[str, Any]]:
    """Each job's renderer identity.

    When the renderer cannot identify its model (the weights were moved away, the hub is unreachable) a panel
    whose image the last build drew from the same job is still reused: nothing that decides its pixels could have
    changed without the model being there to draw them. Any panel that would need drawing raises the error.
    """
    identities: dict[int, dict[str, Any]] = {}
    for job in jobs:
        try:
            identities[job.index] = engine.identity(job)
            continue
        except RenderError:
            if job.index in redraw:
                raise
            for identity in previous:
                if is_complete_png(cache / f"{panel_key(job, engine.name, identity)}.png"):
                    identities[job.index] = identity
                    break
            else:
                raise
    return identities


def _render(engine: Renderer, work: list[tuple[PanelJob, str, dict[str, Any]]], cache: Path, context: _Context,
            progress: BuildProgress, after_first: Callable[[], object] = lambda: None) -> None:
    """Draw each (job, key, identity) into the cache, saved with its provenance the moment it is done.

    `after_first` runs once the first panel is saved, when the model is loaded and the rest is drawing.
    """
    if not work:
        return
    progress.panel_started(work[0][0])
    for position, done in enumerate(engine.render([job for job, _, _ in work], on_step=progress.step)):
        job, key, identity = work[position]
        if done.job != job:
            raise RenderError(f"the {engine.name} renderer returned panel {done.job.index} out of order")
        pnginfo = PngInfo()
        pnginfo.add_text(PARAMETERS, a1111_parameters(job, identity, engine.name))
        pnginfo.add_text(STORYBOARD, _record_text(context.record(job, key, engine.name, identity, done.info)))
        atomic_save_png(cache / f"{key}.png", done.image, pnginfo)
        progress.panel_done(job)
        if position == 0:
            after_first()
        if position + 1 < len(work):
            progress.panel_started(work[position + 1][0])


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
                "key": p.key,
                "rendered": p.rendered,
                "page": p.page,
                "identity": p.identity,
                **({"info": p.info} if p.info else {}),
            }
            for p in result.panels
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


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (OSError, SyntaxError) as exc:
        raise BuildError(f"cannot read cached panel {path}: {exc}") from None


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


def _publish(source: Path, target: Path, context: _Context, job: PanelJob, renderer: str,
             identity: dict[str, Any]) -> dict[str, Any]:
    """Copy a cached panel to `target`, atomically, unless it is already identical; return the renderer's info
    recorded when it was drawn.

    The copy's provenance names the story, panel and build it is published for now (a cached image may have
    been drawn for another panel number, or as a variant); the rest of the file is the cached bytes.
    """
    cached = source.read_bytes()
    try:
        drawn = json.loads(text_chunk(cached, STORYBOARD) or "{}")
    except ValueError:
        drawn = {}
    drawn = drawn if isinstance(drawn, dict) else {}
    info = drawn.get("info") if isinstance(drawn.get("info"), dict) else {}
    record = context.record(job, source.stem, renderer, identity, info, drawn.get("storyboard", __version__))
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
) -> VariantsResult:
    """Draw `count` candidate seeds for one panel into ``<out>/variants/panel-NN/seed-S.png``, plus a contact sheet.

    Candidates go through the same cache as builds, so after ``storyboard pick`` the next build reuses the chosen
    one. The page, ``panels/`` and the manifest are left alone.
    """
    progress = progress or BuildProgress()
    story = load_story(story_path)
    out = _out_folder(story_path, out_dir)
    jobs = resolve(story, model=model)
    job = jobs[check_panel_number(panel, len(jobs), story_path) - 1]
    if not 1 <= count <= MAX_VARIANTS:
        raise BuildError(f"--count must be between 1 and {MAX_VARIANTS} (got {count})")
    seeds = candidate_seeds(job.seed, count, seed_start)
    if seeds[0] < 0 or seeds[-1] > MAX_SEED:
        start = f"--seed-start {seed_start}" if seed_start is not None else f"panel {panel}'s seed {job.seed}"
        raise BuildError(f"{start} with --count {count} gives seeds {seeds[0]} to {seeds[-1]}; "
                         f"seeds lie between 0 and {MAX_SEED}")
    engine = get_renderer(renderer) if isinstance(renderer, str) else renderer
    candidates = [replace(job, seed=seed) for seed in seeds]
    context = _Context(story, str(story_path), _given_out(story_path, out_dir), model, variant=True)

    with exclusive_lock(out, "variants run"):
        remove_temp_files(out)
        cache = out / "cache"
        work = []
        for candidate in candidates:
            identity = engine.identity(candidate)
            work.append((candidate, panel_key(candidate, engine.name, identity), identity))
        missing = [w for w in work if not is_complete_png(cache / f"{w[1]}.png")]
        progress.start(candidates, [w[0] for w in missing], engine.name)
        _render(engine, missing, cache, context, progress)

        progress.composing()
        folder = variants_dir(out, panel)
        files = []
        for candidate, key, identity in work:
            files.append(folder / f"seed-{candidate.seed}.png")
            _publish(cache / f"{key}.png", files[-1], context, candidate, engine.name, identity)
        sheet = contact_sheet(f"{story.title} · panel {panel}",
                              [(_open(cache / f"{key}.png"), c.seed) for c, key, _ in work], job.seed)
        atomic_save_png(folder / "contact-sheet.png", sheet)
    return VariantsResult(panel, seeds, job.seed, files, folder / "contact-sheet.png", len(missing), engine.name)
