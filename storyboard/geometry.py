"""Page geometry: boxes on a page, computed without drawing anything.

One `PageLayout` drives the PNG, the PDF and the HTML page, so they agree. Everything is in page pixels (the pixels
of page.png). Text sizes come in through a `Measure`, so this module stays pure: given the same spec and the same
measurements it always returns the same boxes. It sits below `resolve` (a panel is rendered at its box's size,
`panel_size`) and `compose` (which draws into the boxes), so neither reaches into the other for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

# Page presets: (width, height) in page pixels; a height of None grows with the content.
PRESETS: dict[str, tuple[int | None, int | None]] = {
    "auto": (None, None),  # as wide as the panels at their rendered size (up to MAX_AUTO_WIDTH)
    "a4": (2480, 3508),  # A4 portrait at 300 dpi
    "square": (2400, 2400),
    "strip": (1080, None),  # a narrow web strip, read by scrolling
    "webtoon": (800, None),  # one column of panels edge to edge, read by scrolling on a phone
}
EDGE_TO_EDGE = {"webtoon"}  # presets whose panels fill the page's width: margins inset only the text
MAX_AUTO_WIDTH = 3200
REFERENCE_CELL = 512  # text sizes are designed for a one-column panel this wide
CAPTION_GAP = 12  # between a panel and its caption, in reference units
BUBBLE_WIDTH = 0.46  # the widest a speech bubble gets, as a share of its panel's width
NARRATION_WIDTH = BUBBLE_WIDTH  # it takes one of the corner slots the bubbles use
CAST_PORTRAIT = 112  # side of a cast portrait, in reference units

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]


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

    def contains(self, other: Box) -> bool:
        return self.x <= other.x and self.y <= other.y and other.right <= self.right and other.bottom <= self.bottom

    def overlaps(self, other: Box) -> bool:
        return self.x < other.right and other.x < self.right and self.y < other.bottom and other.y < self.bottom

    def offset(self, dx: int, dy: int) -> Box:
        return Box(self.x + dx, self.y + dy, self.w, self.h)


@dataclass(frozen=True)
class Bubble:
    """A speech bubble inside a panel: its box and the tip of its tail, in page pixels."""

    box: Box
    tail: tuple[int, int]
    corner: Corner


@dataclass(frozen=True)
class PanelBox:
    index: int  # 1-based position on its page, in reading order (on a page holding the whole story, its number)
    row: int  # 0-based
    column: int  # 0-based, counted from the left edge of the page whatever the reading direction
    span: int
    image: Box
    caption: Box | None = None
    narration: Box | None = None
    narration_corner: Corner | None = None
    bubbles: tuple[Bubble, ...] = ()


@dataclass(frozen=True)
class CastBox:
    """One portrait of the cast strip and the name under it."""

    image: Box
    name: Box | None


@dataclass(frozen=True)
class PageLayout:
    width: int
    height: int
    unit: float  # page pixels per reference pixel: text and line widths scale with it
    columns: int
    direction: str
    captions: str
    title: Box | None
    footer: Box | None
    panels: tuple[PanelBox, ...]
    border: int
    gutter: int
    margin: int
    heading: Box | None = None  # a chapter's title, above the first row
    cast: tuple[CastBox, ...] = ()  # portraits under the title


@dataclass(frozen=True)
class PageSpec:
    """What decides the geometry, all from the story's `layout:` and `render:`."""

    cell: tuple[int, int]  # rendered size of a one-column panel
    columns: int
    spans: tuple[int, ...]
    direction: str = "ltr"
    page: str = "auto"
    margin: int = 48  # in rendered pixels: scaled with the panels
    gutter: int = 32
    border: int = 3
    captions: str = "below"
    narrations: tuple[bool, ...] = field(default=())  # which panels have a narration box
    heading: bool = False  # the page starts a chapter: measure its heading
    cast: int = 0  # portraits in the cast strip under the title
    keep_columns: bool = False  # a page of a book: as many columns as its siblings, however few panels it holds
    # Share of each panel's height at its top that bubbles and narration leave free: a strip the renderer draws
    # there itself (the draft card's header band).
    reserve_top: float = 0.0


