"""One walk of a page for every drawn output: what goes where, in which colour, and in what order.

`paint_page` visits the title, the cast strip, a chapter's heading, each panel (its picture and border, caption,
narration and bubbles) and the footer, and hands each to a `Painter`. The PNG painter (Pillow) and the PDF painter
(fpdf2) only know how to draw a box, a picture, a bubble or a block of text, so the two outputs cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from storyboard.compose.page import Page
from storyboard.compose.typeset import TextBlock
from storyboard.geometry import Box, Bubble

Colour = tuple[int, int, int]

INK: Colour = (25, 25, 30)
MUTED: Colour = (107, 104, 96)
BUBBLE: Colour = (255, 255, 255)
NARRATION: Colour = (255, 243, 196)
OVERLAY: Colour = (255, 255, 255)


class Painter(Protocol):
    """Draws on one page, in page pixels; called in the order things are stacked, bottom first."""

    def portrait(self, image: Image.Image, box: Box, line: int) -> None:
        """A cast portrait fitted to `box`, framed with a line `line` pixels wide."""

    def picture(self, image: Image.Image, box: Box, border: int, line: int) -> None:
        """A panel's picture fitted to `box`, with a `border` (pixels, 0 for none) around it; `line` is the width
        of the outlines drawn over it next (its caption box, narration and bubbles)."""

    def box(self, box: Box, fill: Colour, line: int) -> None:
        """A filled rectangle outlined in ink."""

    def bubble(self, bubble: Bubble, line: int) -> None:
        """A speech bubble and its tail, outlined in ink."""

    def text(self, block: TextBlock, box: Box, colour: Colour, align: str = "left") -> None:
        """The lines of `block` in `box`, centred vertically."""


def paint_page(page: Page, painter: Painter) -> None:
    layout, used = page.layout, page.text.used
    if layout.title:
        painter.text(used["title",], layout.title, INK, align="center")
    for n, (member, box) in enumerate(zip(page.cast, layout.cast)):
        painter.portrait(member.image, box.image, max(1, round(2 * layout.unit)))
        if box.name:
            painter.text(used["cast", n], box.name, INK, align="center")
    if layout.heading:
        painter.text(used["heading",], layout.heading, INK, align="center")
    line = max(1, round(2.5 * layout.unit))
    for panel, box in zip(page.panels, layout.panels):
        painter.picture(panel.image, box.image, layout.border, line)
        if box.caption:
            if layout.captions == "overlay":
                painter.box(box.caption, OVERLAY, line)
            painter.text(used["caption", box.index], box.caption, INK)
        if box.narration:
            painter.box(box.narration, NARRATION, line)
            painter.text(used["narration", box.index], box.narration, INK)
        for n, bubble in enumerate(box.bubbles):
            painter.bubble(bubble, line)
            painter.text(used["bubble", box.index, n], bubble.box, INK, align="center")
    if layout.footer:
        painter.text(used["footer",], layout.footer, MUTED, align="center")


def fit_image(image: Image.Image, box: Box) -> Image.Image:
    """`image` scaled to cover `box` exactly, cropping the few pixels that multiple-of-8 sizes leave over."""
    image = image.convert("RGB")
    if image.size == (box.w, box.h):
        return image
    scale = max(box.w / image.width, box.h / image.height)
    w, h = max(box.w, round(image.width * scale)), max(box.h, round(image.height * scale))
    image = image.resize((w, h), Image.Resampling.LANCZOS)
    left, top = (w - box.w) // 2, (h - box.h) // 2
    return image.crop((left, top, left + box.w, top + box.h))


@dataclass(frozen=True)
class BubbleShape:
    radius: int
    base: tuple[tuple[int, int], tuple[int, int]]  # where the tail leaves the bubble, just inside its edge
    edge: int  # y of the bubble edge the tail crosses
    tip: tuple[int, int]
    inward: int  # +1 when the inside of the bubble is below the edge, -1 when above


def bubble_shape(bubble: Bubble, line: int) -> BubbleShape:
    box = bubble.box
    radius = min(min(box.w, box.h) // 2, 12 * line)  # a pill when short; tall ones keep room for their text
    base_half = max(line * 2, min(box.w // 8, round(radius * 0.8)))
    tip_x, tip_y = bubble.tail
    top = bubble.corner.startswith("top")
    edge = box.bottom - 1 if top else box.y
    lo, hi = box.x + radius + base_half, box.right - radius - base_half
    centre = min(max(tip_x, lo), hi) if lo <= hi else box.x + box.w // 2
    inward = -1 if top else 1
    y = edge + inward * line * 2
    return BubbleShape(radius, ((centre - base_half, y), (centre + base_half, y)), edge, (tip_x, tip_y), inward)
