"""The command line: arguments in, one library call, errors out as one line and an exit code."""

from __future__ import annotations

import contextlib
import sys

import click

from storyboard import __version__
from storyboard.errors import StoryboardError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="storyboard")
@click.option("--debug", is_flag=True, help="Show the full traceback when something goes wrong.")
def cli(debug: bool) -> None:
    """Turn a story into a comic page.

    \b
    storyboard build stories/little_prince.yaml --renderer draft
    """


@cli.command()
@click.argument("story", type=click.Path(dir_okay=True, path_type=str))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output folder [default: build/<story name>].")
@click.option("--renderer", default=None, metavar="NAME", help="Renderer to draw panels with.")
@click.option("--model", default=None, help="Model to render with, overriding render.model in the story.")
@click.option("--self-contained", is_flag=True, help="Inline the images into index.html: one file to mail or upload.")
def build(story: str, out_dir: str | None, renderer: str | None, model: str | None, self_contained: bool) -> None:
    """Render the panels of STORY and compose its page (HTML, PNG, PDF, manifest)."""
    from storyboard.build import build as run_build
    from storyboard.progress import PlainProgress, RichProgress
    from storyboard.render import DEFAULT_RENDERER

    progress = RichProgress() if sys.stderr.isatty() else PlainProgress()
    with progress if isinstance(progress, RichProgress) else contextlib.nullcontext():
        result = run_build(story, out_dir, renderer=renderer or DEFAULT_RENDERER, model=model, progress=progress,
                           self_contained=self_contained)
    click.echo(f"rendered {result.rendered}, reused {result.reused} ({result.renderer} renderer)")
    click.echo(f"wrote {result.index_html}, {result.page_png.name}, {result.page_pdf.name}, {result.manifest.name}")


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
        click.echo("Interrupted; finished panels are kept and reused by the next build.", err=True)
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
        click.echo(f"Error: internal error ({type(exc).__name__}: {exc}); rerun with --debug for details", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
