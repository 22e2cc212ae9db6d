"""What several commands share: the options of commands that draw, the renderer they name, progress, Ctrl-C."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from storyboard.building import BuildProgress


def progress_display() -> tuple[BuildProgress, contextlib.AbstractContextManager]:
    from storyboard.progress import PlainProgress, RichProgress

    if sys.stderr.isatty():
        rich = RichProgress()
        return rich, rich
    return PlainProgress(), contextlib.nullcontext()


def not_blank(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An empty value (an unset `$VAR` on the line) is a mistake, not a request for the default."""
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; leave the option out for its default", ctx, param)
    return value


@contextlib.contextmanager
def keeping_finished_panels() -> Iterator[None]:
    """Ctrl-C: say that nothing finished is lost, and exit 130 as shells expect."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo("Interrupted; finished panels are kept and reused by the next build.", err=True)
        raise click.exceptions.Exit(130) from None


def out_option(command: Callable[..., None]) -> Callable[..., None]:
    """--out, the build folder, shared by the commands that write or read one."""
    return click.option("--out", "out_dir", type=click.Path(file_okay=False), callback=not_blank,
                        help="Output folder [default: build/<story name>].")(command)


def drawing_options(command: Callable[..., None]) -> Callable[..., None]:
    """--out, --renderer, --model, --base-url and --timeout, shared by the commands that draw panels."""
    command = click.option("--timeout", type=click.FloatRange(0, min_open=True), default=None, metavar="SECONDS",
                           help="Remote renderers: give up on a panel after this long, retries included "
                                "[default: 600].")(command)
    command = click.option("--base-url", default=None, metavar="URL", callback=not_blank,
                           help="Remote renderers: the service's address, e.g. http://127.0.0.1:7860 for "
                                "--renderer a1111 [a1111: STORYBOARD_A1111_URL; comfyui: COMFYUI_URL, else "
                                "http://127.0.0.1:8188; dashscope: DASHSCOPE_HTTP_BASE_URL or the SDK's "
                                "default].")(command)
    command = click.option("--model", default=None, callback=not_blank,
                           help="Model to render with, overriding render.model in the story.")(command)
    command = click.option("--renderer", default=None, metavar="NAME", callback=not_blank,
                           help="Renderer to draw panels with: diffusers (default), draft, openvino, dashscope, "
                                "a1111, comfyui [default: the story's render.renderer, else diffusers].")(command)
    return out_option(command)


def cache_option(command: Callable[..., None]) -> Callable[..., None]:
    """--cache, a cache folder shared by the commands that draw into one."""
    return click.option("--cache", default=None, type=click.Path(file_okay=False), envvar="STORYBOARD_CACHE",
                        callback=not_blank,
                        help="A cache folder to share between stories, users and machines [default: "
                             "<out>/cache; env: STORYBOARD_CACHE].")(command)


def chosen_renderer(name: str | None, base_url: str | None, timeout: float | None,
                    stories: Sequence[str] = ()) -> Any:
    """The renderer to draw with, given only the options that were on the command line: --renderer, else the one
    the `stories`' `render.renderer` names, else the default."""
    from storyboard.render import DEFAULT_RENDERER, get_renderer, named_renderer, renderer_options

    if name is None:
        from storyboard.building.options import readable_stories

        name = named_renderer(readable_stories(stories)) or DEFAULT_RENDERER
    options: dict[str, Any] = {key: value for key, value in (("base_url", base_url), ("timeout", timeout))
                               if value is not None}
    if "notify" in renderer_options(name):  # retries of a remote service are worth a line on stderr
        options["notify"] = lambda line: click.echo(line, err=True)
    return get_renderer(name, **options)
