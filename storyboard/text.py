"""Fonts and line wrapping for text drawn into images (Latin at spaces, CJK between characters, kinsoku)."""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

from PIL import ImageDraw, ImageFont

# Kinsoku shori: characters that may not start a line, and characters that may not end one.
NO_LINE_START = set("。，、．・：；？！）」』】〕〉》〗〙〟’”ゝゞーぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ…‥,.;:!?)]}%")  # noqa: E501
NO_LINE_END = set("（「『【〔〈《〖〘〝‘“([{")

# System fonts used only when the packaged ones are missing (e.g. a source checkout without the dependencies).
_SYSTEM_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)
REGULAR_WEIGHT = 400  # the packaged Korean and Japanese fonts are variable; their default instance is Thin


@functools.cache
def font_path() -> Path | None:
    """The main font for page and draft text: Noto Sans SC (installed with storyboard), covering Chinese,
    Japanese kana and Latin."""
    try:
        import pylopdf_fonts_zh_cn

        path = Path(pylopdf_fonts_zh_cn.sans_path())
        if path.is_file():
            return path
    except ImportError:
        pass
    for candidate in _SYSTEM_FONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def _packaged_noto(name: str) -> Path | None:
    """Noto Sans KR / JP from the `justmytype-intl-cjk` package (variable TrueType fonts, OFL)."""
    try:
        from importlib.resources import files

        path = Path(str(files("justmytype_intl_cjk") / "fonts" / "ofl" / name.lower() / f"{name}[wght].ttf"))
    except (ImportError, ModuleNotFoundError):
        return None
    return path if path.is_file() else None


@functools.cache
def font_paths(language: str = "en") -> tuple[Path, ...]:
    """Fonts to try in order for each character, best first for `language`: Noto Sans SC covers Han, kana and
    Latin; Noto Sans KR adds hangul; Noto Sans JP gives Japanese glyph forms first for Japanese stories."""
    main, korean, japanese = font_path(), _packaged_noto("NotoSansKR"), _packaged_noto("NotoSansJP")
    lang = language.lower()[:2]
    order = [japanese, main, korean] if lang == "ja" else [korean, main] if lang == "ko" else [main, korean]
    return tuple(dict.fromkeys(p for p in order if p is not None))


@functools.cache
def coverage(path: Path) -> frozenset[int]:
    """The code points a font file has glyphs for (its cmap)."""
    from fontTools.ttLib import TTFont

    with TTFont(str(path), lazy=True, fontNumber=0) as ttf:
        return frozenset(ttf.getBestCmap() or ())


@functools.cache
def _truetype(path: Path, size: int) -> ImageFont.FreeTypeFont:
    fnt = ImageFont.truetype(str(path), size)
    try:
        axes = fnt.get_variation_axes()
    except OSError:  # not a variable font
        return fnt
    fnt.set_variation_by_axes([REGULAR_WEIGHT if a.get("name") in (b"Weight", "Weight") else a["default"]
                               for a in axes])
    return fnt


@functools.cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = font_path()
    if path is None:
        return ImageFont.load_default(size)
    return _truetype(path, size)


class FontChain:
    """Several fonts used as one: each character is drawn with the first font that has a glyph for it."""

    def __init__(self, size: int, language: str = "en") -> None:
        self.size = size
        self.paths = font_paths(language)
        self.fonts = [_truetype(p, size) for p in self.paths] or [font(size)]

    def font_for(self, char: str) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        code = ord(char)
        for path, fnt in zip(self.paths, self.fonts):
            if code in coverage(path):
                return fnt
        return self.fonts[0]

    def runs(self, text: str) -> list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]]:
        """`text` cut into runs that each use one font."""
        out: list[tuple[str, ImageFont.FreeTypeFont | ImageFont.ImageFont]] = []
        for char in text:
            fnt = out[-1][1] if char.isspace() and out else self.font_for(char)
            if out and out[-1][1] is fnt:
                out[-1] = (out[-1][0] + char, fnt)
            else:
                out.append((char, fnt))
        return out

    def getlength(self, text: str) -> float:
        return sum(fnt.getlength(run) for run, fnt in self.runs(text))

    @property
    def ascent(self) -> int:
        main = self.fonts[0]
        return main.getmetrics()[0] if hasattr(main, "getmetrics") else self.size

    def draw(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill: object,
             align: str = "left", width: float = 0, anchor: str = "la") -> None:
        """Draw one line at `xy`: its top-left by default, its left end on the bottom of the descenders with
        anchor "ld" (as Pillow's anchors); centred or right-aligned within `width` with `align`."""
        x, y = xy
        if align == "center":
            x += (width - self.getlength(text)) / 2
        elif align == "right":
            x += width - self.getlength(text)
        main = self.fonts[0]
        descent = main.getmetrics()[1] if hasattr(main, "getmetrics") else 0
        baseline = y - descent if anchor == "ld" else y + self.ascent
        for run, fnt in self.runs(text):
            draw.text((x, baseline), run, font=fnt, fill=fill, anchor="ls")
            x += fnt.getlength(run)


def is_hangul(char: str) -> bool:
    code = ord(char)
    return 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F


def is_cjk(char: str) -> bool:
    """True for characters that a line may break around (ideographs, kana, fullwidth forms).

    Hangul is not among them: Korean puts spaces between words and is wrapped at those spaces, like Latin.
    """
    if is_hangul(char):
        return False
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


def wrap(text: str, fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont | FontChain, max_width: float,
         max_lines: int | None = None) -> list[str]:
    """Wrap `text` to lines no wider than `max_width` pixels in `fnt`.

    With `max_lines`, the last kept line ends with an ellipsis if text was cut.
    """
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for unit, spaced in _units(paragraph):
            candidate = line + (" " if spaced and line else "") + unit
            if line and fnt.getlength(candidate) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = unit
            # A unit wider than the line (a long word, a URL) is broken where it must; `_fit` measures at most twice
            # the part that fits, never the whole rest of it.
            while len(line) > 1 and (cut := _fit(line, fnt, max_width)) < len(line):
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _ellipsize(lines[-1], fnt, max_width)
    return lines


def _fit(line: str, fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont | FontChain, max_width: float) -> int:
    """How many leading characters of `line` fit in `max_width` (at least one), never breaking before a
    character that may not start a line or after one that may not end it."""
    # The longest prefix that fits: widths grow with the prefix, so gallop to a prefix too wide, then bisect; each
    # measure is at most twice the fitted length, however long the line.
    lo, hi = 1, 2
    while hi < len(line) and fnt.getlength(line[:hi]) <= max_width:
        lo, hi = hi, hi * 2
    hi = min(hi, len(line))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fnt.getlength(line[:mid]) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    cut = lo

    def forbidden(at: int) -> bool:
        return at < len(line) and (line[at] in NO_LINE_START or line[at - 1] in NO_LINE_END)

    fitted = cut
    while cut > 1 and forbidden(cut):
        cut -= 1
    if forbidden(cut):  # no allowed break fits: let the punctuation hang past the edge instead
        cut = fitted
        while forbidden(cut):
            cut += 1
    return cut


def _ellipsize(line: str, fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont | FontChain,
               max_width: float) -> str:
    while line and fnt.getlength(line + "…") > max_width:
        line = line[:-1]
    return line.rstrip() + "…"
