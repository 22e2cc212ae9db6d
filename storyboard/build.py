"""Orchestration only: load → resolve → render what is missing → compose → manifest.

Rendered panels land in ``<out>/cache/<key>.png`` the moment each is done, named by a hash of everything that
decides their pixels, so an interrupted build loses nothing that was finished and a rebuild draws only what changed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from storyboard import __version__
from storyboard.compose.html import page_html
from storyboard.compose.png import PagePanel, page_png
from storyboard.errors import BuildError
from storyboard.files import atomic_save_png, atomic_write_bytes, atomic_write_text
from storyboard.render import DEFAULT_RENDERER, Renderer, get_renderer
from storyboard.resolve import PanelJob, content_key, resolve
from storyboard.story import Story, load_story


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


@dataclass
class BuildResult:
    story: Story
    out_dir: Path
    renderer: str
    panels: list[PanelResult]

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
    def manifest(self) -> Path:
        return self.out_dir / "manifest.json"


def default_out_dir(story_path: str | Path) -> Path:
    return Path("build") / Path(story_path).stem


def build(
    story_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    renderer: str | Renderer = DEFAULT_RENDERER,
    model: str | None = None,
    progress: BuildProgress | None = None,
) -> BuildResult:
    """Build the comic page for the story file at `story_path` into `out_dir` (default ``build/<stem>``)."""
    progress = progress or BuildProgress()
    story = load_story(story_path)
    out = Path(out_dir) if out_dir is not None else default_out_dir(story_path)
    if out.exists() and not out.is_dir():
        raise BuildError(f"output folder {out} exists and is not a folder")
    engine = get_renderer(renderer) if isinstance(renderer, str) else renderer
    jobs = resolve(story, model=model)

    cache = out / "cache"
    keys = {job.index: content_key({**job.params(), **engine.identity(job)}) for job in jobs}
    missing = [job for job in jobs if not (cache / f"{keys[job.index]}.png").is_file()]
    progress.start(jobs, missing, engine.name)

    infos: dict[int, dict[str, Any]] = {}
    if missing:
        progress.panel_started(missing[0])
        for done in engine.render(missing, on_step=progress.step):
            if done.info:  # written before the image, so a cached image always finds its info
                atomic_write_text(cache / f"{keys[done.job.index]}.json", json.dumps(done.info, ensure_ascii=False))
            atomic_save_png(cache / f"{keys[done.job.index]}.png", done.image)
            infos[done.job.index] = done.info
            progress.panel_done(done.job)
            following = [j for j in missing if j.index > done.job.index]
            if following:
                progress.panel_started(following[0])

    progress.composing()
    rendered = set(infos)
    for job in jobs:
        if job.index not in infos:
            infos[job.index] = _cached_info(cache / f"{keys[job.index]}.json")
    results = [PanelResult(job, keys[job.index], job.index in rendered, infos[job.index]) for job in jobs]
    images = {job.index: _open(cache / f"{keys[job.index]}.png") for job in jobs}
    for job in jobs:
        _publish(cache / f"{keys[job.index]}.png", out / job.file)
    _remove_stale_panels(out, len(jobs))

    page, _ = page_png(story.title, [PagePanel(j.index, images[j.index], j.caption) for j in jobs],
                       story.layout.columns)
    atomic_save_png(out / "page.png", page)
    atomic_write_text(out / "index.html", page_html(
        title=story.title, language=story.language, columns=story.layout.columns, version=__version__,
        renderer=engine.name, model=jobs[0].model,
        panels=[dict(index=j.index, file=j.file, caption=j.caption, prompt=j.prompt, seed=j.seed,
                     width=j.width, height=j.height, info=infos[j.index]) for j in jobs],
    ))
    result = BuildResult(story, out, engine.name, results)
    atomic_write_text(out / "manifest.json", json.dumps(manifest(result, story_path), ensure_ascii=False, indent=2)
                      + "\n")
    return result


def manifest(result: BuildResult, story_path: str | Path) -> dict[str, Any]:
    return {
        "storyboard": __version__,
        "story": str(story_path),
        "title": result.story.title,
        "renderer": result.renderer,
        "page": {"png": "page.png", "html": "index.html", "columns": result.story.layout.columns},
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
                **({"info": p.info} if p.info else {}),
            }
            for p in result.panels
        ],
    }


def _cached_info(path: Path) -> dict[str, Any]:
    """What the renderer reported about a cached panel (e.g. a safety-checker flag); {} if nothing."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (OSError, SyntaxError) as exc:
        raise BuildError(f"cannot read cached panel {path}: {exc}") from None


def _publish(source: Path, target: Path) -> None:
    """Copy a cached panel to its page name, atomically, unless it is already identical."""
    data = source.read_bytes()
    if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
        return
    atomic_write_bytes(target, data)


_PANEL_FILE = re.compile(r"^panel-(\d+)\.png$")


def _remove_stale_panels(out: Path, count: int) -> None:
    """Remove panel files left by an earlier build of a longer story."""
    folder = out / "panels"
    for path in folder.glob("panel-*.png"):
        match = _PANEL_FILE.match(path.name)
        if match and int(match.group(1)) > count:
            path.unlink(missing_ok=True)