class Measure(Protocol):
    """Text measurements at a given text unit (page pixels per reference pixel); heights of 0 mean no text."""

    def title(self, width: int, unit: float) -> int: ...

    def footer(self, width: int, unit: float) -> int: ...

    def caption(self, index: int, width: int, unit: float) -> int: ...

    def narration(self, index: int, max_width: int, max_height: int, unit: float) -> tuple[int, int] | None: ...

    def bubbles(self, index: int, shapes: Sequence[Sequence[tuple[int, int]]], unit: float) -> list[tuple[int, int]]:
        """Sizes of the panel's bubbles: bubble n fits one of the (max width, max height) of shapes[n], the first
        that holds all its text (else the last)."""
        ...

    def heading(self, width: int, unit: float) -> int: ...  # asked only when `PageSpec.heading`

    def cast_name(self, n: int, width: int, unit: float) -> int: ...  # asked only when `PageSpec.cast`


class NoText:
    """A `Measure` for pages without any text."""

    def title(self, width: int, unit: float) -> int:
        return 0

    def footer(self, width: int, unit: float) -> int:
        return 0

    def caption(self, index: int, width: int, unit: float) -> int:
        return 0

    def narration(self, index: int, max_width: int, max_height: int, unit: float) -> tuple[int, int] | None:
        return None

    def bubbles(self, index: int, shapes: Sequence[Sequence[tuple[int, int]]], unit: float) -> list[tuple[int, int]]:
        return []

    def heading(self, width: int, unit: float) -> int:
        return 0

    def cast_name(self, n: int, width: int, unit: float) -> int:
        return 0


def round8(value: float) -> int:
    return max(8, int(round(value / 8)) * 8)


def panel_size(cell: tuple[int, int], span: int, gutter: int) -> tuple[int, int]:
    """The size to render a panel spanning `span` columns at: its box's aspect ratio, in multiples of 8."""
    w, h = cell
    return round8(span * w + (span - 1) * gutter), h


def place(spans: Sequence[int], columns: int) -> list[tuple[int, int]]:
    """(row, column in reading order) of each panel: rows fill in order; a panel too wide for what is left of a
    row starts the next one."""
    slots: list[tuple[int, int]] = []
    row, col = 0, 0
    for span in spans:
        if span > columns:
            raise ValueError(f"a panel spans {span} columns but the page has {columns}")
        if col + span > columns:
            row, col = row + 1, 0
        slots.append((row, col))
        col += span
    return slots


def page_layout(spec: PageSpec, measure: Measure | None = None) -> PageLayout:
    """Lay the panels of `spec` out on the page, with text boxes sized by `measure`."""
    if not spec.spans or spec.columns < 1:
        raise ValueError("a page needs at least one panel and one column")
    if spec.page not in PRESETS:
        raise ValueError(f"unknown page preset {spec.page!r}")
    measure = measure or NoText()
    columns = spec.columns if spec.keep_columns else min(spec.columns, max(sum(spec.spans), max(spec.spans)))
    slots = place(spec.spans, columns)
    rw, _ = spec.cell
    natural_w = columns * rw + (columns - 1) * spec.gutter
    if spec.page not in EDGE_TO_EDGE:
        natural_w += 2 * spec.margin
    fixed_w, fixed_h = PRESETS[spec.page]
    if fixed_w is None:
        scale = min(1.0, MAX_AUTO_WIDTH / natural_w)
    else:
        scale = fixed_w / natural_w
    width = fixed_w or round(natural_w * scale)

    layout = _layout_at(spec, measure, slots, columns, width, scale, fixed_h)
    if fixed_h is not None and _content_bottom(layout) > fixed_h:
        lo, hi = scale * 0.05, scale
        for _ in range(24):  # the largest scale whose content fits the page height
            mid = (lo + hi) / 2
            if _content_bottom(_layout_at(spec, measure, slots, columns, width, mid, fixed_h)) <= fixed_h:
                lo = mid
            else:
                hi = mid
        layout = _layout_at(spec, measure, slots, columns, width, lo, fixed_h)
    return layout


