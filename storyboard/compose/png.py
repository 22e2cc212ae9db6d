"""The PNG page, drawn with Pillow from the page's layout geometry."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageColor, ImageDraw

from storyboard.geometry import Box, Bubble, PanelBox
from storyboard.compose.page import Page, PagePanel
from storyboard.text import FontChain
from storyboard.compose.typeset import TextBlock

INK = (25, 25, 30)
MUTED = (107, 104, 96)
BUBBLE = (255, 255, 255)
NARRATION = (255, 243, 196)
OVERLAY = (255, 255, 255)


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


def page_png(page: Page) -> Image.Image:
    layout, text = page.layout, page.text
    canvas = Image.new("RGB", (layout.width, layout.height), ImageColor.getrgb(page.background))
    draw = ImageDraw.Draw(canvas)
    if layout.title:
        draw_block(draw, text.used["title",], layout.title, page.language, INK,
                   align="center")
    for n, (member, box) in enumerate(zip(page.cast, layout.cast)):
        canvas.paste(fit_image(member.image, box.image), (box.image.x, box.image.y))
        line = max(1, round(2 * layout.unit))
        draw.rectangle(_corners(box.image), outline=INK, width=line)
        if box.name:
            draw_block(draw, text.used["cast", n], box.name, page.language, INK, align="center")
    if layout.heading:
        draw_block(draw, text.used["heading",], layout.heading, page.language, INK, align="center")
    for panel, box in zip(page.panels, layout.panels):
        draw_panel(canvas, draw, page, panel, box)
    if layout.footer:
        draw_block(draw, text.used["footer",], layout.footer, page.language, MUTED,
                   align="center")
    return canvas


def draw_panel(canvas: Image.Image, draw: ImageDraw.ImageDraw, page: Page, panel: PagePanel, box: PanelBox) -> None:
    layout, text, unit = page.layout, page.text, page.layout.unit
    image = box.image
    canvas.paste(fit_image(panel.image, image), (image.x, image.y))
    if layout.border:
        b = layout.border
        draw.rectangle((image.x - b, image.y - b, image.right + b - 1, image.bottom + b - 1), outline=INK, width=b)
    line = max(1, round(2.5 * unit))
    if box.caption:
        block = text.used["caption", box.index]
        if layout.captions == "overlay":
            draw.rectangle(_corners(box.caption), fill=OVERLAY, outline=INK, width=line)
        draw_block(draw, block, box.caption, page.language, INK)
    if box.narration:
        block = text.used["narration", box.index]
        draw.rectangle(_corners(box.narration), fill=NARRATION, outline=INK, width=line)
        draw_block(draw, block, box.narration, page.language, INK)
    for n, bubble in enumerate(box.bubbles):
        block = text.used["bubble", box.index, n]
        draw_bubble(draw, bubble, line)
        draw_block(draw, block, bubble.box, page.language, INK, align="center")


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


def draw_bubble(draw: ImageDraw.ImageDraw, bubble: Bubble, line: int) -> None:
    """A rounded bubble with a tail whose outline joins the bubble's."""
    shape = bubble_shape(bubble, line)
    (x0, y0), (x1, y1) = shape.base
    tip_x, tip_y = shape.tip
    draw.polygon([(x0, shape.edge), shape.tip, (x1, shape.edge)], fill=BUBBLE, outline=INK, width=line)
    draw.rounded_rectangle(_corners(bubble.box), radius=shape.radius, fill=BUBBLE, outline=INK, width=line)
    # Open the bubble's outline where the tail joins it, then redraw the tail's two sides.
    draw.polygon([(x0 + line, y0), (tip_x, tip_y - shape.inward * line), (x1 - line, y1)], fill=BUBBLE)
    draw.line([(x0, shape.edge), shape.tip], fill=INK, width=line)
    draw.line([(x1, shape.edge), shape.tip], fill=INK, width=line)


def draw_block(draw: ImageDraw.ImageDraw, block: TextBlock, box: Box, language: str, fill: object,
               align: str = "left") -> None:
    """Draw the lines of `block` in `box`, centred vertically."""
    chain = FontChain(block.size, language)
    inner_w = box.w - 2 * block.pad_x
    top = box.y + block.pad_y + max(0, (box.h - block.height) // 2)
    for n, line in enumerate(block.lines):
        chain.draw(draw, (box.x + block.pad_x, top + n * block.line_height), line, fill, align=align, width=inner_w)


def _corners(box: Box) -> tuple[int, int, int, int]:
    return box.x, box.y, box.right - 1, box.bottom - 1
