"""The export formats: one small class each, behind one seam (`Format`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from storyboard.errors import OptionError
from storyboard.story import Story
from storyboard.story.hints import did_you_mean

if TYPE_CHECKING:
    from storyboard.export.built import Built
    from storyboard.export.run import ExportProgress


class Format(Protocol):
    """An export format. `make` writes the whole file at `path` (a temporary name: the caller renames it into
    place once it is complete). Its file is made again only when `Built.inputs` or `version` change."""

    name: str  # as --format names it, and the key of its file in `storyboard.output.EXPORT_FILES`
    version: str  # changed when the same inputs would make a different file

    def applies(self, story: Story) -> bool:
        """Whether `--format all` makes it for `story`."""

    def make(self, built: Built, path: Path, progress: ExportProgress) -> None: ...


def _formats() -> dict[str, Format]:
    from storyboard.export.animatic import Animatic
    from storyboard.export.readers import ComicBook, Epub
    from storyboard.export.sheet import BoardsSheet
    from storyboard.export.texts import ShotList, Subtitles
    from storyboard.export.timelines import FinalCutXml, Otio

    return {f.name: f for f in (Animatic(), Subtitles(), Otio(), FinalCutXml(), ShotList(), BoardsSheet(),
                                ComicBook(), Epub())}


FORMATS = ("animatic", "srt", "otio", "fcpxml", "shotlist", "boards", "cbz", "epub")
ALIASES = {"mp4": "animatic", "video": "animatic", "xml": "fcpxml", "csv": "shotlist", "pdf": "boards"}


def format_names(names: str | list[str] | tuple[str, ...], option: str = "--format") -> list[str]:
    """The format names `names` ask for ('all', names and aliases, comma-separated); an unknown one is an
    `OptionError` naming `option`."""
    if isinstance(names, str):
        names = [names]
    wanted = [part.strip().lower() for name in names for part in name.split(",") if part.strip()]
    found = []
    for name in wanted or ["all"]:
        name = ALIASES.get(name, name)
        if name != "all" and name not in FORMATS:
            raise OptionError(f"{option}: unknown format {name!r}{did_you_mean(name, [*FORMATS, 'all'])}; "
                              f"choose from: all, {', '.join(FORMATS)}")
        found.append(name)
    return found


def choose_formats(names: str | list[str] | tuple[str, ...], story: Story, option: str = "--format") -> list[Format]:
    """The formats `names` ask for (see `format_names`), in `FORMATS` order; 'all' is every format that applies to
    `story`. The animatic brings its subtitles along: animatic.srt is always written beside animatic.mp4.
    """
    every = _formats()
    chosen: set[str] = set()
    for name in format_names(names, option):
        if name == "all":
            chosen.update(n for n, f in every.items() if f.applies(story))
        else:
            chosen.add(name)
    if "animatic" in chosen:
        chosen.add("srt")
    return [every[name] for name in FORMATS if name in chosen]