def _content_bottom(layout: PageLayout) -> int:
    bottoms = [p.image.bottom for p in layout.panels] + [p.caption.bottom for p in layout.panels if p.caption]
    bottom = max(bottoms) + layout.margin
    if layout.footer:
        bottom += layout.footer.h + layout.gutter
    return bottom


@dataclass(frozen=True)
class _Grid:
    """The page's columns at one scale, in page pixels (unrounded, so every box rounds its own edges)."""

    columns: int
    x0: float  # left edge of the first column
    cell_w: float
    cell_h: float
    gutter: float
    unit: float
    gap: float  # between a panel and its caption


def _layout_at(spec: PageSpec, measure: Measure, slots: list[tuple[int, int]], columns: int, width: int,
               scale: float, fixed_h: int | None) -> PageLayout:
    rw, rh = spec.cell
    cw, ch, g, m = rw * scale, rh * scale, spec.gutter * scale, spec.margin * scale
    unit = cw / REFERENCE_CELL
    grid = _Grid(columns, (width - (columns * cw + (columns - 1) * g)) / 2, cw, ch, g, unit, CAPTION_GAP * unit)
    content = Box(round(m), round(m), width - 2 * round(m), 0)

    y = m
    title_h = measure.title(content.w, unit)
    title = Box(content.x, round(y), content.w, title_h) if title_h else None
    if title_h:
        y += title_h + g
    cast, y = _cast_strip(spec.cast, measure, grid, width, content, y)
    heading = None
    if spec.heading:
        heading_h = measure.heading(content.w, unit)
        if heading_h:
            heading = Box(content.x, round(y), content.w, heading_h)
            y += heading_h + g
    panels, y = _rows(spec, measure, slots, grid, y)

    footer_h = measure.footer(content.w, unit)
    footer = None
    if footer_h:
        footer_y = fixed_h - round(m) - footer_h if fixed_h is not None else round(y + g)
        footer = Box(content.x, max(round(y + g), footer_y), content.w, footer_h)
        y += g + footer_h
    height = fixed_h if fixed_h is not None else round(y + m)
    return PageLayout(width=width, height=height, unit=unit, columns=columns, direction=spec.direction,
                      captions=spec.captions, title=title, footer=footer, panels=tuple(panels),
                      border=max(1, round(spec.border * unit)) if spec.border else 0, gutter=round(g),
                      margin=round(m), heading=heading, cast=tuple(cast))


