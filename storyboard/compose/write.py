"""Write the page's outputs next to each other, each atomically: page.png, page.pdf and index.html."""

from __future__ import annotations

from pathlib import Path

from storyboard.compose.html import FONTS_DIR, page_html
from storyboard.compose.page import Page
from storyboard.compose.pdf import page_pdf
from storyboard.compose.png import page_png
from storyboard.files import atomic_save_png, atomic_write_bytes, atomic_write_text


def write_page(out: str | Path, page: Page, *, self_contained: bool = False) -> list[Path]:
    """Write page.png, page.pdf and index.html (and the font subsets it links to) into `out`; return their paths.

    All three are rendered before any is written, so a failure leaves the previous outputs in place.
    """
    out = Path(out)
    png = page_png(page)
    pdf = page_pdf(page)
    html = page_html(page, self_contained=self_contained)
    written = []
    if not self_contained:
        fonts = out / FONTS_DIR
        for subset in page.fonts:
            atomic_write_bytes(fonts / subset.file_name, subset.woff)
            written.append(fonts / subset.file_name)
    atomic_save_png(out / "page.png", png)
    atomic_write_bytes(out / "page.pdf", pdf)
    atomic_write_text(out / "index.html", html)
    keep = {subset.file_name for subset in page.fonts} if not self_contained else set()
    for old in (out / FONTS_DIR).glob("storyboard-*.woff"):
        if old.name not in keep:  # left by an earlier build of other text, or not needed by a self-contained page
            old.unlink(missing_ok=True)
    return [*written, out / "page.png", out / "page.pdf", out / "index.html"]
