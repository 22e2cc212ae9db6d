"""The built page in a real headless Chromium: visible panels in reading order, no overflow, a working viewer.

Without Chromium these tests skip (saying how to install it); under CI=true they fail instead, because CI installs
it. Screenshots are kept in build/test-artifacts/ (the path is printed at the end of the run).
"""

from __future__ import annotations

import shutil

import pytest
from conftest import ROOT

ARTIFACTS = ROOT / "build" / "test-artifacts"

PANELS_JS = """
(async () => {
  const figures = [...document.querySelectorAll('figure.panel')];
  for (const figure of figures) {  // bring lazy images in, as a reader scrolling down would
    const img = figure.querySelector('img');
    img.scrollIntoView();
    if (!img.complete) await new Promise(r => { img.onload = r; img.onerror = r; });
  }
  window.scrollTo(0, 0);
  const box = e => { const r = e.getBoundingClientRect();
                     return {left: r.left, top: r.top + scrollY, right: r.right, bottom: r.bottom + scrollY,
                             width: r.width, height: r.height}; };
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => !e.closest('dialog'))
    .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5 || e.getBoundingClientRect().left < -0.5)
    .map(e => e.tagName + '.' + e.className);
  return {
    viewport: innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    wide,
    fonts: [...document.fonts].map(f => [f.family, f.status]),
    panels: figures.map(f => {
      const img = f.querySelector('img'), style = getComputedStyle(f);
      return {index: Number(f.dataset.index), box: box(img), loaded: img.complete && img.naturalWidth > 0,
              visible: style.visibility === 'visible' && style.display !== 'none',
              bubbles: [...f.querySelectorAll('.bubble, .narration')].map(b => ({box: box(b), text: b.textContent}))};
    }),
  };
})()
"""


@pytest.fixture(scope="module")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def in_reading_order(panels: list[dict], rtl: bool) -> None:
    assert [p["index"] for p in panels] == list(range(1, len(panels) + 1))
    for a, b in zip(panels, panels[1:]):
        same_row = abs(a["box"]["top"] - b["box"]["top"]) < 2
        if same_row:
            if rtl:
                assert b["box"]["right"] <= a["box"]["left"] + 0.5, (a, b)
            else:
                assert b["box"]["left"] >= a["box"]["right"] - 0.5, (a, b)
        else:
            assert b["box"]["top"] >= a["box"]["bottom"], (a, b)


@pytest.mark.parametrize("width", [390, 1280])
def test_page_in_browser(chromium, comic, artifacts, width):
    light, _ = comic
    tab = chromium.open(light.index_html.as_uri(), width)
    try:
        report = tab.evaluate(PANELS_JS)
        tab.screenshot(artifacts / f"comic-{width}.png")
    finally:
        tab.close()
    assert report["viewport"] == width
    assert report["scrollWidth"] <= width, "the page scrolls sideways"
    assert report["wide"] == []
    assert ["storyboard-0", "loaded"] in report["fonts"]
    panels = report["panels"]
    assert len(panels) == 4
    for panel in panels:
        assert panel["loaded"] and panel["visible"], panel
        assert panel["box"]["width"] > 100 and panel["box"]["height"] > 50
        assert panel["box"]["left"] >= 0 and panel["box"]["right"] <= width
        for bubble in panel["bubbles"]:  # bubbles and narration stay inside their panel
            inner, outer = bubble["box"], panel["box"]
            assert inner["left"] >= outer["left"] - 1 and inner["right"] <= outer["right"] + 1, bubble
            assert inner["top"] >= outer["top"] - 1 and inner["bottom"] <= outer["bottom"] + 1, bubble
    in_reading_order(panels, rtl=width > 600)  # on a phone the panels stack in one column
    if width == 390:
        assert all(abs(p["box"]["width"] - panels[0]["box"]["width"]) < 1 for p in panels)
    texts = [b["text"] for p in panels for b in p["bubbles"]]
    assert "fox: 你好！" in texts and "fox: 안녕하세요! こんにちは。" in texts  # the speaker, for screen readers


def test_viewer_works_from_the_keyboard(chromium, comic):
    light, _ = comic
    tab = chromium.open(light.index_html.as_uri(), 1280)
    try:
        state = "({open: document.querySelector('dialog').open, label: document.querySelector('dialog .bar p')" \
                ".textContent, focus: document.activeElement.className})"
        tab.evaluate("document.querySelector('.zoom').focus()")
        tab.key("Enter", key_code=13, text="\r")
        opened = tab.evaluate(state)
        assert opened["open"] and opened["label"].startswith("Panel 1 of 4"), opened
        assert tab.evaluate("!!document.querySelector('dialog .stage img').naturalWidth")
        tab.key("ArrowLeft", key_code=37)  # right-to-left story: left moves on
        assert tab.evaluate(state)["label"].startswith("Panel 2 of 4")
        tab.key("ArrowRight", key_code=39)
        tab.key("ArrowRight", key_code=39)
        assert tab.evaluate(state)["label"].startswith("Panel 4 of 4")
        tab.key("Escape", key_code=27)
        closed = tab.evaluate(state)
        assert not closed["open"] and closed["focus"] == "zoom", closed
    finally:
        tab.close()


