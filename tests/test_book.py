"""A story on several pages: where panels go, what a build writes, and which pages a rebuild draws again."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from storyboard.building import build
from storyboard.compose.book import book_from_story, book_pages, paginate
from storyboard.render.draft import DraftRenderer
from storyboard.resolve import resolve
from storyboard.story import load_story


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def long_story(count: int = 24, extra: dict[int, str] | None = None, layout: str = "{columns: 4, rows: 2}") -> str:
    lines = ["title: A long story", "render: {width: 64, height: 64, seed: 5}", f"layout: {layout}", "panels:"]
    for i in range(1, count + 1):
        lines.append(f"  - prompt: scene {i}, a lighthouse at dusk\n    caption: Caption {i}")
        if extra and i in extra:
            lines.append(textwrap.indent(extra[i], "    "))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- where panels go


def test_panels_flow_into_pages_of_rows_times_columns():
    sheets = paginate([1] * 24, columns=4, rows=2)
    assert [s.panels for s in sheets] == [tuple(range(1, 9)), tuple(range(9, 17)), tuple(range(17, 25))]
    assert [s.number for s in sheets] == [1, 2, 3]


def test_without_rows_everything_is_one_page_as_before():
    assert [s.panels for s in paginate([1] * 30, columns=4)] == [tuple(range(1, 31))]


def test_a_span_that_does_not_fit_moves_to_the_next_row_and_page_never_off_it():
    # Row 1: 1 1 1 (3 columns used), panel 4 spans 2: next row; row 2: 4 4 5; panel 6 spans 3: past row 2.
    sheets = paginate([1, 1, 1, 2, 1, 3, 1], columns=4, rows=2)
    assert [s.panels for s in sheets] == [(1, 2, 3, 4, 5), (6, 7)]


def test_page_break_and_chapter_start_new_pages():
    sheets = paginate([1] * 10, columns=4, rows=2, breaks={3}, chapters={1: "One", 6: "Two"})
    assert [(s.panels, s.chapter) for s in sheets] == [
        ((1, 2), "One"), ((3, 4, 5), ""), ((6, 7, 8, 9, 10), "Two")]
    # A break on the first panel, or twice at one place, makes no empty page.
    assert [s.panels for s in paginate([1] * 3, columns=4, breaks={1, 2}, chapters={2: "x"})] == [(1,), (2, 3)]


def test_story_fields_page_break_and_chapter(write_story):
    story = load_story(write_story(long_story(6, {3: "page_break: true", 5: "chapter: The storm"},
                                              layout="{columns: 2}")))
    assert [(s.panels, s.chapter) for s in book_pages(story)] == [((1, 2), ""), ((3, 4), ""), ((5, 6), "The storm")]


def test_rtl_pages_read_right_to_left(write_story, small_renderer):
    story = load_story(write_story(long_story(10, layout="{columns: 3, rows: 2, direction: rtl}")))
    jobs = resolve(story)
    images = {j.index: Image.new("RGB", (j.width, j.height)) for j in jobs}
    book = book_from_story(story, jobs, images, renderer="small", version="test")
    assert [[p.index for p in page.panels] for page in book.pages] == [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10]]
    for page in book.pages:
        first_row = [box for box in page.layout.panels if box.row == 0]
        xs = [box.image.x for box in first_row]
        assert xs == sorted(xs, reverse=True), "panel 1 of each page sits at the top right"
    # Every page of a book keeps the full width, even the last, short one: panels keep one size.
    first, last = book.pages[0].layout.panels[0].image, book.pages[1].layout.panels[0].image
    assert (first.x, first.w, first.h) == (last.x, last.w, last.h)
    assert book.pages[0].layout.height == book.pages[1].layout.height


def test_draft_bubbles_leave_the_card_header_free(write_story):
    story = load_story(write_story("""
        title: x
        layout: {columns: 1}
        panels:
          - prompt: a fox
            narration: The morning after.
            dialogue: [{speaker: a, text: "Hello there, friend of mine"}, {speaker: b, text: Hi}]
    """))
    jobs = resolve(story)
    images = {j.index: Image.new("RGB", (j.width, j.height)) for j in jobs}
    share = DraftRenderer.page_header
    for header, free in ((share, True), (0.0, False)):
        page = book_from_story(story, jobs, images, renderer="draft", version="t", header=header).pages[0]
        box = page.layout.panels[0]
        tops = [b.box.y for b in box.bubbles if b.corner.startswith("top")] + [box.narration.y]
        strip = box.image.y + share * box.image.h
        assert all(top >= strip for top in tops) == free, (header, tops, strip)


# --------------------------------------------------------------------------- what a build writes


@pytest.fixture
def book_story(write_story):
    return write_story(long_story(24, {1: "chapter: Departure", 17: "chapter: Arrival"}))


def test_a_24_panel_story_builds_three_pages_a_pdf_and_one_html(book_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    result = build(book_story, out, renderer=small_renderer)
    assert [p.name for p in sorted((out / "pages").iterdir())] == ["page-01.png", "page-02.png", "page-03.png"]
    assert not (out / "page.png").exists() and not (out / "page.pdf").exists()
    sizes = {Image.open(p).size for p in result.page_pngs}
    assert len(sizes) == 1, "every page is as wide and tall as the others"

    pdf = pdfium.PdfDocument(str(out / "book.pdf"))
    assert len(pdf) == 3
    assert [(item.get_title(), item.get_dest().get_index()) for item in pdf.get_toc()] == [
        ("Departure", 0), ("Arrival", 2)]
    third = pdf[2].get_textpage().get_text_range()
    assert "Arrival" in third and "Caption 17" in third and "Caption 24" in third and "Caption 16" not in third

    html = (out / "index.html").read_text()
    sections = re.findall(r'<section class="sheet" id="page-(\d+)"', html)
    assert sections == ["1", "2", "3"]
    assert [int(n) for n in re.findall(r'data-index="(\d+)"', html)] == list(range(1, 25))
    assert html.index('id="page-2"') < html.index('data-index="9"') < html.index('id="page-3"')
    assert 'href="#page-2" rel="next"' in html and "Page 3 of 3" in html and "book.pdf" in html

    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["page"] for p in manifest["panels"]] == [1] * 8 + [2] * 8 + [3] * 8
    assert [(p["png"], p["panels"][0], p.get("chapter")) for p in manifest["page"]["pages"]] == [
        ("pages/page-01.png", 1, "Departure"), ("pages/page-02.png", 9, None), ("pages/page-03.png", 17, "Arrival")]


def test_editing_a_caption_on_page_3_redraws_only_page_3(book_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    build(book_story, out, renderer=small_renderer)
    before = snapshot(out)
    book_story.write_text(book_story.read_text().replace("Caption 20\n", "Caption twenty\n"))
    small_renderer.drawn.clear()
    result = build(book_story, out, renderer=small_renderer)
    assert result.rendered == 0 and small_renderer.drawn == []
    after = snapshot(out)
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert [name for name in changed if name.startswith("pages/")] == ["pages/page-03.png"]
    assert {"book.pdf", "index.html", "manifest.json"} <= set(changed)
    assert "Caption twenty" in pdfium.PdfDocument(str(out / "book.pdf"))[2].get_textpage().get_text_range()

    # Nothing changed: nothing is composed, no page rewritten.
    build(book_story, out, renderer=small_renderer)
    assert snapshot(out) == {**after, "manifest.json": snapshot(out)["manifest.json"]}


def test_a_missing_page_file_is_drawn_again(book_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    build(book_story, out, renderer=small_renderer)
    page1 = (out / "pages" / "page-01.png").stat().st_mtime_ns
    (out / "pages" / "page-02.png").unlink()
    build(book_story, out, renderer=small_renderer)
    assert (out / "pages" / "page-02.png").is_file()
    assert (out / "pages" / "page-01.png").stat().st_mtime_ns == page1


def test_from_book_to_one_page_and_back(book_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    build(book_story, out, renderer=small_renderer)
    one_page = book_story.read_text().replace("rows: 2", "rows: 8").replace("    chapter: Arrival\n", "")
    book_story.write_text(one_page)
    result = build(book_story, out, renderer=small_renderer)
    assert result.pages == [] and (out / "page.png").is_file() and (out / "page.pdf").is_file()
    assert not (out / "pages").exists() and not (out / "book.pdf").exists()
    book_story.write_text(one_page.replace("rows: 8", "rows: 1"))
    build(book_story, out, renderer=small_renderer)
    assert len(list((out / "pages").iterdir())) == 6
    assert not (out / "page.png").exists() and not (out / "page.pdf").exists()
    book_story.write_text(one_page.replace("rows: 8", "rows: 3"))
    build(book_story, out, renderer=small_renderer)
    assert sorted(p.name for p in (out / "pages").iterdir()) == ["page-01.png", "page-02.png"]


ONE_PAGE = """
title: One page
render: {width: 64, height: 64, seed: 7}
layout: {columns: 2}
panels:
  - prompt: close-up of a red apple
    caption: An apple
    dialogue: [{speaker: fox, text: Hello}]
  - prompt: wide shot of a green field
    span: 2
  - prompt: a barn at dusk
    narration: Later.
