"""The PNG page: the page walk (`paint.py`) painted with Pillow."""

from __future__ import annotations

from PIL import Image, ImageColor, ImageDraw

from storyboard.compose.page import Page
from storyboard.compose.paint import BUBBLE, INK, Colour, bubble_shape, fit_image, paint_page
from storyboard.compose.typeset import TextBlock
from storyboard.geometry import Box, Bubble
from storyboard.text import FontChain


def page_png(page: Page) -> Image.Image:
    canvas = Image.new("RGB", (page.layout.width, page.layout.height), ImageColor.getrgb(page.background))
    paint_page(page, PngPainter(canvas, page.language))
    return canvas


class PngPainter:
    """Paints onto a Pillow image."""

    def __init__(self, canvas: Image.Image, language: str) -> None:
        self.canvas, self.language = canvas, language
        self.draw = ImageDraw.Draw(canvas)

    def portrait(self, image: Image.Image, box: Box, line: int) -> None:
        self.canvas.paste(fit_image(image, box), (box.x, box.y))
        self.draw.rectangle(_corners(box), outline=INK, width=line)

    def picture(self, image: Image.Image, box: Box, border: int, line: int) -> None:
        self.canvas.paste(fit_image(image, box), (box.x, box.y))
        if border:
            b = border
            self.draw.rectangle((box.x - b, box.y - b, box.right + b - 1, box.bottom + b - 1), outline=INK, width=b)

    def box(self, box: Box, fill: Colour, line: int) -> None:
        self.draw.rectangle(_corners(box), fill=fill, outline=INK, width=line)

    def bubble(self, bubble: Bubble, line: int) -> None:
        """A rounded bubble with a tail whose outline joins the bubble's."""
        draw, shape = self.draw, bubble_shape(bubble, line)
        (x0, y0), (x1, y1) = shape.base
        tip_x, tip_y = shape.tip
        draw.polygon([(x0, shape.edge), shape.tip, (x1, shape.edge)], fill=BUBBLE, outline=INK, width=line)
        draw.rounded_rectangle(_corners(bubble.box), radius=shape.radius, fill=BUBBLE, outline=INK, width=line)
        # Open the bubble's outline where the tail joins it, then redraw the tail's two sides.
        draw.polygon([(x0 + line, y0), (tip_x, tip_y - shape.inward * line), (x1 - line, y1)], fill=BUBBLE)
        draw.line([(x0, shape.edge), shape.tip], fill=INK, width=line)
        draw.line([(x1, shape.edge), shape.tip], fill=INK, width=line)

    def text(self, block: TextBlock, box: Box, colour: Colour, align: str = "left") -> None:
        chain = FontChain(block.size, self.language)
        inner_w = box.w - 2 * block.pad_x
        top = box.y + block.pad_y + max(0, (box.h - block.height) // 2)
        for n, line in enumerate(block.lines):
            chain.draw(self.draw, (box.x + block.pad_x, top + n * block.line_height), line, colour, align=align,
                       width=inner_w)


def _corners(box: Box) -> tuple[int, int, int, int]:
    return box.x, box.y, box.right - 1, box.bottom - 1
