"""A built story as the exports read it."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.output import OutputFolder, panel_file
from storyboard.story import Board, Story, timeline
from storyboard.story.film import ASPECTS


@dataclass(frozen=True)
class Built:
    """A story whose panels are drawn into `folder`; `keys` are the panels' content keys, in order."""

    story: Story
    folder: OutputFolder
    keys: tuple[str, ...]

    @classmethod
    def of(cls, result: Any) -> Built:
        """What a build returned (`storyboard.building.BuildResult`), as the exports read it."""
        return cls(result.story, result.folder, tuple(panel.key for panel in result.panels))

    @functools.cached_property
    def boards(self) -> list[Board]:
        return timeline(self.story)

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
            "folder": str(self.folder.root.resolve()),
        }


def _board(board: Board) -> dict[str, Any]:
    data = dataclasses.asdict(board)
    data["framing"] = board.framing.model_dump()
    return data
