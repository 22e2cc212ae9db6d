"""Page geometry: boxes on a page, computed without drawing anything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h


@dataclass(frozen=True)
class PanelBox:
    index: int  # 1-based panel number
    image: Box
    caption: Box | None


@dataclass(frozen=True)
class PageLayout:
    width: int
    height: int
    title: Box
    panels: tuple[PanelBox, ...]
    panel_scale: float  # drawn panel size / rendered panel size


def grid_layout(
    count: int,
    columns: int,
    panel_size: tuple[int, int],
    caption_heights: Sequence[int],
    *,
    title_height: int,
    margin: int,
    gutter: int,
    caption_gap: int,
    max_width: int | None = None,
) -> PageLayout:
    """Lay `count` panels out in rows of `columns`, each caption under its panel.

    Panels keep their aspect ratio; if `max_width` is given and the row is wider, they are scaled down.
    `caption_heights[i]` is the height of panel i+1's caption at the drawn size (0 for none).
    """
    if count < 1 or columns < 1:
        raise ValueError("a page needs at least one panel and one column")
    columns = min(columns, count)
    pw, ph = panel_size
    scale = 1.0
    natural = 2 * margin + columns * pw + (columns - 1) * gutter
    if max_width is not None and natural > max_width:
        scale = (max_width - 2 * margin - (columns - 1) * gutter) / (columns * pw)
    cw, ch = max(1, round(pw * scale)), max(1, round(ph * scale))
    width = 2 * margin + columns * cw + (columns - 1) * gutter

    title = Box(margin, margin, width - 2 * margin, title_height)
    y = title.bottom + (gutter if title_height else 0)
    boxes: list[PanelBox] = []
    for row_start in range(0, count, columns):
        row = range(row_start, min(row_start + columns, count))
        row_caption = max(caption_heights[i] for i in row)
        for col, i in enumerate(row):
            x = margin + col * (cw + gutter)
            image = Box(x, y, cw, ch)
            caption = Box(x, y + ch + caption_gap, cw, caption_heights[i]) if caption_heights[i] else None
            boxes.append(PanelBox(i + 1, image, caption))
        y += ch + (caption_gap + row_caption if row_caption else 0) + gutter
    height = y - gutter + margin
    return PageLayout(width, height, title, tuple(boxes), scale)
