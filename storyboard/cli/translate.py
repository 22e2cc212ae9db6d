"""`translate`: editions of a story in other languages, written by an LLM."""

from __future__ import annotations

import click

from storyboard.cli.options import not_blank
from storyboard.plan.backend import DEFAULT_PROVIDER, PROVIDERS


@click.command(short_help="Write editions of a story in other languages (text only: no panel is drawn again).")
@click.argument("story", type=click.Path(dir_okay=False, path_type=str))
@click.option("--to", "languages", required=True, metavar="LANG[,LANG...]", callback=not_blank,
              help="Language codes of the editions: en, ja, pt-BR...")
@click.option("--provider", type=click.Choice(list(PROVIDERS)), default=DEFAULT_PROVIDER, show_default=True,
              help="As for `plan`: dashscope (DASHSCOPE_API_KEY) or any OpenAI-compatible server (openai).")
@click.option("--model", default=None, callback=not_blank, help="Model name [default: qwen-plus for dashscope].")
@click.option("--base-url", default=None, metavar="URL", callback=not_blank, help="API address, as for `plan`.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=180.0, show_default=True,
              metavar="SECONDS", help="Give up on a request after this long (each attempt).")
@click.option("--retries", type=click.IntRange(0, 10), default=3, show_default=True,
              help="Retries after a rate limit, server error, timeout or dropped connection.")
@click.option("--dry-run", is_flag=True, help="Print the editions as YAML and write nothing.")
def translate(story: str, languages: str, provider: str, model: str | None, base_url: str | None, timeout: float,
              retries: int, dry_run: bool) -> None:
    """Write STORY's text in other languages, one edition file per language beside it (little_prince.en.yaml).

    \b
    storyboard translate stories/little_prince.yaml --to en,ja
    storyboard build stories/little_prince.en.yaml       # draws nothing the original's build drew

    Running it again translates only the panels that are new or changed in the story since; a panel you edited
    and marked `locked: true` is kept as it is.
    """
    from storyboard.plan import backend_class
    from storyboard.translate import translate_story

    if model is None and backend_class(provider).default_model is None:
        raise click.UsageError(f"--provider {provider} needs --model")
    codes = [code.strip() for code in languages.split(",") if code.strip()]
    try:
        done = translate_story(story, codes, provider=provider, model=model, base_url=base_url, timeout=timeout,
                               retries=retries, dry_run=dry_run, notify=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        raise click.Abort() from None
    for edition in done:
        if dry_run:
            click.echo(edition.text, nl=False)
        click.echo(edition.summary(), err=dry_run)
