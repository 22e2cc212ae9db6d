"""Write the page's outputs next to each other, each atomically: page.png, page.pdf and index.html."""

from __future__ import annotations

from pathlib import Path

from storyboard.compose.html import page_html
from storyboard.compose.page import Page
from storyboard.compose.pdf import page_pdf
from storyboard.compose.png import page_png
from storyboard.files import atomic_save_png, atomic_write_bytes, atomic_write_text


def write_page(out: str | Path, page: Page, *, self_contained: bool = False) -> list[Path]:
    """Write page.png, page.pdf and index.html into `out`; return their paths.

    All three are rendered before any is written, so a failure leaves the previous outputs in place.
    """
    out = Path(out)
    png = page_png(page)
    pdf = page_pdf(page)
    html = page_html(page, self_contained=self_contained)
    atomic_save_png(out / "page.png", png)
    atomic_write_bytes(out / "page.pdf", pdf)
    atomic_write_text(out / "index.html", html)
    return [out / "page.png", out / "page.pdf", out / "index.html"]
