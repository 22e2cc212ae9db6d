"""`check`: score a built page with CLIP."""

from __future__ import annotations

import click

from storyboard.check import DEFAULT_CHECK_MODEL
from storyboard.cli.options import not_blank, out_option


@click.command(short_help="Score a built page: CLIP-I per character, CLIP-T per panel.")
@click.argument("story", type=click.Path(dir_okay=True, path_type=str))
@out_option
@click.option("--model", default=DEFAULT_CHECK_MODEL, show_default=True, callback=not_blank,
              help="CLIP model to score with: a hub id (cached, or downloaded unless HF_HUB_OFFLINE=1) or a local "
                   "folder. A DINOv2 model scores CLIP-I only.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON instead of a table.")
@click.option("--min", "minimum", type=click.FloatRange(-1.0, 1.0), default=None, metavar="X",
              help="Exit 1 if any character's CLIP-I is below X (the panel-pair mean; the panel-vs-anchor mean for "
                   "a character in one panel).")
def check(story: str, out_dir: str | None, model: str, as_json: bool, minimum: float | None) -> None:
    """Score the page built from STORY: how alike each character looks from panel to panel (CLIP-I), and how
    well each panel matches its prompt (CLIP-T).

    \b
    storyboard build stories/little_prince.yaml
    storyboard check stories/little_prince.yaml --min 0.8
    """
    import json

    from storyboard.check import check as run_check

    report = run_check(story, out_dir, model=model)
    click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) if as_json else report.table(), nl=as_json)
    if minimum is not None:
        low = report.below(minimum)
        if low:
            names = ", ".join(f"{c.name} ({c.score:.4f})" for c in low)
            click.echo(f"CLIP-I below {minimum:g}: {names}", err=True)
            raise click.exceptions.Exit(1)
        if not any(c.score is not None for c in report.characters):
            click.echo(f"--min {minimum:g} judged nothing: no character is in two panels or has an anchor",
                       err=True)
