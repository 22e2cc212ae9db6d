"""The PNG page, drawn with Pillow from the same layout geometry as the HTML page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from storyboard.compose.layout import PageLayout, grid_layout
from storyboard.compose.text import font, wrap

BACKGROUND = (255, 255, 255)
INK = (25, 25, 30)
BORDER = (25, 25, 30)
MAX_PAGE_WIDTH = 3200
LINE_SPACING = 1.35


@dataclass(frozen=True)
class PagePanel:
    index: int
    image: Image.Image
    caption: str


def page_png(title: str, panels: Sequence[PagePanel], columns: int) -> tuple[Image.Image, PageLayout]:
    """Draw the comic page: title, then the panels in a grid with each caption under its panel."""
    size = panels[0].image.size
    spacing = dict(margin=48, gutter=32, caption_gap=12)
    probe = grid_layout(len(panels), columns, size, [0] * len(panels), title_height=0,
                        max_width=MAX_PAGE_WIDTH, **spacing)
    cell_w = probe.panels[0].image.w
    unit = max(cell_w, 256) / 512
    caption_font = font(round(26 * unit))
    title_font = font(round(64 * unit))
    caption_lines = [wrap(p.caption, caption_font, cell_w) if p.caption.strip() else [] for p in panels]
    caption_line_h = round(caption_font.size * LINE_SPACING)
    title_w = probe.width - 2 * spacing["margin"]
    title_lines = wrap(title, title_font, title_w)
    title_line_h = round(title_font.size * LINE_SPACING)

    layout = grid_layout(len(panels), columns, size, [len(lines) * caption_line_h for lines in caption_lines],
                         title_height=len(title_lines) * title_line_h, max_width=MAX_PAGE_WIDTH, **spacing)
    page = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    draw = ImageDraw.Draw(page)
    for n, line in enumerate(title_lines):
        draw.text((layout.width / 2, layout.title.y + n * title_line_h), line, font=title_font, fill=INK, anchor="ma")
    border = max(2, round(3 * unit))
    for panel, box, lines in zip(panels, layout.panels, caption_lines):
        img = panel.image.convert("RGB")
        if img.size != (box.image.w, box.image.h):
            img = img.resize((box.image.w, box.image.h), Image.Resampling.LANCZOS)
        page.paste(img, (box.image.x, box.image.y))
        draw.rectangle((box.image.x - border, box.image.y - border, box.image.right + border - 1,
                        box.image.bottom + border - 1), outline=BORDER, width=border)
        if box.caption:
            for n, line in enumerate(lines):
                draw.text((box.caption.x, box.caption.y + n * caption_line_h), line, font=caption_font, fill=INK)
    return page, layout
