"""`layout.page: webtoon`: one column of full-width panels, written as slices of at most 800 × 1280 pixels, cut
between panels where possible and never through a bubble."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageChops

import storyboard
from storyboard.building.publish import page_marks
from storyboard.compose.book import book_from_story
from storyboard.compose.png import page_png
from storyboard.export import Built, choose_formats, export_built
from storyboard.geometry import slice_cuts
from storyboard.render.draft import DraftRenderer
from storyboard.resolve import resolve
from storyboard.story import load_story

ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"


def webtoon_text(panels: int = 24, size: str = "{width: 512, height: 512}", chapter: int = 13) -> str:
    lines = ["title: The long road", "layout: {page: webtoon, direction: rtl}", f"render: {size}", "panels:"]
    for i in range(1, panels + 1):
        extra = ", chapter: 'Part two'" if i == chapter else ""
        lines.append(f"  - {{prompt: 'mile {i}', caption: 'Mile {i}.', dialogue: [{{speaker: walker, text: 'Still "
                     f"walking, mile {i}, and the road goes on.'}}, {{speaker: fox, text: 'So it does.'}}]{extra}}}")
    return "\n".join(lines) + "\n"


def composed(path: Path):
    """The story's pages as the build composes them, with their images."""
    story = load_story(path)
    jobs = resolve(story)
    images = {job.index: Image.open(Path(path).parent / "out" / "panels" / f"panel-{job.index:02d}.png")
              for job in jobs}
    return book_from_story(story, jobs, images, renderer="draft", version=storyboard.__version__,
                           **page_marks(DraftRenderer()))


def text_boxes(layout):
    return [box for p in layout.panels for box in (p.caption, p.narration, *(b.box for b in p.bubbles)) if box] \
        + [box for box in (layout.title, layout.heading, layout.footer) if box]


def test_a_24_panel_webtoon_is_cut_into_phone_slices_between_panels(write_story, tmp_path):
    path = write_story(webtoon_text())
    result = storyboard.build(path, tmp_path / "out", renderer="draft")
    slices = result.page_pngs
    assert [p.name for p in slices] == [f"{n:03d}.png" for n in range(1, len(slices) + 1)]
    sizes = [Image.open(p).size for p in slices]
    assert all(w == 800 and h <= 1280 for w, h in sizes), sizes
    assert result.pdf.name == "book.pdf" and len(result.pages) == 2  # a chapter is a break in the strip
    assert not (tmp_path / "out" / "page.png").exists() and not (tmp_path / "out" / "pages").exists()

    book = composed(path)
    assert [page.layout.columns for page in book.pages] == [1, 1]
    first = 0
    for page in book.pages:
        cuts = slice_cuts(page.layout, 1280)
        for cut in cuts[1:-1]:  # no cut through any text: bubbles, captions, title, footer
            assert not any(box.y < cut < box.bottom for box in text_boxes(page.layout)), cut
        image = page_png(page)
        for n, (top, bottom) in enumerate(zip(cuts, cuts[1:])):
            written = Image.open(slices[first + n]).convert("RGB")
            assert ImageChops.difference(written, image.crop((0, top, 800, bottom))).getbbox() is None
        first += len(cuts) - 1
        for panel in page.layout.panels:  # panels run edge to edge, read top to bottom (rtl or not)
            assert (panel.image.x, panel.image.w) == (0, 800)
        assert [p.image.y for p in page.layout.panels] == sorted(p.image.y for p in page.layout.panels)
    assert first == len(slices)


def test_a_panel_taller_than_a_slice_is_cut_through_its_picture_never_its_bubbles(write_story, tmp_path):
    path = write_story(webtoon_text(panels=3, size="{width: 512, height: 2048}", chapter=0))
    result = storyboard.build(path, tmp_path / "out", renderer="draft")
    assert all(Image.open(p).size[1] <= 1280 for p in result.page_pngs)
    page = composed(path).pages[0]
    cuts = slice_cuts(page.layout, 1280)
    assert len(cuts) - 1 == len(result.page_pngs) >= 6  # three 3200-pixel panels
    for cut in cuts[1:-1]:
        assert not any(box.y < cut < box.bottom for box in text_boxes(page.layout)), cut


