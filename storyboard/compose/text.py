"""Fonts and line wrapping for text drawn into images (Latin at spaces, CJK between characters)."""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

from PIL import ImageFont

# Kinsoku shori: characters that may not start a line, and characters that may not end one.
NO_LINE_START = set("。，、．・：；？！）」』】〕〉》〗〙〟’”ゝゞーぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ…‥,.;:!?)]}%")
NO_LINE_END = set("（「『【〔〈《〖〘〝‘“([{")

_FALLBACK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


@functools.cache
def font_path() -> Path | None:
    """The font used for page and draft text: Noto Sans SC (installed with storyboard), covering CJK and Latin."""
    try:
        import pylopdf_fonts_zh_cn

        path = Path(pylopdf_fonts_zh_cn.sans_path())
        if path.is_file():
            return path
    except ImportError:
        pass
    for candidate in _FALLBACK_FONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


@functools.cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = font_path()
    if path is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(path), size)


def is_cjk(char: str) -> bool:
    """True for characters that a line may break around (ideographs, kana, hangul, fullwidth forms)."""
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return True
    code = ord(char)
    return 0x3000 <= code <= 0x30FF or 0xFF00 <= code <= 0xFFEF


def _units(paragraph: str) -> list[tuple[str, bool]]:
    """Split into unbreakable units, each with whether a space precedes it.

    Latin words stay whole; every CJK character is its own unit; kinsoku characters stick to their neighbours.
    """
    units: list[tuple[str, bool]] = []
    word, space = "", False

    def flush() -> None:
        nonlocal word, space
        if word:
            units.append((word, space))
            word, space = "", False

    for char in paragraph:
        if char.isspace():
            flush()
            space = bool(units)
        elif is_cjk(char):
            flush()
            units.append((char, space))
            space = False
        else:
            word += char
    flush()

    merged: list[tuple[str, bool]] = []
    for text, spaced in units:
        if merged and not spaced and (text[0] in NO_LINE_START or merged[-1][0][-1] in NO_LINE_END):
            merged[-1] = (merged[-1][0] + text, merged[-1][1])
        elif merged and text[0] in NO_LINE_START and len(text) == 1:
            merged[-1] = (merged[-1][0] + " " + text, merged[-1][1])
        else:
            merged.append((text, spaced))
    return merged


def wrap(text: str, fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_width: float,
         max_lines: int | None = None) -> list[str]:
    """Wrap `text` to lines no wider than `max_width` pixels in `fnt`.

    With `max_lines`, the last kept line ends with an ellipsis if text was cut.
    """
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for unit, spaced in _units(paragraph):
            candidate = line + (" " if spaced and line else "") + unit
            if not line or fnt.getlength(candidate) <= max_width:
                line = candidate
            else:
                lines.append(line)
                line = unit
            while len(line) > 1 and fnt.getlength(line) > max_width:
                cut = _fit(line, fnt, max_width)
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _ellipsize(lines[-1], fnt, max_width)
    return lines


def _fit(line: str, fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_width: float) -> int:
    """How many leading characters of `line` fit in `max_width` (at least one)."""
    cut = 1
    while cut < len(line) and fnt.getlength(line[: cut + 1]) <= max_width:
        cut += 1
    return cut


def _ellipsize(line: str, fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_width: float) -> str:
    while line and fnt.getlength(line + "…") > max_width:
        line = line[:-1]
    return line.rstrip() + "…"
