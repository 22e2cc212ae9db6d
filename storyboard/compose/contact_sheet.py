"""The contact sheet of a panel's candidate seeds: one thumbnail per seed, each labelled with its seed."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from storyboard.text import font

BACKGROUND = (255, 255, 255)
INK = (25, 25, 30)
MARK = (231, 111, 81)
THUMB = 384  # longest side of a thumbnail, in pixels
MARGIN, GUTTER = 24, 16


def contact_sheet(title: str, candidates: Sequence[tuple[Image.Image, int]], current_seed: int,
                  columns: int = 4) -> Image.Image:
    """A grid of `candidates` (image, seed), each labelled ``seed N``; the current seed's one is framed."""
    columns = max(1, min(columns, len(candidates)))
    rows = -(-len(candidates) // columns)
    w, h = candidates[0][0].size
    scale = min(1.0, THUMB / max(w, h))
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    label_font = font(max(12, round(tw / 16)))
    title_font = font(max(14, round(tw / 12)))
    label_h = round(label_font.size * 1.6)
    title_h = round(title_font.size * 1.8)
    width = 2 * MARGIN + columns * tw + (columns - 1) * GUTTER
    height = 2 * MARGIN + title_h + rows * (th + label_h) + (rows - 1) * GUTTER
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, MARGIN), title, font=title_font, fill=INK)
    for i, (image, seed) in enumerate(candidates):
        x = MARGIN + (i % columns) * (tw + GUTTER)
        y = MARGIN + title_h + (i // columns) * (th + label_h + GUTTER)
        sheet.paste(image.convert("RGB").resize((tw, th), Image.Resampling.LANCZOS), (x, y))
        current = seed == current_seed
        if current:
            draw.rectangle((x - 4, y - 4, x + tw + 3, y + th + 3), outline=MARK, width=4)
        label = f"seed {seed}" + (" (current)" if current else "")
        draw.text((x + tw / 2, y + th + label_h / 2), label, font=label_font, fill=MARK if current else INK,
                  anchor="mm")
    return sheet
