"""`build`, `serve` and `download`: draw whole stories, once, in batches, on Ray, or live as the story is edited."""

from __future__ import annotations

import re
from typing import Any

import click

from storyboard.cli.options import (
    cache_option,
    chosen_renderer,
    drawing_options,
    keeping_finished_panels,
    progress_display,
)
from storyboard.errors import StoryError

RAY_ADDRESS = re.compile(r"^(auto|local|ray://\S+|[\w.-]+:\d+)$")


def _ray_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """`--ray` takes an optional address; a story file right after it is a story, not an address."""
    if value is not None and not RAY_ADDRESS.match(value):
        raise click.BadParameter(f"{value!r} is not a Ray address (auto, HOST:PORT or ray://HOST:PORT); to start a "
                                 "local Ray instance put --ray after the stories", ctx, param)
    return value


@click.command()
@click.argument("stories", nargs=-1, required=True, metavar="STORY...", type=click.Path(path_type=str))
@drawing_options
@cache_option
@click.option("--panel", "panels", type=int, multiple=True, metavar="N",
              help="Redraw panel N even if a cached image exists (repeatable; one story only).")
@click.option("--force", is_flag=True, help="Redraw every panel, ignoring cached images.")
@click.option("--self-contained", is_flag=True, help="Inline the images into index.html: one file to mail or upload.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              callback=_ray_address,
              help="Draw on Ray workers: a local Ray instance over this machine, or the cluster at ADDRESS "
                   "(auto, HOST:PORT, ray://HOST:PORT). Needs storyboard[ray].")
@click.option("--workers", type=click.IntRange(1), default=None, metavar="N",
              help="With --ray: how many workers [default: one per GPU Ray sees, one without a GPU].")
def build(stories: tuple[str, ...], out_dir: str | None, cache: str | None, renderer: str | None, model: str | None,
          base_url: str | None, timeout: float | None, panels: tuple[int, ...], force: bool, self_contained: bool,
          ray_address: str | None, workers: int | None) -> None:
    """Render the panels of each STORY and compose its page (HTML, PNG, PDF, manifest).

    Panels whose prompt, seed, size, model and settings are unchanged since an earlier build are reused from
    the cache; only the others are drawn, each distinct one once. STORY may be a story file, a folder of them or
    a quoted glob ('stories/*.yaml'); with several stories, --out is the folder their own folders go into.
    """
    files, several = _story_files(stories)
    if several and panels:
        raise click.UsageError("--panel works on one story at a time")
    if workers is not None and ray_address is None:
        raise click.UsageError("--workers goes with --ray")
    engine = chosen_renderer(renderer, base_url, timeout, files)
    drawing = _workers(ray_address, workers)
    progress, shown = progress_display()
    try:
        with keeping_finished_panels(), shown:
            if several:
                from storyboard.building import build_many

                batch = build_many(files, out_dir, renderer=engine, model=model, progress=progress, force=force,
                                   self_contained=self_contained, cache=cache, workers=drawing)
            else:
                from storyboard.building import build as run_build

                result = run_build(files[0], out_dir, renderer=engine, model=model, progress=progress,
                                   panels=panels, force=force, self_contained=self_contained, cache=cache,
                                   workers=drawing)
    finally:
        if drawing is not None:
            drawing.close()
    if several:
        _report_batch(batch)
        return
    click.echo(f"rendered {result.rendered}, reused {result.reused}{_anchors(result)} ({result.renderer} renderer)")
    if result.webtoon:
        count = len(result.page_pngs)
        click.echo(f"wrote {result.index_html}, webtoon/001.png … {count:03d}.png ({count} slices), "
                   f"{result.pdf.name}, {result.manifest.name}")
    elif result.pages:
        pages = f"pages/page-01.png … page-{len(result.pages):02d}.png ({len(result.pages)} pages)"
        click.echo(f"wrote {result.index_html}, {pages}, {result.pdf.name}, {result.manifest.name}")
    else:
        click.echo(f"wrote {result.index_html}, {result.page_png.name}, {result.page_pdf.name}, {result.manifest.name}")


def _anchors(result: Any) -> str:
    if not result.characters:
        return ""
    return (f"; character anchors: drawn {result.anchors_rendered}, "
            f"reused {len(result.characters) - result.anchors_rendered}")


