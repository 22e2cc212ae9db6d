"""`variants`, `pick` and `info`: one panel at a time, its candidate seeds, the one kept, and how it was made."""

from __future__ import annotations

import shlex
from typing import Any

import click

from storyboard.cli.options import (
    cache_option,
    chosen_renderer,
    drawing_options,
    keeping_finished_panels,
    progress_display,
)
from storyboard.errors import StoryboardError


@click.command(short_help="Show how a panel PNG was made and how to draw it again.")
@click.argument("image", type=click.Path(path_type=str))
def info(image: str) -> None:
    """Show how panel IMAGE was made and the command that draws it again."""
    from storyboard.provenance import describe, read_provenance

    provenance = read_provenance(image)
    click.echo(describe(provenance, _current_params(provenance)), nl=False)


def _current_params(provenance: Any) -> dict[str, Any] | None:
    """The panel's job as its story file resolves today for the renderer that drew it (which may draw it without
    its anchors or LoRAs, as the build did), if that file is here and valid."""
    from pathlib import Path

    from storyboard.building.keys import as_drawn_by
    from storyboard.render import get_renderer
    from storyboard.resolve import resolve, resolve_anchors
    from storyboard.story import load_story

    if not Path(provenance.story_file).is_file():
        return None
    model = provenance.record.get("build", {}).get("model")
    folder = Path(provenance.story_file).parent
    try:
        story = load_story(provenance.story_file)
        if provenance.character:
            anchors = resolve_anchors(story, model=model, story_dir=folder)
            return next((job.params() for job in anchors if job.character == provenance.character), None)
        engine = get_renderer(str(provenance.record.get("renderer") or "diffusers"))
        jobs = resolve(as_drawn_by(engine, story, folder, say=False), model=model)
    except StoryboardError:
        return None
    return jobs[provenance.panel - 1].params() if provenance.panel <= len(jobs) else None


@click.command(short_help="Draw candidate seeds for one panel, with a contact sheet.")
@click.argument("story", type=click.Path(dir_okay=True, path_type=str))
@click.option("--panel", type=int, required=True, metavar="N", help="The panel to find a better seed for.")
@click.option("--count", type=int, default=4, show_default=True, metavar="K", help="How many seeds to try.")
@click.option("--seed-start", type=int, default=None, metavar="S",
              help="First seed to try [default: the panel's current seed].")
@drawing_options
@cache_option
def variants(story: str, panel: int, count: int, seed_start: int | None, out_dir: str | None, cache: str | None,
             renderer: str | None, model: str | None, base_url: str | None, timeout: float | None) -> None:
    """Draw K candidate seeds for panel N of STORY, with a contact sheet; the page is left as it is.

    The seeds are consecutive, from --seed-start or else from the panel's current seed, so the first candidate
    is the picture the page shows now. Keep the one you like with `storyboard pick`.
    """
    from storyboard.building import variants as run_variants

    engine = chosen_renderer(renderer, base_url, timeout, [story])
    progress, shown = progress_display()
    with keeping_finished_panels(), shown:
        result = run_variants(story, panel, count, seed_start=seed_start, out_dir=out_dir,
                              renderer=engine, model=model, progress=progress, cache=cache)
    seeds = f"seed {result.seeds[0]}" if len(result.seeds) == 1 else f"seeds {result.seeds[0]}-{result.seeds[-1]}"
    click.echo(f"rendered {result.rendered}, reused {result.reused} ({result.renderer} renderer)")
    click.echo(f"wrote {result.sheet} and {len(result.files)} candidate{'s' if len(result.files) > 1 else ''} "
               f"({seeds}) in {result.sheet.parent}")
    click.echo(f"keep one: storyboard pick {shlex.quote(story)} --panel {panel} --seed <seed>")


@click.command(short_help="Keep a seed for one panel in the story file.")
@click.argument("story", type=click.Path(dir_okay=True, path_type=str))
@click.option("--panel", type=int, required=True, metavar="N", help="The panel whose seed to set.")
@click.option("--seed", type=int, required=True, metavar="S", help="The seed to keep (e.g. one from `variants`).")
def pick(story: str, panel: int, seed: int) -> None:
    """Set panel N's seed in STORY to S, keeping the file's comments and formatting."""
    from storyboard.edit import pick_seed

    before = pick_seed(story, panel, seed)
    change = f"seed {seed} (unchanged)" if before == seed else f"seed {before} -> {seed}"
    click.echo(f"{story}: panel {panel} {change}")
    click.echo(f"next: storyboard build {shlex.quote(story)}")