"""


def test_a_one_page_story_keeps_its_files_and_its_page_key(write_story, small_renderer, tmp_path):
    """The key was computed by the build before stories had pages: an existing page is not composed again."""
    out = tmp_path / "out"
    result = build(write_story(ONE_PAGE), out, renderer=small_renderer)
    assert result.page_key == "d1478ef9dd1b19a4c4bfd7fceff2256feb42cac68fd167ba87b929058a047235"
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == [
        "cache", "fonts", "index.html", "manifest.json", "page.pdf", "page.png", "panels"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["page"] == {"png": "page.png", "pdf": "page.pdf", "html": "index.html", "columns": 2,
                                "direction": "ltr", "page": "auto", "key": result.page_key}
    assert [p["page"] for p in manifest["panels"]] == [1, 1, 1]
    html = (out / "index.html").read_text()
    assert "sheet" not in html and "book.pdf" not in html


def test_cli_names_the_pages_it_wrote(book_story, small_renderer, tmp_path, capsys):
    from storyboard.cli import main

    assert main(["build", str(book_story), "--out", str(tmp_path / "o"), "--renderer", "small"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        f"wrote {tmp_path}/o/index.html, pages/page-01.png … page-03.png (3 pages), book.pdf, manifest.json")


def test_self_contained_book_is_one_file(book_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    build(book_story, out, renderer=small_renderer, self_contained=True)
    html = (out / "index.html").read_text()
    assert len(re.findall(r'<section class="sheet"', html)) == 3
    assert 'src="panels/' not in html and "fonts/" not in html and 'href="book.pdf"' not in html
    assert html.count('src="data:image/png;base64,') == 24
