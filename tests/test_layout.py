"""Page geometry as pure unit tests: no fonts, no images."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from storyboard.geometry import PRESETS, Box, PageSpec, page_layout, panel_size, place


class FixedText:
    """A Measure with fixed sizes, so the geometry is tested apart from fonts."""

    def __init__(self, caption: int = 40, bubbles: int = 2, narration: bool = False, title: int = 80,
                 footer: int = 30) -> None:
        self.caption_h, self.count, self.has_narration = caption, bubbles, narration
        self.title_h, self.footer_h = title, footer

    def title(self, width: int, unit: float) -> int:
        return self.title_h

    def footer(self, width: int, unit: float) -> int:
        return self.footer_h

    def caption(self, index: int, width: int, unit: float) -> int:
        return self.caption_h

    def narration(self, index: int, max_width: int, max_height: int, unit: float) -> tuple[int, int] | None:
        return (max_width, min(60, max_height)) if self.has_narration else None

    def bubbles(self, index: int, shapes: Sequence[Sequence[tuple[int, int]]], unit: float) -> list[tuple[int, int]]:
        """The first bubble takes its corner's narrow, tall shape; the others the wide, short one, all to the full."""
        return [shapes[n][1 if n == 0 else 0] for n in range(min(self.count, len(shapes)))]


def spec(**kw) -> PageSpec:
    base = dict(cell=(512, 512), columns=3, spans=(1, 1, 1, 1, 1))
    base.update(kw)
    return PageSpec(**base)


def all_boxes(layout) -> list[Box]:
    boxes = []
    for p in layout.panels:
        boxes.append(p.image)
        if p.caption and layout.captions != "overlay":
            boxes.append(p.caption)
    return boxes + [b for b in (layout.title, layout.footer) if b]


def assert_sane(layout) -> None:
    page = Box(0, 0, layout.width, layout.height)
    boxes = all_boxes(layout)
    for box in boxes:
        assert box.w > 0 and box.h >= 0
        assert page.contains(box), (box, layout.width, layout.height)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    for p in layout.panels:
        middle = Box(p.image.x + p.image.w // 3, p.image.y + p.image.h // 3, p.image.w // 3, p.image.h // 3)
        inner = [b.box for b in p.bubbles] + ([p.narration] if p.narration else [])
        for box in inner:
            assert p.image.contains(box), (box, p.image)
            assert not box.overlaps(middle), "a bubble covers the middle of the panel"
        for a, b in itertools.combinations(inner, 2):
            assert not a.overlaps(b)
        for bubble in p.bubbles:
            x, y = bubble.tail
            assert p.image.x <= x < p.image.right and p.image.y <= y < p.image.bottom


def test_grid_boxes_ltr():
    layout = page_layout(spec(margin=48, gutter=32), FixedText(caption=0, title=0, footer=0))
    assert layout.width == 2 * 48 + 3 * 512 + 2 * 32
    assert [(p.row, p.column) for p in layout.panels] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    first, second, fourth = layout.panels[0].image, layout.panels[1].image, layout.panels[3].image
    assert (first.x, first.y, first.w, first.h) == (48, 48, 512, 512)
    assert second.x == first.right + 32 and fourth.y == first.bottom + 32
    assert layout.height == 48 + 512 + 32 + 512 + 48
    assert_sane(layout)


def test_rtl_mirrors_columns_and_keeps_reading_order():
    ltr = page_layout(spec(), FixedText())
    rtl = page_layout(spec(direction="rtl"), FixedText())
    assert [p.index for p in rtl.panels] == [1, 2, 3, 4, 5]
    for a, b in zip(ltr.panels, rtl.panels):
        assert b.image.y == a.image.y and b.image.w == a.image.w
        assert b.image.x == rtl.width - a.image.right  # mirrored
    row = [p.image.x for p in rtl.panels if p.row == 0]
    assert row == sorted(row, reverse=True), "right to left: panel 1 is rightmost"
    assert_sane(rtl)


def test_span_widens_box_and_wraps_rows():
    layout = page_layout(spec(spans=(2, 1, 3, 1, 2)), FixedText())
    assert [(p.row, p.column, p.span) for p in layout.panels] == [(0, 0, 2), (0, 2, 1), (1, 0, 3), (2, 0, 1),
                                                                 (2, 1, 2)]
    one, two, three = layout.panels[1].image, layout.panels[0].image, layout.panels[2].image
    assert two.w == 2 * one.w + layout.gutter
    assert three.w == 3 * one.w + 2 * layout.gutter
    assert two.h == one.h == three.h
    assert_sane(layout)


def test_span_too_wide_is_refused():
    with pytest.raises(ValueError, match="spans 4 columns but the page has 3"):
        place([1, 4], 3)


def test_rendered_size_follows_the_box_in_multiples_of_8():
    assert panel_size((512, 384), 1, 32) == (512, 384)
    assert panel_size((512, 384), 2, 32) == (1056, 384)
    assert panel_size((500, 384), 3, 30)[0] % 8 == 0
    layout = page_layout(spec(spans=(2, 1), gutter=32), FixedText(caption=0))
    box = layout.panels[0].image
    w, h = panel_size((512, 512), 2, 32)
    assert abs(box.w / box.h - w / h) < 0.01


@pytest.mark.parametrize("preset", ["a4", "square", "strip"])
@pytest.mark.parametrize("direction", ["ltr", "rtl"])
@pytest.mark.parametrize("captions", ["below", "above", "overlay"])
def test_presets_keep_everything_on_the_page(preset, direction, captions):
    s = spec(page=preset, direction=direction, captions=captions, spans=(2, 1, 1, 1, 3, 1, 2, 1, 1))
    layout = page_layout(s, FixedText(caption=70, bubbles=3, narration=True))
    width, height = PRESETS[preset]
    assert layout.width == width
    if height:
        assert layout.height == height
    assert_sane(layout)


def test_a4_scales_down_a_tall_page_to_fit():
    layout = page_layout(spec(page="a4", columns=2, spans=(1,) * 12), FixedText())
    assert (layout.width, layout.height) == (2480, 3508)
    assert layout.panels[-1].image.bottom < 3508
    assert layout.panels[0].image.w < (2480 - 2 * 48) / 2  # smaller than the width alone would allow
    assert_sane(layout)


def test_caption_positions():
    below = page_layout(spec(captions="below"), FixedText(caption=50))
    above = page_layout(spec(captions="above"), FixedText(caption=50))
    overlay = page_layout(spec(captions="overlay"), FixedText(caption=50))
    assert below.panels[0].caption.y > below.panels[0].image.bottom
    assert above.panels[0].caption.bottom < above.panels[0].image.y
    assert overlay.panels[0].image.contains(overlay.panels[0].caption)
    for layout in (below, above, overlay):
        assert_sane(layout)


def test_bubbles_fill_corners_in_reading_order():
    ltr = page_layout(spec(spans=(1,)), FixedText(bubbles=4))
    rtl = page_layout(spec(spans=(1,), direction="rtl"), FixedText(bubbles=4))
    assert [b.corner for b in ltr.panels[0].bubbles] == ["top-left", "top-right", "bottom-left", "bottom-right"]
    assert [b.corner for b in rtl.panels[0].bubbles] == ["top-right", "top-left", "bottom-right", "bottom-left"]
    with_narration = page_layout(spec(spans=(1,)), FixedText(bubbles=3, narration=True))
    panel = with_narration.panels[0]
    assert panel.narration_corner == "top-left" and panel.bubbles[0].corner == "top-right"
    assert_sane(with_narration)
