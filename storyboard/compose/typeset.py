"""Text set into lines for the page: the `Measure` the layout asks, and the lines the PNG and PDF then draw.

Both outputs draw exactly the lines measured here, so text never overflows the boxes the layout made for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from storyboard.text import FontChain, wrap

LINE_SPACING = 1.3
# Font sizes and paddings in reference pixels (a one-column panel 512 pixels wide); scaled by the layout's unit.
SIZES = {"title": 60, "heading": 40, "caption": 24, "narration": 21, "bubble": 22, "footer": 17, "cast": 18}
PADDING = {"title": (0, 0), "heading": (0, 0), "caption": (0, 0), "narration": (12, 8), "bubble": (18, 10),
           "footer": (0, 0), "cast": (0, 0)}
OVERLAY_PADDING = (12, 8)
BUBBLE_SCALES = (1.0, 0.85, 0.72)  # type sizes a bubble may shrink to, to hold its whole text


@dataclass(frozen=True)
class TextBlock:
    """Lines of text set in one font size, with the padding around them; `width`/`height` include the padding."""

    lines: tuple[str, ...]
    size: int
    line_height: int
    pad_x: int
    pad_y: int
    width: int
    height: int
    cut: bool = False  # lines were left out to fit the height (the last kept line ends with an ellipsis)


@dataclass
class PageText:
    """All the text of a page, per panel (lists are indexed by panel number - 1)."""

    title_text: str
    captions: Sequence[str]
    narrations: Sequence[str]
    dialogue: Sequence[Sequence[str]]
    footer_text: str = ""
    language: str = "en"
    overlay_captions: bool = False
    heading_text: str = ""  # a chapter's title
    cast_names: Sequence[str] = ()
    _cache: dict[tuple[object, ...], TextBlock] = field(default_factory=dict, repr=False)
    # The block each measurement last returned, by ("caption", index), ("bubble", index, n), ("title",)...:
    # after the layout is made these are exactly the blocks its boxes were sized for, and what gets drawn.
    used: dict[tuple[object, ...], TextBlock] = field(default_factory=dict, repr=False)

    def chain(self, kind: str, unit: float) -> FontChain:
        return FontChain(max(6, round(SIZES[kind] * unit)), self.language)

    def block(self, kind: str, text: str, max_width: int, unit: float, max_height: int | None = None,
              padding: tuple[int, int] | None = None, fit: bool = False) -> TextBlock:
        """Set `text` in lines no wider than `max_width` (padding included), cut with an ellipsis to fit
        `max_height`; `fit` shrinks the block to its longest line."""
        key = (kind, text, max_width, round(unit, 6), max_height, padding, fit)
        if key in self._cache:
            return self._cache[key]
        chain = self.chain(kind, unit)
        px, py = (round(p * unit) for p in (padding or PADDING[kind]))
        line_h = round(chain.size * LINE_SPACING)
        inner = max(1, max_width - 2 * px)
        max_lines = None
        if max_height is not None:
            max_lines = max(1, (max_height - 2 * py) // line_h)
        lines = tuple(wrap(text, chain, inner)) if text.strip() else ()
        cut = max_lines is not None and len(lines) > max_lines
        if cut:
            lines = tuple(wrap(text, chain, inner, max_lines=max_lines))
        width = max_width
        if fit and lines:
            width = min(max_width, round(max(chain.getlength(line) for line in lines)) + 2 * px + 1)
            if kind == "bubble":  # a one-word bubble still reads as a bubble
                width = max(width, min(max_width, round(3.2 * chain.size) + 2 * px))
        height = len(lines) * line_h + 2 * py if lines else 0
        block = TextBlock(lines, chain.size, line_h, px, py, width, height, cut)
        self._cache[key] = block
        return block

    # ------------------------------------------------------------------ the layout's Measure

    def title_block(self, width: int, unit: float) -> TextBlock:
        return self.block("title", self.title_text, width, unit)

    def footer_block(self, width: int, unit: float) -> TextBlock:
        return self.block("footer", self.footer_text, width, unit)

    def caption_block(self, index: int, width: int, unit: float) -> TextBlock:
        padding = OVERLAY_PADDING if self.overlay_captions else None
        return self.block("caption", self.captions[index - 1], width, unit, padding=padding)

    def narration_block(self, index: int, max_width: int, max_height: int, unit: float) -> TextBlock:
        return self.block("narration", self.narrations[index - 1], max_width, unit, max_height, fit=True)

    def bubble_block(self, index: int, n: int, max_width: int, max_height: int, unit: float) -> TextBlock:
        return self.block("bubble", self.dialogue[index - 1][n], max_width, unit, max_height, fit=True)

    def heading(self, width: int, unit: float) -> int:
        block = self.used["heading",] = self.block("heading", self.heading_text, width, unit)
        return block.height

    def cast_name(self, n: int, width: int, unit: float) -> int:
        block = self.used["cast", n] = self.block("cast", self.cast_names[n], width, unit, max_height=None)
        return block.height

    def title(self, width: int, unit: float) -> int:
        block = self.used["title",] = self.title_block(width, unit)
        return block.height

    def footer(self, width: int, unit: float) -> int:
        block = self.used["footer",] = self.footer_block(width, unit)
        return block.height

    def caption(self, index: int, width: int, unit: float) -> int:
        block = self.used["caption", index] = self.caption_block(index, width, unit)
        return block.height

    def narration(self, index: int, max_width: int, max_height: int, unit: float) -> tuple[int, int] | None:
        if not self.narrations[index - 1].strip():
            return None
        block = self.used["narration", index] = self.narration_block(index, max_width, max_height, unit)
        return block.width, block.height

    def bubbles(self, index: int, shapes: Sequence[Sequence[tuple[int, int]]], unit: float) -> list[tuple[int, int]]:
        """Like a letterer: a smaller type size before a narrower shape; if nothing holds the whole text, the first
        shape at the smallest size, cut with an ellipsis."""
        sizes = []
        for n, _ in enumerate(self.dialogue[index - 1][: len(shapes)]):
            tries = [(w, h, scale) for w, h in shapes[n] for scale in BUBBLE_SCALES]
            block = next((b for b in (self.bubble_block(index, n, w, h, unit * scale) for w, h, scale in tries)
                          if not b.cut), None)
            if block is None:
                w, h = shapes[n][0]
                block = self.bubble_block(index, n, w, h, unit * BUBBLE_SCALES[-1])
            self.used["bubble", index, n] = block
            sizes.append((block.width, block.height))
        return sizes
