"""The shot list (CSV, for a spreadsheet) and the animatic's subtitles (SubRip)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

from storyboard.output import panel_file
from storyboard.story import Story

if TYPE_CHECKING:
    from storyboard.export.built import Built
    from storyboard.export.run import ExportProgress

COLUMNS = ("scene", "heading", "shot", "size", "angle", "move", "lens", "duration", "start", "action", "dialogue",
           "caption", "notes", "image")


def timecode(seconds: float, fps: int) -> str:
    """HH:MM:SS:FF at `fps`, as editors show a position."""
    frames = round(seconds * fps)
    second, frame = divmod(frames, fps)
    return f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}:{frame:02d}"


def srt_time(seconds: float) -> str:
    """HH:MM:SS,mmm, as SubRip writes a time."""
    millis = round(seconds * 1000)
    second, milli = divmod(millis, 1000)
    return f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d},{milli:03d}"


class ShotList:
    """shotlist.csv: one row per board under a header row; UTF-8 with a byte-order mark, so that spreadsheets
    that guess encodings (Excel) read it as UTF-8 too. Durations in seconds, start times as timecode."""

    name, version = "shotlist", "1"

    def applies(self, story: Story) -> bool:
        return True

    def make(self, built: Built, path: Path, progress: ExportProgress) -> None:
        progress.making(self.name, path)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for board in built.boards:
            shot = board.framing
            writer.writerow([
                board.scene, board.heading, board.shot, shot.size or "", shot.angle or "", shot.move,
                f"{shot.lens:g}" if shot.lens else "", f"{board.duration:g}", timecode(board.start, built.fps),
                board.action, "\n".join(f"{s}: {t}" if s else t for s, t in board.lines), board.caption,
                board.notes, panel_file(board.panel),
            ])
        path.write_bytes(buffer.getvalue().encode("utf-8-sig"))


class Subtitles:
    """animatic.srt: a cue for each board that says something (narration, caption, dialogue), from its first
    frame to its last, as the animatic shows it (times in whole frames, to the millisecond)."""

    name, version = "srt", "1"

    def applies(self, story: Story) -> bool:
        return True

    def make(self, built: Built, path: Path, progress: ExportProgress) -> None:
        progress.making(self.name, path)
        cues = []
        fps = built.fps
        for board, (first, count) in zip(built.boards, built.frames):
            text = board.subtitle()
            if text:
                start, end = srt_time(first / fps), srt_time((first + count) / fps)
                cues.append(f"{len(cues) + 1}\n{start} --> {end}\n{text}\n")
        path.write_text("\n".join(cues), encoding="utf-8")