def _cast_strip(count: int, measure: Measure, grid: _Grid, width: int, content: Box,
                y: float) -> tuple[list[CastBox], float]:
    """`count` portraits in centred rows from `y`, each with its name under it; and the y below the strip."""
    cast: list[CastBox] = []
    if not count:
        return cast, y
    g, unit = grid.gutter, grid.unit
    side = round(CAST_PORTRAIT * unit)
    step = side + round(g)
    per_row = max(1, (content.w + round(g)) // step)
    for start in range(0, count, per_row):
        members = range(start, min(count, start + per_row))
        left = round((width - (len(members) * step - round(g))) / 2)
        name_h = max(measure.cast_name(n, side + round(g) * 3 // 4, unit) for n in members)
        for k in range(len(members)):
            image = Box(left + k * step, round(y), side, side)
            name = Box(image.x - round(g) * 3 // 8, image.bottom + round(grid.gap / 2), side + round(g) * 3 // 4,
                       name_h) if name_h else None
            cast.append(CastBox(image, name))
        y += side + (name_h + grid.gap / 2 if name_h else 0) + g
    return cast, y


def _rows(spec: PageSpec, measure: Measure, slots: list[tuple[int, int]], grid: _Grid,
          y: float) -> tuple[list[PanelBox], float]:
    """The panels in rows from `y`, each row as tall as a panel plus its captions' band; and the y below them."""
    g, unit, gap = grid.gutter, grid.unit, grid.gap
    panels: list[PanelBox] = []
    for row in range(max(r for r, _ in slots) + 1):
        boxes: list[tuple[int, int, Box]] = []
        for i, col in ((i, col) for i, (r, col) in enumerate(slots) if r == row):
            span = spec.spans[i]
            left_col = col if spec.direction == "ltr" else grid.columns - col - span
            left = grid.x0 + left_col * (grid.cell_w + g)
            right = left + span * grid.cell_w + (span - 1) * g
            boxes.append((i, left_col, Box(round(left), 0, round(right) - round(left), 0)))
        band = 0
        if spec.captions in ("below", "above"):
            band = max(measure.caption(i + 1, box.w - 2 * _text_inset(spec, unit), unit) for i, _, box in boxes)
        top = y + (band + gap if band and spec.captions == "above" else 0)
        image_top, image_bottom = round(top), round(top + grid.cell_h)
        for i, left_col, box in boxes:
            image = Box(box.x, image_top, box.w, image_bottom - image_top)
            panels.append(_panel(spec, measure, i, row, left_col, image, band, gap, unit))
        y = top + grid.cell_h + (band + gap if band and spec.captions == "below" else 0) + g
    return panels, y - g


def _text_inset(spec: PageSpec, unit: float) -> int:
    """How far a caption keeps from the panel's sides: none, but where panels run to the page's edges."""
    return round(16 * unit) if spec.page in EDGE_TO_EDGE else 0


def _panel(spec: PageSpec, measure: Measure, i: int, row: int, left_col: int, image: Box, band: int, gap: float,
           unit: float) -> PanelBox:
    index = i + 1
    inset = round(16 * unit)
    caption = None
    overlay_top = image.bottom - inset
    side = _text_inset(spec, unit)
    if spec.captions == "below":
        h = measure.caption(index, image.w - 2 * side, unit)
        caption = Box(image.x + side, round(image.bottom + gap), image.w - 2 * side, h) if h else None
    elif spec.captions == "above":
        h = measure.caption(index, image.w - 2 * side, unit)
        caption = Box(image.x + side, round(image.y - gap - band), image.w - 2 * side, h) if h else None
    else:
        h = measure.caption(index, image.w - 2 * inset, unit)
        if h:
            caption = Box(image.x + inset, image.bottom - inset - h, image.w - 2 * inset, h)
            overlay_top = caption.y - inset // 2

    # Four corner slots in reading order; the middle third of the panel, where the subject usually is, stays free.
    # A strip the renderer draws at the top (the draft card's header) is left free too.
    third_h = image.h / 3
    reserved = round(spec.reserve_top * image.h)
    top_max = round(third_h - inset * 1.5) - reserved
    bottom_limit = overlay_top
    bottom_max = round(bottom_limit - (image.y + 2 * third_h) - inset / 2)
    max_w = round(image.w * BUBBLE_WIDTH)
    corners: list[Corner] = ["top-left", "top-right", "bottom-left", "bottom-right"]
    if spec.direction == "rtl":
        corners = ["top-right", "top-left", "bottom-right", "bottom-left"]

    narration = None
    narration_corner: Corner | None = None
    has_narration = bool(spec.narrations[i]) if i < len(spec.narrations) else True
    if has_narration:
        size = measure.narration(index, round(image.w * NARRATION_WIDTH), top_max, unit)
        if size:
            narration_corner = corners.pop(0)
            narration = _in_corner(image, size, narration_corner, inset, bottom_limit, reserved)
    # Each corner offers a wide, short shape beside the middle, then a narrow, tall one that stays in its side
    # third of the panel (down to the panel's half), for text too long for the first.
    narrow_w = round(image.w / 3 - inset * 1.5)
    top_tall = round(image.h / 2 - inset * 1.5) - reserved
    bottom_tall = round(bottom_limit - (image.y + image.h / 2) - inset / 2)
    shapes = [[(max_w, max(1, top_max)), (narrow_w, max(1, top_tall))] if c.startswith("top")
              else [(max_w, max(1, bottom_max)), (narrow_w, max(1, bottom_tall))] for c in corners]
    sizes = measure.bubbles(index, shapes, unit)
    bubbles: list[Bubble] = []
    for n, (bw, bh) in enumerate(sizes[: len(corners)]):
        corner = corners[n]
        box = _in_corner(image, (bw, bh), corner, inset, bottom_limit, reserved)
        bubbles.append(Bubble(box, _tail(image, box, corner, unit), corner))
    return PanelBox(index, row, left_col, spec.spans[i], image, caption, narration, narration_corner,
                    tuple(bubbles))


def _in_corner(image: Box, size: tuple[int, int], corner: Corner, inset: int, bottom_limit: int,
               reserved: int = 0) -> Box:
    w, h = min(size[0], image.w - 2 * inset), min(size[1], image.h - 2 * inset - reserved)
    x = image.x + inset if corner.endswith("left") else image.right - inset - w
    y = image.y + inset + reserved if corner.startswith("top") else min(image.bottom - inset, bottom_limit) - h
    return Box(x, max(image.y + inset + reserved, y), w, h)


def _tail(image: Box, box: Box, corner: Corner, unit: float) -> tuple[int, int]:
    """The tip of a bubble's tail: out of the side facing the panel's middle, pointing towards it."""
    length = round(max(10.0, 34 * unit))
    toward_middle = 1 if corner.endswith("left") else -1
    x = box.x + box.w // 2 + toward_middle * box.w // 5 + toward_middle * length // 2
    y = box.bottom + length if corner.startswith("top") else box.y - length
    x = min(max(x, image.x + 1), image.right - 1)
    y = min(max(y, image.y + 1), image.bottom - 1)
    return x, y


def slice_cuts(layout: PageLayout, most: int) -> list[int]:
    """Where to cut a tall page into slices at most `most` pixels high: the edges, from 0 to its height.

    Each cut is the lowest one that keeps the slice within `most`: in a gutter between panels where one is in
    reach, else through a picture, but never through text (a bubble, a narration box, a caption, a title): such a
    cut moves up above it.
    """
    texts = [box for p in layout.panels for box in (p.caption, p.narration, *(b.box for b in p.bubbles)) if box]
    texts += [box for box in (layout.title, layout.heading, layout.footer) if box]
    texts += [box for member in layout.cast for box in (member.image, member.name) if box]
    # What stands on the page, top to bottom (the title, the cast, a heading, each row of panels with its captions,
    # the footer); the gaps between them are where a slice is best cut.
    captions = {p.caption for p in layout.panels}  # they stand with their row
    blocks = [(b.y, b.bottom) for b in texts if b not in captions]
    blocks += [(p.image.y, max(p.image.bottom, p.caption.bottom if p.caption else 0)) for p in layout.panels]
    merged: list[list[int]] = []
    for start, end in sorted(blocks):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    gutters = [(above[1] + below[0]) // 2 for above, below in zip(merged, merged[1:])]
    cuts, top = [0], 0
    while layout.height - top > most:
        limit = top + most
        reachable = [y for y in gutters if top < y <= limit]
        y = max(reachable) if reachable else limit
        moved = True
        while moved:  # above any text the cut would go through
            moved = False
            for box in texts:
                if box.y < y < box.bottom:
                    y, moved = box.y, True
        if y <= top:  # text taller than a slice: cut it where it must be cut
            y = limit
        cuts.append(y)
        top = y
    return [*cuts, layout.height]
