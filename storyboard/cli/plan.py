"""`plan`: let an LLM write a story's panels."""

from __future__ import annotations

import click

from storyboard.cli.options import not_blank
from storyboard.plan.backend import DEFAULT_PROVIDER, PROVIDERS


@click.command()
@click.argument("story", type=click.Path(dir_okay=True, path_type=str))
@click.option("--provider", type=click.Choice(list(PROVIDERS)), default=DEFAULT_PROVIDER, show_default=True,
              help="dashscope: Qwen through the DashScope SDK (DASHSCOPE_API_KEY). openai: any OpenAI-compatible "
                   "server (OPENAI_API_KEY, optional for local servers).")
@click.option("--model", default=None, callback=not_blank,
              help="Model name [default: qwen-plus for dashscope; openai needs one].")
@click.option("--base-url", default=None, metavar="URL", callback=not_blank,
              help="API address, e.g. http://localhost:11434/v1 for Ollama [openai: OPENAI_BASE_URL or OpenAI; "
                   "dashscope: DASHSCOPE_HTTP_BASE_URL or the SDK's default].")
@click.option("--panels", type=click.IntRange(1, 500), default=None,  # plan.planner.MAX_PANELS
              help="Number of panels [default: as many as the story has, or 8]; more than 24 are planned in "
                   "parts of a few pages each.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=180.0, show_default=True,
              metavar="SECONDS", help="Give up on a request after this long (each attempt).")
@click.option("--retries", type=click.IntRange(0, 10), default=3, show_default=True,
              help="Retries after a rate limit, server error, timeout or dropped connection.")
@click.option("--dry-run", is_flag=True, help="Print the new panels as YAML and change nothing.")
@click.option("--from", "script", default=None, metavar="SCRIPT.fountain", callback=not_blank,
              type=click.Path(dir_okay=False, path_type=str),
              help="Plan a film from a Fountain screenplay: its scenes, speakers and dialogue (verbatim); the LLM "
                   "chooses the shots. STORY is written anew, or its panels are replaced.")
def plan(story: str, provider: str, model: str | None, base_url: str | None, panels: int | None, timeout: float,
         retries: int, dry_run: bool, script: str | None) -> None:
    """Let an LLM write the panels of STORY from its title and outline.

    \b
    export DASHSCOPE_API_KEY=sk-...
    storyboard plan stories/my_story.yaml
    storyboard plan stories/my_story.yaml --provider openai --base-url http://localhost:11434/v1 --model qwen2.5

    Panels marked `locked: true` are kept exactly as they are; the file keeps its comments and layout.
    """
    from storyboard.plan import backend_class, plan_story

    if model is None and backend_class(provider).default_model is None:
        raise click.UsageError(f"--provider {provider} needs --model (the name the server knows the model by, "
                               "e.g. qwen-plus on DashScope's compatible mode, qwen2.5 on Ollama)")
    if script is not None:
        if panels is not None or dry_run:
            raise click.UsageError("--from plans every scene of the script: it takes neither --panels nor --dry-run")
        from storyboard.plan.from_script import plan_from_script

        try:
            planned = plan_from_script(story, script, provider=provider, model=model, base_url=base_url,
                                       timeout=timeout, retries=retries,
                                       notify=lambda line: click.echo(line, err=True))
        except KeyboardInterrupt:
            raise click.Abort() from None
        click.echo(planned.summary())
        return
    try:
        result = plan_story(story, provider=provider, model=model, base_url=base_url, panels=panels,
                            timeout=timeout, retries=retries, dry_run=dry_run,
                            notify=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        raise click.Abort() from None
    if dry_run:
        click.echo(result.yaml, nl=False)
        click.echo(result.summary(), err=True)
    else:
        click.echo(result.summary())