def test_self_contained_page_works_alone(chromium, comic, tmp_path):
    _, mailed = comic
    alone = tmp_path / "mailed.html"
    shutil.copy(mailed.index_html, alone)  # no panels/ or fonts/ beside it
    tab = chromium.open(alone.as_uri(), 1280)
    try:
        report = tab.evaluate(PANELS_JS)
    finally:
        tab.close()
    assert all(p["loaded"] for p in report["panels"]) and len(report["panels"]) == 4
    assert ["storyboard-0", "loaded"] in report["fonts"]


def test_print_stylesheet_hides_controls(chromium, comic):
    light, _ = comic
    tab = chromium.open(light.index_html.as_uri(), 1280)
    try:
        shown = "getComputedStyle(document.querySelector('.panel details')).display"
        assert tab.evaluate(shown) != "none"
        chromium.call("Emulation.setEmulatedMedia", tab.session, media="print")
        assert tab.evaluate(shown) == "none"
        assert tab.evaluate("getComputedStyle(document.querySelector('footer nav')).display") == "none"
        assert tab.evaluate("getComputedStyle(document.querySelector('.bubble')).display") != "none"
    finally:
        tab.close()


BOOK_JS = """
(() => {
  const sheets = [...document.querySelectorAll('section.sheet')];
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => !e.closest('dialog'))
    .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5 || e.getBoundingClientRect().left < -0.5)
    .map(e => e.tagName + '.' + e.className);
  return {
    scrollWidth: document.documentElement.scrollWidth, wide,
    sheets: sheets.map(s => ({id: s.id, top: s.getBoundingClientRect().top + scrollY,
                              number: s.querySelector('.turn .number').textContent,
                              panels: [...s.querySelectorAll('figure.panel')].map(f => Number(f.dataset.index)),
                              heading: (s.querySelector('h2.chapter') || {}).textContent || null})),
  };
})()
"""


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A 24-panel right-to-left story on three pages of 4 × 2, built with the draft renderer."""
    from storyboard.building import build

    root = tmp_path_factory.mktemp("book")
    lines = ["title: A book", "render: {width: 256, height: 256}", "layout: {columns: 4, rows: 2, direction: rtl}",
             "panels:"]
    for i in range(1, 25):
        lines.append(f"  - prompt: medium shot of scene {i}\n    caption: Caption {i}")
        if i == 17:
            lines.append("    chapter: The last chapter")
    story = root / "book.yaml"
    story.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return build(story, root / "out", renderer="draft")


@pytest.mark.parametrize("width", [390, 1280])
def test_book_shows_every_page_in_order_without_overflow(chromium, book, artifacts, width):
    tab = chromium.open(book.index_html.as_uri(), width)
    try:
        report = tab.evaluate(BOOK_JS)
        tab.screenshot(artifacts / f"book-{width}.png")
        report["panels"] = tab.evaluate(PANELS_JS)["panels"]
    finally:
        tab.close()
    assert report["scrollWidth"] <= width and report["wide"] == []
    sheets = report["sheets"]
    assert [s["id"] for s in sheets] == ["page-1", "page-2", "page-3"]
    assert [s["number"] for s in sheets] == [f"Page {n} of 3" for n in (1, 2, 3)]
    assert [s["panels"] for s in sheets] == [list(range(1, 9)), list(range(9, 17)), list(range(17, 25))]
    assert [s["heading"] for s in sheets] == [None, None, "The last chapter"]
    assert sheets[0]["top"] < sheets[1]["top"] < sheets[2]["top"]
    panels = report["panels"]
    assert all(p["loaded"] and p["visible"] for p in panels)
    assert [p["index"] for p in panels] == list(range(1, 25))
    for page in (panels[0:8], panels[8:16], panels[16:24]):  # each page reads on its own, right to left
        in_reading_order([{**p, "index": n} for n, p in enumerate(page, start=1)], rtl=width > 600)


def test_book_pages_turn_from_the_keyboard_and_print_one_per_sheet(chromium, book):
    tab = chromium.open(book.index_html.as_uri(), 1280, height=700)
    try:
        # scroll-margin-top: 8px keeps a little paper above the page.
        where = "({hash: location.hash, top: Math.round(document.querySelector(location.hash || 'main')" \
                ".getBoundingClientRect().top)})"
        tab.key("n", key_code=78, text="n")
        assert tab.evaluate(where) == {"hash": "#page-2", "top": 8}
        tab.key("n", key_code=78, text="n")
        assert tab.evaluate(where)["hash"] == "#page-3"
        tab.key("p", key_code=80, text="p")
        assert tab.evaluate(where) == {"hash": "#page-2", "top": 8}
        assert tab.evaluate("document.activeElement.closest('section').id") == "page-2"
        chromium.call("Emulation.setEmulatedMedia", tab.session, media="print")
        breaks = tab.evaluate("[...document.querySelectorAll('section.sheet')]"
                              ".map(s => getComputedStyle(s).breakAfter)")
        assert breaks == ["page", "page", "auto"]
        assert tab.evaluate("getComputedStyle(document.querySelector('.turn')).display") == "none"
    finally:
        tab.close()
