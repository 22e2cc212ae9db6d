"""Film grammar in the story file: a panel's shot (size, angle, move, lens), the frame's aspect ratio, and how the
animatic plays. All optional: a comic story has none of it.

The words a shot puts into a panel's prompt come from one table here (`framing`), so they are part of the panel's
key: a new shot size redraws that panel; a camera move, a duration, an action or a note redraws nothing.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from storyboard.story.hints import did_you_mean

# Shot sizes, widest first: (abbreviation, the words CLIP-read models know, the words of a sentence).
SIZES: dict[str, tuple[str, str]] = {
    "extreme-wide": ("EWS", "extreme wide shot"),
    "wide": ("WS", "wide shot"),
    "full": ("FS", "full shot"),
    "medium-wide": ("MWS", "medium wide shot"),
    "medium": ("MS", "medium shot"),
    "medium-close": ("MCU", "medium close-up"),
    "close-up": ("CU", "close-up shot"),
    "extreme-close-up": ("ECU", "extreme close-up"),
}
ANGLES: dict[str, tuple[str, str]] = {  # (tag, as a sentence says it after "a <size>")
    "eye-level": ("eye level shot", "at eye level"),
    "high": ("high angle shot", "from a high angle"),
    "low": ("low angle shot", "from a low angle"),
    "overhead": ("overhead shot, top-down view", "from directly overhead"),
    "dutch": ("dutch angle, tilted frame", "with a tilted dutch angle"),
    "over-the-shoulder": ("over-the-shoulder shot", "over the shoulder"),
    "pov": ("point-of-view shot", "from the character's point of view"),
}
MOVES = ("static", "pan-left", "pan-right", "tilt-up", "tilt-down", "push-in", "pull-out", "truck-left",
         "truck-right")
ALIASES = {abbr.lower(): name for name, (abbr, _) in SIZES.items()} | {
    "extreme-close": "extreme-close-up", "close": "close-up", "cu": "close-up", "closeup": "close-up",
    "eye": "eye-level", "eyelevel": "eye-level", "ots": "over-the-shoulder", "top-down": "overhead",
    "birds-eye": "overhead", "dolly-in": "push-in", "dolly-out": "pull-out", "zoom-in": "push-in",
    "zoom-out": "pull-out", "none": "static", "still": "static", "locked": "static",
}
# Aspect ratios a frame may have, as width / height.
ASPECTS: dict[str, float] = {"16:9": 16 / 9, "2.39:1": 2.39, "1.85:1": 1.85, "4:3": 4 / 3, "1:1": 1.0,
                             "9:16": 9 / 16}
# Reading speed for a board's default duration (subtitle guidelines: 15 to 17 characters a second).
CHARACTERS_PER_SECOND = 15
MIN_DURATION, MAX_DURATION = 2.0, 600.0


def _term(value: Any, known: tuple[str, ...] | dict[str, Any], what: str) -> Any:
    if not isinstance(value, str):
        return value  # pydantic reports the type
    word = re.sub(r"[\s_]+", "-", value.strip().lower())
    word = ALIASES.get(word, word)
    if word not in known:
        names = list(known)
        raise ValueError(f"unknown {what} {value!r}{did_you_mean(value, names)}; choose from: {', '.join(names)}")
    return word


class Shot(BaseModel):
    """How a board is framed: size, angle, camera move, lens (mm)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    size: str | None = Field(None, description="extreme-wide, wide, full, medium-wide, medium, medium-close, "
                                               "close-up, extreme-close-up (or EWS, WS, FS, MWS, MS, MCU, CU, ECU).")
    angle: str | None = Field(None, description="eye-level, high, low, overhead, dutch, over-the-shoulder, pov.")
    move: str = Field("static", description="static, pan-left, pan-right, tilt-up, tilt-down, push-in, pull-out, "
                                            "truck-left, truck-right: played in the animatic, not drawn.")
    lens: float | None = Field(None, ge=8, le=1200, description="Focal length in millimetres.")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return None if value is None else _term(value, SIZES, "shot size")

    @field_validator("angle", mode="before")
    @classmethod
    def _angle(cls, value: Any) -> Any:
        return None if value is None else _term(value, ANGLES, "camera angle")

    @field_validator("move", mode="before")
    @classmethod
    def _move(cls, value: Any) -> Any:
        return _term(value, MOVES, "camera move")

    def label(self) -> str:
        """The shot line's words: 'WS · low · push-in · 24 mm'."""
        parts = [SIZES[self.size][0] if self.size else "", self.angle or "",
                 self.move if self.move != "static" else "", f"{self.lens:g} mm" if self.lens else ""]
        return " · ".join(p for p in parts if p)


