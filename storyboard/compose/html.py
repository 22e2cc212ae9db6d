"""The HTML page, rendered from `templates/page.html.j2` with autoescaping (captions are text, never markup)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from storyboard.compose.fonts import FontSubset
from storyboard.compose.page import CastMember, Page, PagePanel
from storyboard.files import encode_png
from storyboard.geometry import Box, PanelBox
from storyboard.output import FONTS_DIR
from storyboard.templates import environment
from storyboard.text import is_hangul


def page_html(page: Page, self_contained: bool = False) -> str:
    """The HTML page. Light by default (panels are linked files); `self_contained` inlines them as data URIs."""
    return book_html([page], page.fonts, self_contained=self_contained)


def book_html(pages: Sequence[Page], fonts: Sequence[FontSubset], self_contained: bool = False,
              footer: str | None = None) -> str:
    """The HTML of every page, in order; more than one page gets page numbers and links to turn the pages.
    `fonts` cover the text of every page; `footer` is shown once at the end (default: the first page's)."""
    first = pages[0]
    layout = first.layout
    faces = [dict(family=f.family, src=("data:font/woff;base64," + base64.b64encode(f.woff).decode("ascii"))
                  if self_contained else f"{FONTS_DIR}/{f.file_name}") for f in fonts]
    shown = [dict(number=page.number, heading=page.heading, columns=page.layout.columns,
                  cast=[_cast_member(member, self_contained) for member in page.cast],
                  panels=[_panel(page, panel, box, self_contained)
                          for panel, box in zip(page.panels, page.layout.panels)])
             for page in pages]
    return environment().get_template("page.html.j2").render(
        fonts=faces,
        title=first.title, language=first.language, columns=layout.columns, direction=layout.direction,
        captions=layout.captions, background=first.background, border=layout.border,
        footer=first.footer if footer is None else footer,
        version=first.version, renderer=first.renderer, model=first.model, pages=shown, book=len(pages) > 1,
        cast=any(page.cast for page in pages), chapters=any(page.heading for page in pages),
        self_contained=self_contained, animatic=first.animatic, editions=first.editions,
    )


def _cast_member(member: CastMember, self_contained: bool) -> dict[str, Any]:
    image = member.image.convert("RGB")
    if self_contained:
        return dict(name=member.name, src="data:image/png;base64," + base64.b64encode(encode_png(image)).decode(
            "ascii"), href=None, width=image.width, height=image.height)
    return dict(name=member.name, src=member.file, href=member.file, width=image.width, height=image.height)


def _pct(value: float, whole: float) -> str:
    return f"{100 * value / whole:.3f}".rstrip("0").rstrip(".")


def _panel(page: Page, panel: PagePanel, box: PanelBox, self_contained: bool) -> dict[str, Any]:
    image, used = box.image, page.text.used
    if self_contained:
        src = "data:image/png;base64," + base64.b64encode(encode_png(panel.image.convert("RGB"))).decode("ascii")
    else:
        src = panel.file

    def place(inner: Box, block: Any, corner: str, max_width: int | None = None) -> str:
        """Position and type size as percentages of the panel, so they scale with it at any screen width.

        Boxes are anchored at their corner of the panel. With `max_width`, a box is as wide as its text, up to
        that and a little slack for the border and the browser's own rounding; text set taller than in page.png
        grows towards the middle of the panel.
        """
        vertical = (f"top: {_pct(inner.y - image.y, image.h)}%" if corner.startswith("top")
                    else f"bottom: {_pct(image.bottom - inner.bottom, image.h)}%")
        horizontal = (f"left: {_pct(inner.x - image.x, image.w)}%" if corner.endswith("left")
                      else f"right: {_pct(image.right - inner.right, image.w)}%")
        width = (f"width: max-content; max-width: calc({_pct(max_width, image.w)}% + 2cqw)" if max_width
                 else f"width: {_pct(inner.w, image.w)}%")
        return (f"{horizontal}; {vertical}; {width}; --font: {_pct(block.size, image.w)}; "
                f"--pad-x: {_pct(block.pad_x, image.w)}; --pad-y: {_pct(block.pad_y, image.w)}")

    bubbles = []
    for n, bubble in enumerate(box.bubbles):
        speaker, text = panel.dialogue[n]
        tail_x = min(max(bubble.tail[0] - bubble.box.x, bubble.box.w * 0.15), bubble.box.w * 0.85)
        style = place(bubble.box, used["bubble", box.index, n], bubble.corner, bubble.box.w) + (
            f"; --tail-x: {_pct(tail_x, bubble.box.w)}%")
        # Korean is wrapped between words (keep-all), which the page's language alone may not tell the browser.
        korean = not page.language.lower().startswith("ko") and any(is_hangul(c) for c in text)
        bubbles.append(dict(speaker=speaker, text=text, corner=bubble.corner, style=style, korean=korean))
    narration = None
    if box.narration and box.narration_corner:
        narration = dict(text=panel.narration, corner=box.narration_corner,
                         style=place(box.narration, used["narration", box.index], box.narration_corner,
                                     box.narration.w))
    caption_style = None
    if box.caption and page.layout.captions == "overlay":
        caption_style = place(box.caption, used["caption", box.index], "bottom-left")
    return dict(index=panel.index, src=src, caption=panel.caption, alt=panel.caption or panel.prompt,
                prompt=panel.prompt, seed=panel.seed, row=box.row + 1, column=box.column + 1, span=box.span,
                width=image.w, height=image.h, bubbles=bubbles, narration=narration, caption_style=caption_style,
                flagged=panel.flagged)
