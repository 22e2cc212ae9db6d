"""Write a story's pages next to each other, each atomically: page.png, page.pdf and index.html for a story on one
page; pages/page-01.png…, book.pdf and index.html for a book. Names come from the `OutputFolder`."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

from storyboard.compose.book import Book
from storyboard.compose.fonts import FontSubset
from storyboard.compose.html import book_html, page_html
from storyboard.compose.page import Page
from storyboard.compose.pdf import BookPdf, book_pdf, page_pdf
from storyboard.compose.png import page_png
from storyboard.files import atomic_save_png, atomic_write_bytes, atomic_write_text, encode_png
from storyboard.geometry import slice_cuts
from storyboard.output import PAGES_DIR, OutputFolder

SLICE_HEIGHT = 1280  # the tallest slice webtoon platforms take (800 × 1280)


def write_page(out: OutputFolder, page: Page, *, self_contained: bool = False) -> list[Path]:
    """Write page.png, page.pdf and index.html (and the font subsets it links to) into `out`; return their paths.

    All three are rendered before any is written, so a failure leaves the previous outputs in place.
    """
    png = page_png(page)
    pdf = _made_in_scratch(out, lambda scratch: page_pdf(page, scratch))
    html = page_html(page, self_contained=self_contained)
    written = _write_fonts(out, page.fonts, self_contained)
    atomic_save_png(out.page_png, png)
    atomic_write_bytes(out.page_pdf, pdf)
    atomic_write_text(out.index_html, html)
    _remove_stale_fonts(out, page.fonts, self_contained)
    _remove_book(out)
    return [*written, out.page_png, out.page_pdf, out.index_html]

def write_book(out: OutputFolder, book: Book, *, self_contained: bool = False,
               pngs: Collection[int] | None = None) -> list[Path]:
    """Write a book into `out`: `pngs` (page numbers; default all) as pages/page-NN.png, and book.pdf and
    index.html holding every page. A book of one page is written by `write_page`.

    Every file is made before any is written, so a failure leaves every file as it was.
    """
    if book.webtoon:
        return write_webtoon(out, book, self_contained=self_contained)
    if book.single:
        return write_page(out, book.pages[0], self_contained=self_contained)
    encoded, pdf = _book_files(out, book, pngs)
    html = book_html(book.pages, book.fonts, self_contained=self_contained, footer=book.footer)
    written = _write_fonts(out, book.fonts, self_contained)
    for number, png in encoded.items():
        atomic_write_bytes(out.book_page(number), png)
        written.append(out.book_page(number))
    atomic_write_bytes(out.book_pdf, pdf)
    atomic_write_text(out.index_html, html)
    _remove_stale_fonts(out, book.fonts, self_contained)
    for single in (out.page_png, out.page_pdf):  # left by an earlier build of the story on one page
        single.unlink(missing_ok=True)
    for path in out.book_pages_after(len(book.pages)):  # left by an earlier build of a longer book
        path.unlink(missing_ok=True)
    for path in out.webtoon_slices_after(0):  # left by an earlier build as a webtoon
        path.unlink(missing_ok=True)
    return [*written, out.book_pdf, out.index_html]


def write_webtoon(out: OutputFolder, book: Book, *, self_contained: bool = False) -> list[Path]:
    """Write a webtoon into `out`: its strip as slices webtoon/001.png … (`SLICE_HEIGHT` high at most, cut between
    panels where it can, never through text), the PDF (page.pdf, or book.pdf for a strip of several chapters) and
    index.html. Every file is made before any is written."""
    slices: list[bytes] = []
    for page in book.pages:
        image = page_png(page)
        cuts = slice_cuts(page.layout, SLICE_HEIGHT)
        slices.extend(encode_png(image.crop((0, top, image.width, bottom))) for top, bottom in zip(cuts, cuts[1:]))
    single = len(book.pages) == 1
    pdf_file = out.page_pdf if single else out.book_pdf
    if single:
        pdf = _made_in_scratch(out, lambda scratch: page_pdf(book.pages[0], scratch))
    else:
        pdf = _made_in_scratch(out, lambda scratch: book_pdf(book.pages, book.fonts, book.chapters, scratch))
    html = book_html(book.pages, book.fonts, self_contained=self_contained, footer=book.footer)
    written = _write_fonts(out, book.fonts, self_contained)
    for number, data in enumerate(slices, start=1):
        atomic_write_bytes(out.webtoon_slice(number), data)
        written.append(out.webtoon_slice(number))
    atomic_write_bytes(pdf_file, pdf)
    atomic_write_text(out.index_html, html)
    _remove_stale_fonts(out, book.fonts, self_contained)
    for path in out.webtoon_slices_after(len(slices)):  # left by an earlier build of a longer strip
        path.unlink(missing_ok=True)
    for other in (out.page_png, out.book_pdf if single else out.page_pdf):  # left by other layouts
        other.unlink(missing_ok=True)
    for path in out.book_pages_after(0):
        path.unlink(missing_ok=True)
    return [*written, pdf_file, out.index_html]


def _book_files(out: OutputFolder, book: Book, pngs: Collection[int] | None) -> tuple[dict[int, bytes], bytes]:
    """The PNG of each page in `pngs` (by page number) and the book's PDF, made page by page side by side: a page's
    PNG is encoded on a second thread (zlib leaves the interpreter free) while the PDF's page is made and the next
    PNG painted. At most two painted pages wait, so a long book never holds all its pictures at once."""
    encoded: dict[int, bytes] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="storyboard-png") as encoder:
        pending: deque[tuple[int, Future[bytes]]] = deque()
        try:
            with BookPdf(book.pages[0], book.fonts, book.chapters, out.scratch_dir) as document:
                for page in book.pages:
                    if pngs is None or page.number in pngs:
                        pending.append((page.number, encoder.submit(encode_png, page_png(page))))
                    document.add(page)
                    while len(pending) > 2:
                        number, future = pending.popleft()
                        encoded[number] = future.result()
                pdf = document.output()
        finally:
            with suppress(OSError):
                out.scratch_dir.rmdir()
        for number, future in pending:
            encoded[number] = future.result()
    return encoded, pdf


def _made_in_scratch(out: OutputFolder, make: Callable[[Path], bytes]) -> bytes:
    """`make(scratch)`, with the output folder's scratch folder removed afterwards (a killed build's next build
    removes what it left)."""
    try:
        return make(out.scratch_dir)
    finally:
        with suppress(OSError):
            out.scratch_dir.rmdir()


def _write_fonts(out: OutputFolder, fonts: list[FontSubset], self_contained: bool) -> list[Path]:
    written = []
    if not self_contained:
        for subset in fonts:
            atomic_write_bytes(out.fonts_dir / subset.file_name, subset.woff)
            written.append(out.fonts_dir / subset.file_name)
    return written

def _remove_stale_fonts(out: OutputFolder, fonts: list[FontSubset], self_contained: bool) -> None:
    keep = {subset.file_name for subset in fonts} if not self_contained else set()
    for old in out.fonts_dir.glob("storyboard-*.woff"):
        if old.name not in keep:  # left by an earlier build of other text, or not needed by a self-contained page
            old.unlink(missing_ok=True)

def _remove_book(out: OutputFolder) -> None:
    """Remove what an earlier build of the story as a book of several pages left."""
    for path in [*out.book_pages_after(0), *out.webtoon_slices_after(0)]:
        path.unlink(missing_ok=True)
    out.book_pdf.unlink(missing_ok=True)
    try:
        (out / PAGES_DIR).rmdir()
    except OSError:
        pass
