"""Write the outputs next to each other, each atomically: page.png, page.pdf and index.html for a story on one
page; pages/page-01.png…, book.pdf and index.html for a book."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from storyboard.compose.book import Book
from storyboard.compose.fonts import FontSubset
from storyboard.compose.html import FONTS_DIR, book_html, page_html
from storyboard.compose.page import Page
from storyboard.compose.pdf import book_pdf, page_pdf
from storyboard.compose.png import page_png
from storyboard.files import atomic_save_png, atomic_write_bytes, atomic_write_text

PAGES_DIR = "pages"
SINGLE_FILES = ("page.png", "page.pdf")
BOOK_PDF = "book.pdf"
_PAGE_FILE = re.compile(r"^page-(\d+)\.png$")


def page_file(number: int) -> str:
    """The PNG of page `number` of a book, relative to the output folder."""
    return f"{PAGES_DIR}/page-{number:02d}.png"


def write_page(out: str | Path, page: Page, *, self_contained: bool = False) -> list[Path]:
    """Write page.png, page.pdf and index.html (and the font subsets it links to) into `out`; return their paths.

    All three are rendered before any is written, so a failure leaves the previous outputs in place.
    """
    out = Path(out)
    png = page_png(page)
    pdf = page_pdf(page)
    html = page_html(page, self_contained=self_contained)
    written = _write_fonts(out, page.fonts, self_contained)
    atomic_save_png(out / "page.png", png)
    atomic_write_bytes(out / "page.pdf", pdf)
    atomic_write_text(out / "index.html", html)
    _remove_stale_fonts(out, page.fonts, self_contained)
    _remove_book(out)
    return [*written, out / "page.png", out / "page.pdf", out / "index.html"]


def write_book(out: str | Path, book: Book, *, self_contained: bool = False,
               pngs: Collection[int] | None = None) -> list[Path]:
    """Write a book into `out`: `pngs` (page numbers; default all) as pages/page-NN.png, and book.pdf and
    index.html holding every page. A book of one page is written by `write_page`.

    The PDF and HTML are made before anything is written; page PNGs are each written as soon as drawn, so a
    failure leaves every file either as it was or complete.
    """
    out = Path(out)
    if book.single:
        return write_page(out, book.pages[0], self_contained=self_contained)
    pdf = book_pdf(book.pages, book.fonts, book.chapters)
    html = book_html(book.pages, book.fonts, self_contained=self_contained, footer=book.footer)
    written = _write_fonts(out, book.fonts, self_contained)
    for page in book.pages:
        if pngs is None or page.number in pngs:
            atomic_save_png(out / page_file(page.number), page_png(page))
            written.append(out / page_file(page.number))
    atomic_write_bytes(out / BOOK_PDF, pdf)
    atomic_write_text(out / "index.html", html)
    _remove_stale_fonts(out, book.fonts, self_contained)
    for name in SINGLE_FILES:  # left by an earlier build of the story on one page
        (out / name).unlink(missing_ok=True)
    _remove_pages_after(out, len(book.pages))
    return [*written, out / BOOK_PDF, out / "index.html"]


def _write_fonts(out: Path, fonts: list[FontSubset], self_contained: bool) -> list[Path]:
    written = []
    if not self_contained:
        for subset in fonts:
            atomic_write_bytes(out / FONTS_DIR / subset.file_name, subset.woff)
            written.append(out / FONTS_DIR / subset.file_name)
    return written


def _remove_stale_fonts(out: Path, fonts: list[FontSubset], self_contained: bool) -> None:
    keep = {subset.file_name for subset in fonts} if not self_contained else set()
    for old in (out / FONTS_DIR).glob("storyboard-*.woff"):
        if old.name not in keep:  # left by an earlier build of other text, or not needed by a self-contained page
            old.unlink(missing_ok=True)


def _remove_pages_after(out: Path, count: int) -> None:
    """Remove page files left by an earlier build of a longer book."""
    for path in (out / PAGES_DIR).glob("page-*.png"):
        match = _PAGE_FILE.match(path.name)
        if match and int(match.group(1)) > count:
            path.unlink(missing_ok=True)


def _remove_book(out: Path) -> None:
    """Remove what an earlier build of the story as a book of several pages left."""
    _remove_pages_after(out, 0)
    (out / BOOK_PDF).unlink(missing_ok=True)
    try:
        (out / PAGES_DIR).rmdir()
    except OSError:
        pass