class Animatic(BaseModel):
    """How `storyboard export` plays the boards as a video."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    fps: StrictInt = Field(24, ge=1, le=120)
    width: StrictInt = Field(1280, ge=64, le=3840, description="The video's width; its height follows the aspect.")
    subtitles: Literal["burn", "srt", "both", "none"] = Field(
        "burn", description="burn (or both): dialogue and captions drawn into the video; srt (or none): not. "
                            "animatic.srt is written beside the video either way.")
    transition: Literal["cut", "dissolve"] = "cut"

    @property
    def burned(self) -> bool:
        return self.subtitles in ("burn", "both")


def uses_sentences(model: str) -> bool:
    """Whether a model reads its prompt with T5 (FLUX, SD3), which follows sentences, rather than with CLIP only
    (SD 1.x/2.x, SDXL, Kolors), which reads tags best. Decided by the model's name, as users name them."""
    name = model.lower()
    return "flux" in name or "stable-diffusion-3" in name or re.search(r"(^|[^a-z])sd-?3", name) is not None


def framing(shot: Shot | None, model: str) -> str:
    """The words a shot puts in front of a panel's prompt ('' without size, angle or lens)."""
    if shot is None or not (shot.size or shot.angle or shot.lens):
        return ""
    if not uses_sentences(model):
        return ", ".join(part for part in (SIZES[shot.size][1] if shot.size else "",
                                           ANGLES[shot.angle][0] if shot.angle else "",
                                           f"{shot.lens:g}mm lens" if shot.lens else "") if part)
    words = f"A {SIZES[shot.size][1]}" if shot.size else "A shot"
    if shot.angle:
        words += f" {ANGLES[shot.angle][1]}"
    if shot.lens:
        words += f", on a {shot.lens:g}mm lens"
    return words + "."


def native_pixels(model: str) -> tuple[int, int]:
    """(pixels, multiple): about how many pixels a model family was trained at, and what its sizes must be
    multiples of. By name, as `uses_sentences`: 1024² for SDXL, Kolors, FLUX and SD3, 768² for SD 2.x's 768
    models, 512² otherwise."""
    name = model.lower()
    if uses_sentences(model):
        return 1024 * 1024, 16
    if "xl" in name or "kolors" in name:
        return 1024 * 1024, 64
    if ("stable-diffusion-2" in name or "sd2" in name) and "base" not in name:
        return 768 * 768, 8
    return 512 * 512, 8


def aspect_size(aspect: str, model: str) -> tuple[int, int]:
    """Width and height for `aspect` at about the model's native pixel count, in the multiples it needs."""
    pixels, multiple = native_pixels(model)
    ratio = ASPECTS[aspect]
    height = max(multiple, round(math.sqrt(pixels / ratio) / multiple) * multiple)
    width = max(multiple, round(height * ratio / multiple) * multiple)
    return width, height


def reading_time(text: str) -> float:
    """Seconds a board with `text` (its dialogue and caption) stays on screen by default: time to read it at
    `CHARACTERS_PER_SECOND`, at least `MIN_DURATION`, in tenths of a second."""
    return max(MIN_DURATION, math.ceil(len(text.strip()) / CHARACTERS_PER_SECOND * 10) / 10)


@dataclass(frozen=True)
class Board:
    """A panel as a film board: where it falls in the film and what it says."""

    panel: int  # 1-based
    scene: int  # 1-based; panels before the first scene heading are scene 1
    heading: str  # the scene's heading ('' when the story gives none)
    shot: str  # '1A', '1B', ... '2A': scene number and a letter, as Storyboarder numbers them
    framing: Shot
    start: float  # seconds
    duration: float
    action: str
    lines: tuple[tuple[str, str], ...]  # (speaker, text), in order
    caption: str
    narration: str
    notes: str

    @property
    def end(self) -> float:
        return self.start + self.duration

    def said(self) -> list[str]:
        """What the board says, in reading order: narration, caption, then each line as 'Speaker: text'."""
        lines = [f"{speaker}: {text}" if speaker else text for speaker, text in self.lines]
        return [part.strip() for part in (self.narration, self.caption, *lines) if part.strip()]

    def subtitle(self) -> str:
        """What the board says on screen, a part a line."""
        return "\n".join(self.said())


NO_SHOT = Shot()  # a panel that gives none: eye level, static (shared, never changed)


def shot_letter(n: int) -> str:
    """A, B, ... Z, AA, AB, ...: the n-th (0-based) shot of a scene."""
    letters = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def timeline(story: Any) -> list[Board]:
    """The story's panels as boards in time: scenes numbered from their headings, shots lettered within a
    scene, each held for its `duration` or the time to read what it says."""
    boards: list[Board] = []
    scene, heading, letter, start = 1, "", 0, 0.0
    for number, panel in enumerate(story.panels, start=1):
        if panel.scene.strip():
            if boards or number > 1:
                scene, letter = scene + 1, 0
            heading = panel.scene.strip()
        lines = tuple((line.speaker, line.text) for line in panel.dialogue)
        board = Board(panel=number, scene=scene, heading=heading, shot=f"{scene}{shot_letter(letter)}",
                      framing=panel.shot or NO_SHOT, start=start, duration=0.0, action=panel.action,
                      lines=lines, caption=panel.caption, narration=panel.narration, notes=panel.notes)
        duration = panel.duration if panel.duration is not None else reading_time(board.subtitle())
        boards.append(dataclasses.replace(board, duration=float(duration)))
        start += duration
        letter += 1
    return boards
