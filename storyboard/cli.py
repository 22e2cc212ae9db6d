"""The command line: arguments in, one library call, errors out as one line and an exit code."""

from __future__ import annotations

import contextlib
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from storyboard import __version__
from storyboard.check import DEFAULT_CHECK_MODEL
from storyboard.errors import StoryboardError, StoryError, internal_error
from storyboard.plan.backend import DEFAULT_PROVIDER, PROVIDERS

if TYPE_CHECKING:
    from storyboard.build import BuildProgress


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="storyboard")
@click.option("--debug", is_flag=True, help="Show the full traceback when something goes wrong.")
def cli(debug: bool) -> None:
    """Turn a story into a comic page.

    \b
    storyboard build stories/little_prince.yaml --renderer draft
    """


def _progress() -> tuple[BuildProgress, contextlib.AbstractContextManager]:
    from storyboard.progress import PlainProgress, RichProgress

    if sys.stderr.isatty():
        rich = RichProgress()
        return rich, rich
    return PlainProgress(), contextlib.nullcontext()


def _not_blank(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An empty value (an unset `$VAR` on the line) is a mistake, not a request for the default."""
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; leave the option out for its default", ctx, param)
    return value


@contextlib.contextmanager
def _keeping_finished_panels() -> Iterator[None]:
    """Ctrl-C: say that nothing finished is lost, and exit 130 as shells expect."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo("Interrupted; finished panels are kept and reused by the next build.", err=True)
        raise click.exceptions.Exit(130) from None


def out_option(command: Callable[..., None]) -> Callable[..., None]:
    """--out, the build folder, shared by the commands that write or read one."""
    return click.option("--out", "out_dir", type=click.Path(file_okay=False), callback=_not_blank,
                        help="Output folder [default: build/<story name>].")(command)


def drawing_options(command: Callable[..., None]) -> Callable[..., None]:
    """--out, --renderer, --model, --base-url and --timeout, shared by the commands that draw panels."""
    command = click.option("--timeout", type=click.FloatRange(0, min_open=True), default=None, metavar="SECONDS",
                           help="Remote renderers: give up on a panel after this long, retries included "
                                "[default: 600].")(command)
    command = click.option("--base-url", default=None, metavar="URL", callback=_not_blank,
                           help="Remote renderers: the service's address, e.g. http://127.0.0.1:7860 for "
                                "--renderer a1111 [a1111: STORYBOARD_A1111_URL; dashscope: "
                                "DASHSCOPE_HTTP_BASE_URL or the SDK's default].")(command)
    command = click.option("--model", default=None, callback=_not_blank,
                           help="Model to render with, overriding render.model in the story.")(command)
    command = click.option("--renderer", default=None, metavar="NAME", callback=_not_blank,
                           help="Renderer to draw panels with: diffusers (default), draft, dashscope, "
                                "a1111.")(command)
    return out_option(command)


def cache_option(command: Callable[..., None]) -> Callable[..., None]:
    """--cache, a cache folder shared by the commands that draw into one."""
    return click.option("--cache", default=None, type=click.Path(file_okay=False), envvar="STORYBOARD_CACHE",
                        callback=_not_blank,
                        help="A cache folder to share between stories, users and machines [default: "
                             "<out>/cache; env: STORYBOARD_CACHE].")(command)


def _renderer(name: str | None, base_url: str | None, timeout: float | None) -> Any:
    """The renderer to draw with, given only the options that were on the command line."""
    from storyboard.render import DEFAULT_RENDERER, get_renderer, renderer_options

    name = name or DEFAULT_RENDERER
    options: dict[str, Any] = {key: value for key, value in (("base_url", base_url), ("timeout", timeout))
                               if value is not None}
    if "notify" in renderer_options(name):  # retries of a remote service are worth a line on stderr
        options["notify"] = lambda line: click.echo(line, err=True)
    return get_renderer(name, **options)


RAY_ADDRESS = re.compile(r"^(auto|local|ray://\S+|[\w.-]+:\d+)$")


def _ray_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """`--ray` takes an optional address; a story file right after it is a story, not an address."""
    if value is not None and not RAY_ADDRESS.match(value):
        raise click.BadParameter(f"{value!r} is not a Ray address (auto, HOST:PORT or ray://HOST:PORT); to start a "
                                 "local Ray instance put --ray after the stories", ctx, param)
    return value


@cli.command()
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
    engine = _renderer(renderer, base_url, timeout)
    drawing = _workers(ray_address, workers)
    progress, shown = _progress()
    try:
        with _keeping_finished_panels(), shown:
            if several:
                from storyboard.build import build_many

                batch = build_many(files, out_dir, renderer=engine, model=model, progress=progress, force=force,
                                   self_contained=self_contained, cache=cache, workers=drawing)
            else:
                from storyboard.build import build as run_build

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
    if result.pages:
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


@cli.command(short_help="Serve a live page that redraws as you edit the story.")
@click.argument("story", type=click.Path(dir_okay=True, path_type=str))
@drawing_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 lets anyone on the network drive it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
def serve(story: str, out_dir: str | None, renderer: str | None, model: str | None, base_url: str | None,
          timeout: float | None, host: str, port: int, open_browser: bool) -> None:
    """Build STORY, serve its page on http://HOST:PORT/ and rebuild it on every save.

    The renderer and its model stay loaded between builds, so an edit redraws only the panels it changed; the
    page updates in place, shows each panel's progress, and offers redraw, variants and pick for every panel.
    Ctrl-C stops it.
    """
    from storyboard.serve.server import serve as run_server

    run_server(story, out_dir, host=host, port=port, open_browser=open_browser,
               renderer=_renderer(renderer, base_url, timeout), model=model, say=lambda line: click.echo(line),
               warn=lambda line: click.echo(line, err=True))


@cli.command(short_help="Download a Stable Diffusion model from the Hugging Face hub.")
@click.argument("model")
def download(model: str) -> None:
    """Download MODEL (a hub id, or a story file whose render.model to fetch) into the Hugging Face cache.

    Only the files the pipeline loads are fetched, not every checkpoint the repository holds; builds then work
    offline. Gated models need `hf auth login` first.
    """
    from storyboard.render.diffusers import download as fetch
    from storyboard.story import load_story

    if model.lower().endswith((".yaml", ".yml")):
        model = load_story(model).render.model
    click.echo(f"{model} is in {fetch(model)}")


@cli.command(short_help="Show how a panel PNG was made and how to draw it again.")
@click.argument("image", type=click.Path(path_type=str))
def info(image: str) -> None:
    """Show how panel IMAGE was made and the command that draws it again."""
    from storyboard.provenance import describe, read_provenance

    provenance = read_provenance(image)
    click.echo(describe(provenance, _current_params(provenance)), nl=False)


def _current_params(provenance: Any) -> dict[str, Any] | None:
    """The panel's job as its story file resolves today, if that file is here and valid."""
    from pathlib import Path

    from storyboard.resolve import resolve, resolve_anchors
    from storyboard.story import load_story

    if not Path(provenance.story_file).is_file():
        return None
    model = provenance.record.get("build", {}).get("model")
    try:
        story = load_story(provenance.story_file)
        if provenance.character:
            anchors = resolve_anchors(story, model=model, story_dir=Path(provenance.story_file).parent)
            return next((job.params() for job in anchors if job.character == provenance.character), None)
        jobs = resolve(story, model=model)
    except StoryboardError:
        return None
    return jobs[provenance.panel - 1].params() if provenance.panel <= len(jobs) else None


@cli.command(short_help="Draw candidate seeds for one panel, with a contact sheet.")
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
    from storyboard.build import variants as run_variants

    engine = _renderer(renderer, base_url, timeout)
    progress, shown = _progress()
    with _keeping_finished_panels(), shown:
        result = run_variants(story, panel, count, seed_start=seed_start, out_dir=out_dir,
                              renderer=engine, model=model, progress=progress, cache=cache)
    seeds = f"seed {result.seeds[0]}" if len(result.seeds) == 1 else f"seeds {result.seeds[0]}-{result.seeds[-1]}"
    click.echo(f"rendered {result.rendered}, reused {result.reused} ({result.renderer} renderer)")
    click.echo(f"wrote {result.sheet} and {len(result.files)} candidate{'s' if len(result.files) > 1 else ''} "
               f"({seeds}) in {result.sheet.parent}")
    click.echo(f"keep one: storyboard pick {shlex.quote(story)} --panel {panel} --seed <seed>")


@cli.command(short_help="Keep a seed for one panel in the story file.")
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


@cli.command(short_help="Score a built page: CLIP-I per character, CLIP-T per panel.")
@click.argument("story", type=click.Path(dir_okay=True, path_type=str))
@out_option
@click.option("--model", default=DEFAULT_CHECK_MODEL, show_default=True, callback=_not_blank,
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


@cli.command()
@click.argument("story", type=click.Path(dir_okay=True, path_type=str))
@click.option("--provider", type=click.Choice(list(PROVIDERS)), default=DEFAULT_PROVIDER, show_default=True,
              help="dashscope: Qwen through the DashScope SDK (DASHSCOPE_API_KEY). openai: any OpenAI-compatible "
                   "server (OPENAI_API_KEY, optional for local servers).")
@click.option("--model", default=None, callback=_not_blank,
              help="Model name [default: qwen-plus for dashscope; openai needs one].")
@click.option("--base-url", default=None, metavar="URL", callback=_not_blank,
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
def plan(story: str, provider: str, model: str | None, base_url: str | None, panels: int | None, timeout: float,
         retries: int, dry_run: bool) -> None:
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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args  # accepted anywhere on the line, not only before the command
    args = [a for a in args if a != "--debug"]
    try:
        code = cli.main(args=args, prog_name="storyboard", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except StoryboardError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        return 1
    except Exception as exc:  # a bug: say so in one line unless asked for the traceback
        if debug:
            raise
        click.echo(f"Error: {internal_error(exc)}; rerun with --debug for details", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
