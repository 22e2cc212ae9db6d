"""The PDF page (fpdf2): the same boxes and the same lines as the PNG page, with the text kept as real text.

Fonts are embedded as subsets (see `fonts.py`): cut down to the page's characters first, because fpdf2 takes
seconds to subset a whole CJK font and minutes to instance a whole variable one, and well under a second for the
cut-down fonts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import ImageColor

from storyboard.compose.fonts import FontSubset
from storyboard.geometry import Box
from storyboard.compose.page import Page
from storyboard.compose.png import BUBBLE, INK, MUTED, NARRATION, OVERLAY, bubble_shape, fit_image
from storyboard.text import FontChain
from storyboard.compose.typeset import TextBlock

POINTS_PER_PIXEL = 72 / 300  # the page is laid out at 300 dpi: an A4 page is 2480 pixels, 595 points wide


def page_pdf(page: Page) -> bytes:
    """The PDF of one page."""
    return book_pdf([page], page.fonts)


def book_pdf(pages: Sequence[Page], fonts: Sequence[FontSubset], chapters: Sequence[tuple[str, int]] = ()) -> bytes:
    """One PDF page per comic page, each at its own size, with `fonts` (covering every page) embedded once and
    `chapters` ((title, page number)) as the document's outline."""
    from fpdf import FPDF

    k = POINTS_PER_PIXEL
    first = pages[0]
    pdf = FPDF(unit="pt", format=(first.layout.width * k, first.layout.height * k))
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    pdf.set_creator("storyboard")
    pdf.set_title(first.title)
    pdf.set_lang(first.language)
    starts = {number: title for title, number in chapters}
    with tempfile.TemporaryDirectory(prefix="storyboard-pdf-") as tmp:
        families = _register_fonts(pdf, fonts, Path(tmp))
        for n, page in enumerate(pages, start=1):
            pdf.add_page(format=(page.layout.width * k, page.layout.height * k))
            if (page.number or n) in starts:
                pdf.start_section(starts[page.number or n])
            _draw_page(pdf, page, families)
        return bytes(pdf.output())


def _draw_page(pdf: Any, page: Page, families: dict[Path, str]) -> None:
    k = POINTS_PER_PIXEL
    layout = page.layout
    pdf.set_fill_color(*ImageColor.getrgb(page.background))
    pdf.rect(0, 0, layout.width * k, layout.height * k, style="F")

    def text(block: TextBlock, box: Box, colour: tuple[int, int, int], align: str = "left") -> None:
        chain = FontChain(block.size, page.language)
        pdf.set_text_color(*colour)
        inner_w = box.w - 2 * block.pad_x
        top = box.y + block.pad_y + max(0, (box.h - block.height) // 2)
        for n, line in enumerate(block.lines):
            x = box.x + block.pad_x
            if align == "center":
                x += (inner_w - chain.getlength(line)) / 2
            baseline = top + n * block.line_height + chain.ascent
            for run, fnt in chain.runs(line):
                pdf.set_font(families[Path(fnt.path)], size=block.size * k)
                pdf.text(x * k, baseline * k, run)
                x += fnt.getlength(run)

    pdf.set_draw_color(*INK)
    if layout.title:
        text(page.text.used["title",], layout.title, INK, align="center")
    for n, (member, box) in enumerate(zip(page.cast, layout.cast)):
        image = box.image
        pdf.image(fit_image(member.image, image), image.x * k, image.y * k, image.w * k, image.h * k)
        pdf.set_line_width(max(1, round(2 * layout.unit)) * k)
        pdf.rect(image.x * k, image.y * k, image.w * k, image.h * k)
        if box.name:
            text(page.text.used["cast", n], box.name, INK, align="center")
    if layout.heading:
        text(page.text.used["heading",], layout.heading, INK, align="center")
    line = max(1, round(2.5 * layout.unit))
    for panel, box in zip(page.panels, layout.panels):
        image = box.image
        pdf.image(fit_image(panel.image, image), image.x * k, image.y * k, image.w * k, image.h * k)
        if layout.border:
            b = layout.border
            pdf.set_line_width(b * k)
            pdf.rect((image.x - b / 2) * k, (image.y - b / 2) * k, (image.w + b) * k, (image.h + b) * k)
        pdf.set_line_width(line * k)
        if box.caption:
            if layout.captions == "overlay":
                pdf.set_fill_color(*OVERLAY)
                _rect(pdf, box.caption, k)
            text(page.text.used["caption", box.index], box.caption, INK)
        if box.narration:
            pdf.set_fill_color(*NARRATION)
            _rect(pdf, box.narration, k)
            text(page.text.used["narration", box.index], box.narration, INK)
        for n, bubble in enumerate(box.bubbles):
            shape = bubble_shape(bubble, line)
            (x0, y0), (x1, y1) = shape.base
            pdf.set_fill_color(*BUBBLE)
            pdf.polygon([(x0 * k, shape.edge * k), (shape.tip[0] * k, shape.tip[1] * k), (x1 * k, shape.edge * k)],
                        style="DF")
            b = bubble.box
            pdf.rect(b.x * k, b.y * k, b.w * k, b.h * k, style="DF", round_corners=True,
                     corner_radius=shape.radius * k)
            pdf.polygon([((x0 + line) * k, y0 * k), (shape.tip[0] * k, (shape.tip[1] - shape.inward * line) * k),
                         ((x1 - line) * k, y1 * k)], style="F")
            pdf.line(x0 * k, shape.edge * k, shape.tip[0] * k, shape.tip[1] * k)
            pdf.line(x1 * k, shape.edge * k, shape.tip[0] * k, shape.tip[1] * k)
            text(page.text.used["bubble", box.index, n], bubble.box, INK, align="center")
    if layout.footer:
        text(page.text.used["footer",], layout.footer, MUTED, align="center")




def _rect(pdf: object, box: Box, k: float) -> None:
    pdf.rect(box.x * k, box.y * k, box.w * k, box.h * k, style="DF")  # type: ignore[attr-defined]


def _register_fonts(pdf: object, fonts: Sequence[FontSubset], tmp: Path) -> dict[Path, str]:
    """Add the font subsets to `pdf`; return the family name for each original font file."""
    families: dict[Path, str] = {}
    for subset in fonts:
        path = tmp / f"{subset.family}.otf"
        path.write_bytes(subset.data)
        pdf.add_font(subset.family, fname=str(path))  # type: ignore[attr-defined]
        families[subset.source] = subset.family
    return families
