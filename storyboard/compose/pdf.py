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

from PIL import Image, ImageColor

from storyboard.compose.fonts import FontSubset
from storyboard.compose.page import Page
from storyboard.compose.paint import BUBBLE, INK, Colour, bubble_shape, fit_image, paint_page
from storyboard.compose.typeset import TextBlock
from storyboard.geometry import Box, Bubble
from storyboard.text import FontChain

POINTS_PER_PIXEL = 72 / 300  # the page is laid out at 300 dpi: an A4 page is 2480 pixels, 595 points wide


def page_pdf(page: Page, scratch: Path | None = None) -> bytes:
    """The PDF of one page; see `book_pdf` for `scratch`."""
    return book_pdf([page], page.fonts, scratch=scratch)


def book_pdf(pages: Sequence[Page], fonts: Sequence[FontSubset], chapters: Sequence[tuple[str, int]] = (),
             scratch: Path | None = None) -> bytes:
    """One PDF page per comic page, each at its own size, with `fonts` (covering every page) embedded once and
    `chapters` ((title, page number)) as the document's outline. See `BookPdf` for `scratch`."""
    with BookPdf(pages[0], fonts, chapters, scratch) as document:
        for page in pages:
            document.add(page)
        return document.output()


class BookPdf:
    """A PDF made a page at a time (`add`), so that a caller can interleave it with other work on the same pages;
    `output` gives its bytes. Used as a context manager.

    fpdf2 reads fonts from files: the subsets are written for it under `scratch` (default: the system's temporary
    folder) and removed on exit; a build passes a folder of its own, so that a process killed meanwhile leaves
    them where its next build removes them.
    """

    def __init__(self, first: Page, fonts: Sequence[FontSubset], chapters: Sequence[tuple[str, int]] = (),
                 scratch: Path | None = None) -> None:
        from fpdf import FPDF

        k = POINTS_PER_PIXEL
        self.pdf = pdf = FPDF(unit="pt", format=(first.layout.width * k, first.layout.height * k))
        pdf.set_auto_page_break(False)
        pdf.set_margin(0)
        pdf.set_creator("storyboard")
        pdf.set_title(first.title)
        pdf.set_lang(first.language)
        self.fonts, self.scratch, self.count = fonts, scratch, 0
        self.starts = {number: title for title, number in chapters}

    def __enter__(self) -> BookPdf:
        if self.scratch is not None:
            self.scratch.mkdir(parents=True, exist_ok=True)
        self.tmp = tempfile.TemporaryDirectory(prefix="storyboard-pdf-", dir=self.scratch)
        self.families = _register_fonts(self.pdf, self.fonts, Path(self.tmp.name))
        return self

    def __exit__(self, *exc: object) -> None:
        self.tmp.cleanup()

    def add(self, page: Page) -> None:
        k, pdf = POINTS_PER_PIXEL, self.pdf
        self.count += 1
        pdf.add_page(format=(page.layout.width * k, page.layout.height * k))
        if (page.number or self.count) in self.starts:
            pdf.start_section(self.starts[page.number or self.count])
        paint_page(page, PdfPainter(pdf, page, self.families))

    def output(self) -> bytes:
        return bytes(self.pdf.output())


class PdfPainter:
    """Paints onto the current page of an fpdf2 document, in points (`POINTS_PER_PIXEL` to the page pixel).

    Made once per page: it fills the page with its background first, as the PNG's canvas starts filled with it.
    """

    def __init__(self, pdf: Any, page: Page, families: dict[Path, str]) -> None:
        self.pdf, self.language, self.families = pdf, page.language, families
        k = POINTS_PER_PIXEL
        pdf.set_fill_color(*ImageColor.getrgb(page.background))
        pdf.rect(0, 0, page.layout.width * k, page.layout.height * k, style="F")
        pdf.set_draw_color(*INK)

    def portrait(self, image: Image.Image, box: Box, line: int) -> None:
        k = POINTS_PER_PIXEL
        self.pdf.image(fit_image(image, box), box.x * k, box.y * k, box.w * k, box.h * k)
        self.pdf.set_line_width(line * k)
        self.pdf.rect(box.x * k, box.y * k, box.w * k, box.h * k)

    def picture(self, image: Image.Image, box: Box, border: int, line: int) -> None:
        pdf, k = self.pdf, POINTS_PER_PIXEL
        pdf.image(fit_image(image, box), box.x * k, box.y * k, box.w * k, box.h * k)
        if border:
            b = border
            pdf.set_line_width(b * k)
            pdf.rect((box.x - b / 2) * k, (box.y - b / 2) * k, (box.w + b) * k, (box.h + b) * k)
        pdf.set_line_width(line * k)

    def box(self, box: Box, fill: Colour, line: int) -> None:
        k = POINTS_PER_PIXEL
        self.pdf.set_fill_color(*fill)
        self.pdf.rect(box.x * k, box.y * k, box.w * k, box.h * k, style="DF")

    def bubble(self, bubble: Bubble, line: int) -> None:
        """The PNG's bubble: the tail, the rounded box over it, and the tail's opening cut back into the box."""
        pdf, k, shape, b = self.pdf, POINTS_PER_PIXEL, bubble_shape(bubble, line), bubble.box
        (x0, y0), (x1, y1) = shape.base
        tip_x, tip_y = shape.tip
        pdf.set_fill_color(*BUBBLE)
        pdf.polygon([(x0 * k, shape.edge * k), (tip_x * k, tip_y * k), (x1 * k, shape.edge * k)], style="DF")
        pdf.rect(b.x * k, b.y * k, b.w * k, b.h * k, style="DF", round_corners=True, corner_radius=shape.radius * k)
        pdf.polygon([((x0 + line) * k, y0 * k), (tip_x * k, (tip_y - shape.inward * line) * k),
                     ((x1 - line) * k, y1 * k)], style="F")
        pdf.line(x0 * k, shape.edge * k, tip_x * k, tip_y * k)
        pdf.line(x1 * k, shape.edge * k, tip_x * k, tip_y * k)

    def text(self, block: TextBlock, box: Box, colour: Colour, align: str = "left") -> None:
        """The PNG's lines as real text: each run of one font placed at its pixel position on the baseline."""
        pdf, k = self.pdf, POINTS_PER_PIXEL
        chain = FontChain(block.size, self.language)
        pdf.set_text_color(*colour)
        inner_w = box.w - 2 * block.pad_x
        top = box.y + block.pad_y + max(0, (box.h - block.height) // 2)
        for n, line in enumerate(block.lines):
            x = box.x + block.pad_x
            if align == "center":
                x += (inner_w - chain.getlength(line)) / 2
            baseline = top + n * block.line_height + chain.ascent
            for run, fnt in chain.runs(line):
                pdf.set_font(self.families[Path(fnt.path)], size=block.size * k)
                pdf.text(x * k, baseline * k, run)
                x += fnt.getlength(run)


def _register_fonts(pdf: object, fonts: Sequence[FontSubset], tmp: Path) -> dict[Path, str]:
    """Add the font subsets to `pdf`; return the family name for each original font file."""
    families: dict[Path, str] = {}
    for subset in fonts:
        path = tmp / f"{subset.family}.otf"
        path.write_bytes(subset.data)
        pdf.add_font(subset.family, fname=str(path))  # type: ignore[attr-defined]
        families[subset.source] = subset.family
    return families
