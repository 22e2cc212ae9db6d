"""`export`: build what is missing, then write the animatic, its subtitles, the editors' timelines, the shot list,
the boards sheet and the books for readers into the build folder."""

from __future__ import annotations

import sys
from typing import Any

import click

from storyboard.cli.options import (
    cache_option,
    chosen_renderer,
    drawing_options,
    keeping_finished_panels,
    progress_display,
)


@click.command(short_help="Write a story's animatic, timelines, shot list, boards sheet, CBZ and EPUB.")
@click.argument("story", type=click.Path(path_type=str))
@drawing_options
@cache_option
@click.option("--format", "formats", default="all", show_default=True, metavar="F[,F...]",
              help="What to write: all, animatic (animatic.mp4 with animatic.srt), srt, otio, fcpxml, shotlist, "
                   "boards (boards.pdf: films), cbz, epub (<title>.cbz and <title>.epub: comics).")
def export(story: str, out_dir: str | None, cache: str | None, renderer: str | None, model: str | None,
           base_url: str | None, timeout: float | None, formats: str) -> None:
    """Build STORY as `build` does (drawing only what is missing), then write the formats asked into its build
    folder. A file whose inputs did not change since it was written is left as it is."""
    from storyboard.building import build as run_build
    from storyboard.export import Built, choose_formats, export_built, format_names

    format_names(formats)  # a wrong --format is one line before anything is drawn
    engine = chosen_renderer(renderer, base_url, timeout, [story])
    progress, shown = progress_display()
    with keeping_finished_panels(), shown:
        result = run_build(story, out_dir, renderer=engine, model=model, progress=progress, cache=cache)
    click.echo(f"rendered {result.rendered}, reused {result.reused} ({result.renderer} renderer)")
    built = Built.of(result)
    done = export_built(built, choose_formats(formats, result.story), _progress())
    made = [e.path.name for e in done if e.made]
    kept = [e.path.name for e in done if not e.made]
    click.echo(f"wrote {', '.join(made) or 'nothing new'} in {result.folder.root}"
               + (f"; unchanged: {', '.join(kept)}" if kept else ""))


def _progress() -> Any:
    from storyboard.export import ExportProgress

    if not sys.stderr.isatty():
        return ExportProgress()

    class Bar(ExportProgress):
        def __init__(self) -> None:
            self.bar: Any = None

        def making(self, name: str, path: Any, frames: int = 0) -> None:
            self.close()
            if frames:
                from rich.progress import Progress

                self.bar = Progress(transient=True)
                self.bar.start()
                self.task = self.bar.add_task(f"encoding {path.name if hasattr(path, 'name') else name}",
                                              total=frames)

        def frame(self, done: int, total: int) -> None:
            if self.bar is not None:
                self.bar.update(self.task, completed=done)

        def close(self) -> None:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None

    return Bar()