def test_a_webtoon_rebuilds_nothing_when_nothing_changed_and_leaves_no_slices_when_it_stops_being_one(
        write_story, tmp_path):
    path = write_story(webtoon_text(panels=6, chapter=0))
    out = tmp_path / "out"
    slices = storyboard.build(path, out, renderer="draft").page_pngs
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in slices]
    assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in storyboard.build(path, out, renderer="draft").page_pngs] \
        == before
    path.write_text(path.read_text(encoding="utf-8").replace("page: webtoon", "page: a4"), encoding="utf-8")
    result = storyboard.build(path, out, renderer="draft")
    assert result.rendered == 0 and result.page_pngs == [out / "page.png"]
    assert not list((out / "webtoon").glob("*.png"))


def test_a_webtoon_as_a_comic_book_holds_its_slices(write_story, tmp_path):
    path = write_story(webtoon_text(panels=4, chapter=0))
    result = storyboard.build(path, tmp_path / "out", renderer="draft")
    done = export_built(Built.of(result), choose_formats("cbz", result.story))
    with zipfile.ZipFile(done[0].path) as archive:
        names = archive.namelist()
        assert names[:-1] == [f"{n:03d}.png" for n in range(1, len(result.page_pngs) + 1)]
        assert archive.read("001.png") == result.page_pngs[0].read_bytes()


@pytest.mark.parametrize("width", [390])
def test_a_webtoon_reads_on_a_phone_without_scrolling_sideways(chromium, write_story, tmp_path, width):
    path = write_story(webtoon_text(panels=6, chapter=0))
    result = storyboard.build(path, tmp_path / "out", renderer="draft")
    tab = chromium.open(result.index_html.as_uri(), width)
    try:
        report = tab.evaluate("""(() => {
          const boxes = [...document.querySelectorAll("figure.panel")].map((f) => f.getBoundingClientRect());
          return {scrollWidth: document.documentElement.scrollWidth, lefts: boxes.map((b) => Math.round(b.left)),
                  tops: boxes.map((b) => Math.round(b.top))};
        })()""")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(ARTIFACTS / f"webtoon-{width}.png")
    finally:
        tab.close()
    assert report["scrollWidth"] <= width, "the strip scrolls sideways"
    assert len(set(report["lefts"])) == 1 and report["tops"] == sorted(report["tops"])  # one column, in order


def test_a_cut_that_would_go_through_a_bubble_moves_above_it():
    from storyboard.geometry import Box, Bubble, PageLayout, PanelBox

    bubble = Bubble(Box(10, 1200, 300, 200), (100, 1500), "top-left")
    tall = PanelBox(index=1, row=0, column=0, span=1, image=Box(0, 0, 800, 3000), bubbles=(bubble,))
    layout = PageLayout(width=800, height=3000, unit=1.0, columns=1, direction="ltr", captions="below", title=None,
                        footer=None, panels=(tall,), border=0, gutter=0, margin=0)
    assert slice_cuts(layout, 1280) == [0, 1200, 2480, 3000]
    below = PanelBox(index=2, row=1, column=0, span=1, image=Box(0, 1100, 800, 1900))
    gutter = PanelBox(index=1, row=0, column=0, span=1, image=Box(0, 0, 800, 1000))
    layout = PageLayout(width=800, height=3000, unit=1.0, columns=1, direction="ltr", captions="below", title=None,
                        footer=None, panels=(gutter, below), border=0, gutter=100, margin=0)
    assert slice_cuts(layout, 1280)[:2] == [0, 1050]  # in the gutter, though a lower cut would fit