def _story_files(arguments: tuple[str, ...]) -> tuple[list[str], bool]:
    """The story files named by files, folders (their .yaml/.yml files) and globs; and whether that is a batch
    (several arguments, or a folder or glob), whose --out is the parent of the stories' own folders."""
    from glob import glob
    from pathlib import Path

    files: list[str] = []
    several = len(arguments) > 1
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                raise StoryError("no story files (.yaml, .yml) in this folder", file=argument)
        elif any(c in argument for c in "*?[") and not path.exists():
            found = sorted(p for p in glob(argument) if Path(p).is_file())
            if not found:
                raise StoryError(f"{argument} matches no file")
        else:
            files.append(argument) if argument not in files else None
            continue
        several = True
        files.extend(f for f in found if f not in files)
    return files, several


def _workers(ray_address: str | None, count: int | None) -> Any:
    """Ray workers for --ray, or None to draw in this process."""
    if ray_address is None:
        return None
    from storyboard.workers.ray_cluster import RayWorkers, import_ray

    import_ray()  # says how to install it before anything is loaded
    return RayWorkers(None if ray_address == "local" else ray_address, count)


def _report_batch(batch: Any) -> None:
    """A line per story (an `Error:` line on stderr for one that failed), then the total; exit 1 if any failed."""
    for story in batch.stories:
        if story.error is not None:
            message = str(story.error)
            shown = message if message.startswith(str(story.story_path)) else f"{story.story_path}: {message}"
            click.echo(f"Error: {shown}", err=True)
        else:
            result = story.result
            click.echo(f"{story.story_path}: rendered {result.rendered}, reused {result.reused}{_anchors(result)}"
                       f" -> {story.out_dir}")
    failed = len(batch.failed)
    built = len(batch.stories) - failed
    shared = [f"{batch.duplicates} duplicate{'s' if batch.duplicates != 1 else ''} drawn once"] \
        if batch.duplicates else []
    if batch.copied:
        shared.append(f"{batch.copied} copied from another story's cache")
    click.echo(f"{len(batch.stories)} stories: {built} built, {failed} failed; drew {batch.drawn} "
               f"image{'s' if batch.drawn != 1 else ''}{' (' + ', '.join(shared) + ')' if shared else ''} "
               f"({batch.renderer} renderer)")
    if failed:
        raise click.exceptions.Exit(1)


@click.command(short_help="Serve a live page that redraws as you edit the story.")
@click.argument("story", type=click.Path(dir_okay=True, path_type=str))
@drawing_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 lets anyone on the network drive it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--export", "formats", default="", metavar="F[,F...]",
              help="After each build, export these formats as `storyboard export --format` does.")
def serve(story: str, out_dir: str | None, renderer: str | None, model: str | None, base_url: str | None,
          timeout: float | None, host: str, port: int, open_browser: bool, formats: str) -> None:
    """Build STORY, serve its page on http://HOST:PORT/ and rebuild it on every save.

    The renderer and its model stay loaded between builds, so an edit redraws only the panels it changed; the
    page updates in place, shows each panel's progress, and offers redraw, variants and pick for every panel.
    Ctrl-C stops it.
    """
    from storyboard.serve.server import serve as run_server

    if formats:
        from storyboard.export import format_names

        format_names(formats, "--export")
    run_server(story, out_dir, host=host, port=port, open_browser=open_browser,
               renderer=chosen_renderer(renderer, base_url, timeout, [story]), model=model,
               say=lambda line: click.echo(line), warn=lambda line: click.echo(line, err=True), export=formats)


@click.command(short_help="Download a Stable Diffusion model from the Hugging Face hub.")
@click.argument("model")
def download(model: str) -> None:
    """Download MODEL (a hub id, or a story file whose render.model and render.vae to fetch) into the Hugging Face
    cache.

    Only the files the pipeline loads are fetched, not every checkpoint the repository holds; builds then work
    offline. Gated models need `hf auth login` first.
    """
    from storyboard.render.diffusers import download as fetch
    from storyboard.render.diffusers import download_story_models
    from storyboard.story import load_story

    if model.lower().endswith((".yaml", ".yml")):
        render = load_story(model).render
        for name, folder in download_story_models(render.model, render.vae, render.config):
            click.echo(f"{name} is in {folder}")
        return
    click.echo(f"{model} is in {fetch(model)}")
