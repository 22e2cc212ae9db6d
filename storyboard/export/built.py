"""A built story as the exports read it."""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.output import OutputFolder, panel_file
from storyboard.story import Board, Story, timeline
from storyboard.story.film import ASPECTS


@dataclass(frozen=True)
class Page:
    """A composed page of the built story: its PNG, the panels on it, its key, and the chapter it starts."""

    file: Path
    panels: tuple[int, ...]  # 1-based panel numbers, in reading order
    key: str
    chapter: str = ""


@dataclass(frozen=True)
class Built:
    """A story whose panels are drawn into `folder`; `keys` are the panels' content keys, in order, and `pages` its
    composed pages (none when only the panels matter)."""

    story: Story
    folder: OutputFolder
    keys: tuple[str, ...]
    pages: tuple[Page, ...] = ()

    @classmethod
    def of(cls, result: Any) -> Built:
        """What a build returned (`storyboard.building.BuildResult`), as the exports read it."""
        if result.webtoon:  # its slices, in order: a slice cuts across panels, so none is said to hold any
            pages = tuple(Page(path, (), f"{result.page_key}:{n}") for n, path in enumerate(result.page_pngs))
        elif result.pages:
            pages = tuple(Page(result.folder.book_page(page.number), tuple(page.panels), key, page.chapter)
                          for page, key in result.pages)
        else:
            pages = (Page(result.folder.page_png, tuple(range(1, len(result.panels) + 1)), result.page_key),)
        return cls(result.story, result.folder, tuple(panel.key for panel in result.panels), pages)

    @functools.cached_property
    def boards(self) -> list[Board]:
        return timeline(self.story)

    @property
    def book_name(self) -> str:
        """The title as a file name (for `<title>.cbz`, `<title>.epub`): what file systems refuse replaced."""
        name = re.sub(r'[\x00-\x1f\x7f/\\:*?"<>|]+', "_", self.story.title).strip(" ._")[:100].strip(" ._")
        return name or "comic"

    def panel_text(self, number: int) -> list[str]:
        """What panel `number` says (see `Board.said`)."""
        return self.boards[number - 1].said()

    @property
    def fps(self) -> int:
        return self.story.animatic.fps

    def picture(self, board: Board) -> Path:
        return self.folder / panel_file(board.panel)

    @functools.cached_property
    def frames(self) -> list[tuple[int, int]]:
        """Each board's first frame and frame count: its start and end rounded to frames, so that the counts add
        up to the whole film's length in frames however the durations fall."""
        fps = self.fps
        return [(round(b.start * fps), round(b.end * fps) - round(b.start * fps)) for b in self.boards]

    @property
    def total_frames(self) -> int:
        first, count = self.frames[-1]
        return first + count

    @property
    def ratio(self) -> float:
        """The frame's width over its height: the story's aspect, else its drawing size's."""
        render = self.story.render
        return ASPECTS[render.aspect] if render.aspect else render.width / render.height

    @property
    def video_size(self) -> tuple[int, int]:
        """The animatic's width and height: `animatic.width` and the aspect, both even (H.264's 4:2:0 needs it)."""
        width = self.story.animatic.width // 2 * 2
        return width, max(2, round(width / self.ratio / 2) * 2)

    def inputs(self) -> dict[str, Any]:
        """Everything an exported file may be made from, for its key: the boards, the pictures' keys, the settings,
        and the folder (timelines name the pictures by their full path)."""
        return {
            "title": self.story.title, "language": self.story.language, "medium": self.story.medium,
            "boards": [_board(b) for b in self.boards], "keys": list(self.keys),
            "animatic": self.story.animatic.model_dump(), "size": list(self.video_size),
            "pages": [[self.folder.relative(p.file), p.key, list(p.panels), p.chapter] for p in self.pages],
            "outline": self.story.outline, "credits": self.story.layout.credits,
            "direction": self.story.layout.direction, "characters": list(self.story.characters),
            "folder": str(self.folder.root.resolve()),
        }


def _board(board: Board) -> dict[str, Any]:
    data = dataclasses.asdict(board)
    data["framing"] = board.framing.model_dump()
    return data
