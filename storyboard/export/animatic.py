"""animatic.mp4: the boards played in time. H.264 in yuv420p (it plays in browsers and editors), encoded in this
process through PyAV, FFmpeg's Python binding, whose wheels carry FFmpeg: no system ffmpeg needed.

Each board fills the frame (cropped to the frame's shape, centred) for its frames; its camera move is played as a
slow pan or zoom over it (`ZOOM`: how much closer a moving shot sits, eased in and out); a static board is one
picture held, encoded once and repeated. Dialogue and captions are drawn in when `animatic.subtitles` says burn,
and a dissolve, when asked, blends the last half second of a board into the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

from storyboard.errors import ExportError
from storyboard.story import Board, Story
from storyboard.text import FontChain, wrap

if TYPE_CHECKING:
    from storyboard.export.built import Built
    from storyboard.export.run import ExportProgress

ZOOM = 1.15  # a moving shot shows 1/ZOOM of the board, and travels across the rest
DISSOLVE = 0.5  # seconds
# Speed over size: each board is a still, which x264 codes in few bits at any preset.
ENCODER = {"crf": "20", "preset": "superfast", "tune": "stillimage"}

Box = tuple[float, float, float, float]


class Animatic:
    name, version = "animatic", "1"

    def applies(self, story: Story) -> bool:
        return True

    def make(self, built: Built, path: Path, progress: ExportProgress) -> None:
        import av

        width, height = built.video_size
        total = built.total_frames
        progress.making(self.name, path, frames=total)
        try:
            container = av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"})
        except av.FFmpegError as exc:
            raise ExportError(f"cannot write {path}: {exc}") from None
        try:
            stream = container.add_stream("libx264", rate=built.fps, options=ENCODER)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            written = 0
            for picture in _frames(built, (width, height)):
                frame = picture if isinstance(picture, av.VideoFrame) else av.VideoFrame.from_image(picture)
                frame.pts = written
                container.mux(stream.encode(frame))
                written += 1
                progress.frame(written, total)
            container.mux(stream.encode(None))
        except av.FFmpegError as exc:
            raise ExportError(f"cannot encode {path.name}: {exc}") from None
        finally:
            container.close()


def _frames(built: Built, size: tuple[int, int]) -> Iterator[Any]:
    """Every frame of the animatic in order: a PIL image, or the same `av.VideoFrame` again for a held still.

    A board's picture is read when its frames begin and let go when they end: at most two (a board and, for a
    dissolve, the next) are held, however long the film."""
    import av

    story = built.story

    def still(n: int) -> Still:
        board = built.boards[n]
        return Still(built.picture(board), board, size, story.language, story.animatic.burned)

    fade = round(DISSOLVE * built.fps) if story.animatic.transition == "dissolve" else 0
    current = still(0)
    for n, (_, count) in enumerate(built.frames):
        following = n + 1 < len(built.boards)
        blend = min(fade, count // 2, built.frames[n + 1][1] // 2) if following else 0
        upcoming = still(n + 1) if following else None
        held = None if current.moves else av.VideoFrame.from_image(current.frame(0.0)).reformat(format="yuv420p")
        for i in range(count):
            if blend and i >= count - blend and upcoming is not None:
                alpha = (i - (count - blend) + 1) / (blend + 1)
                yield Image.blend(current.frame(i / max(1, count - 1)), upcoming.frame(0.0), alpha)
            else:
                yield held if held is not None else current.frame(i / max(1, count - 1))
        current.close()
        if upcoming is not None:
            current = upcoming


class Still:
    """One board's frames: its picture cropped to the frame and moved as its shot says, with its words drawn in."""

    def __init__(self, picture: Path, board: Board, size: tuple[int, int], language: str, burned: bool) -> None:
        try:
            with Image.open(picture) as image:
                self.image = image.convert("RGB")
        except OSError as exc:
            raise ExportError(f"cannot read {picture}: {exc}") from None
        self.size, self.move = size, board.framing.move
        self.cover = _cover(self.image.size, size[0] / size[1])
        self.words = _subtitle(board.subtitle(), size, language) if burned and board.subtitle() else None
        self.still: Image.Image | None = None

    @property
    def moves(self) -> bool:
        return self.move != "static"

    def frame(self, t: float) -> Image.Image:
        """The frame at `t` (0 to 1 through the board); a static board's one frame is made once."""
        if self.moves:
            return self._frame(_window(self.cover, self.move, _ease(t)))
        if self.still is None:
            self.still = self._frame(self.cover)
        return self.still

    def _frame(self, box: Box) -> Image.Image:
        frame = self.image.resize(self.size, Image.Resampling.BILINEAR, box=box)
        if self.words is not None:
            words, at = self.words
            frame.paste(words, at, words)
        return frame

    def close(self) -> None:
        self.image.close()


def _cover(size: tuple[int, int], ratio: float) -> Box:
    """The largest centred box of a picture of `size` with the frame's shape `ratio`."""
    w, h = size
    if w / h > ratio:
        inner = h * ratio
        return ((w - inner) / 2, 0.0, (w + inner) / 2, float(h))
    inner = w / ratio
    return (0.0, (h - inner) / 2, float(w), (h + inner) / 2)


def _window(cover: Box, move: str, t: float) -> Box:
    """The part of the board a moving shot shows at `t` (0 to 1, eased)."""
    x0, y0, x1, y1 = cover
    w, h = x1 - x0, y1 - y0
    if move in ("push-in", "pull-out"):
        scale = 1 - (1 - 1 / ZOOM) * (t if move == "push-in" else 1 - t)
        cw, ch = w * scale, h * scale
        return (x0 + (w - cw) / 2, y0 + (h - ch) / 2, x0 + (w + cw) / 2, y0 + (h + ch) / 2)
    cw, ch = w / ZOOM, h / ZOOM
    spare_x, spare_y = w - cw, h - ch
    # The camera turns (or travels) one way, so the picture slides the other: panning left shows what is left.
    fx = {"pan-left": 1 - t, "truck-left": 1 - t, "pan-right": t, "truck-right": t}.get(move, 0.5)
    fy = {"tilt-up": 1 - t, "tilt-down": t}.get(move, 0.5)
    left, top = x0 + spare_x * fx, y0 + spare_y * fy
    return (left, top, left + cw, top + ch)


def _ease(t: float) -> float:
    return t * t * (3 - 2 * t)


def _subtitle(text: str, size: tuple[int, int], language: str) -> tuple[Image.Image, tuple[int, int]]:
    """The words as subtitles are shown: white on a dark band, centred at the bottom; (picture, where)."""
    width, height = size
    font_size = max(12, height // 22)
    chain = FontChain(font_size, language)
    lines = [line for paragraph in text.split("\n") for line in wrap(paragraph, chain, width * 0.8)][:4]
    line_height = round(font_size * 1.3)
    pad = font_size // 2
    band_w = round(max(chain.getlength(line) for line in lines)) + 2 * pad
    band_h = line_height * len(lines) + 2 * pad
    band = Image.new("RGBA", (band_w, band_h), (0, 0, 0, 170))
    draw = ImageDraw.Draw(band)
    for n, line in enumerate(lines):
        chain.draw(draw, (pad, pad + n * line_height), line, (255, 255, 255, 255), align="center",
                   width=band_w - 2 * pad)
    return band, ((width - band_w) // 2, height - band_h - height // 18)
