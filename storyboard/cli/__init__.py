"""The command line: arguments in, one library call, errors out as one line and an exit code.

Each command lives with its family (`build`, `panels`, `check`, `plan`); the options they share are in `options`.
"""

from __future__ import annotations

import gc
import os
import signal
import sys

import click

from storyboard import __version__
from storyboard.cli.build import build, download, serve
from storyboard.cli.check import check
from storyboard.cli.export import export
from storyboard.cli.panels import info, pick, variants
from storyboard.cli.plan import plan
from storyboard.cli.translate import translate
from storyboard.errors import MAX_LINE, StoryboardError, internal_error, one_line, shorten


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="storyboard")
@click.option("--debug", is_flag=True, help="Show the full traceback when something goes wrong.")
def cli(debug: bool) -> None:
    """Turn a story into a comic page.

    \b
    storyboard build stories/little_prince.yaml --renderer draft
    """


for command in (build, export, serve, download, info, variants, pick, check, plan, translate):
    cli.add_command(command)


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
        click.echo(f"Error: {shorten(one_line(str(exc)), MAX_LINE)}", err=True)
        return 1
    except Exception as exc:  # a bug: say so in one line unless asked for the traceback
        if debug:
            raise
        click.echo(f"Error: {shorten(one_line(internal_error(exc)), MAX_LINE)}; rerun with --debug for details",
                   err=True)
        return 1


def run() -> None:
    """The `storyboard` program: `main`, exiting 130 with the usual line on Ctrl-C whenever it arrives, also after
    the last line was written, while Python shuts down (where it would otherwise die by the signal, silently)."""
    try:
        code = main()
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = 130
    signal.signal(signal.SIGINT, _interrupted_at_exit)
    # Everything is written and closed by now. On its way out Python would walk every object still alive
    # (hundreds of thousands once torch and diffusers are imported: over a second of a CPU) in search of
    # reference cycles to free, which the end of the process frees anyway; frozen objects are left out of that
    # walk. atexit handlers, flushing the standard streams and joining threads happen as before.
    gc.freeze()
    sys.exit(code)


def _interrupted_at_exit(signum: int, frame: object) -> None:
    sys.stdout.flush()
    sys.stderr.write("Interrupted.\n")
    sys.stderr.flush()
    os._exit(130)
