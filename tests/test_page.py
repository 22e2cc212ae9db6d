"""The built page: PNG pixels, PDF text, HTML escaping and self-containment, the story fields behind them."""

from __future__ import annotations

import re

import pytest
from PIL import Image, ImageChops, ImageDraw

from storyboard.compose.page import CastMember, story_page
from storyboard.render.draft import DraftRenderer
from storyboard.resolve import resolve
from storyboard.story import load_story
from storyboard.text import FontChain

INK_LEVEL = 100


def comic_page(result):
    story = load_story(result.out_dir.parent / "comic.yaml")
    jobs = resolve(story)
    images = {j.index: Image.open(result.out_dir / j.file) for j in jobs}
    cast = [CastMember(c.job.character, Image.open(result.out_dir / c.job.file), c.job.file)
            for c in result.characters]
    return story_page(story, jobs, images, renderer="draft", version="test", cast=cast,
                      header=DraftRenderer.page_header, names_model=DraftRenderer.names_model)


def dark_pixels(image: Image.Image, box) -> int:
    crop = image.convert("L").crop((box.x, box.y, box.right, box.bottom))
    return sum(crop.histogram()[:INK_LEVEL])


def test_png_draws_captions_and_bubbles_inside_panels(comic):
    light, _ = comic
    page = comic_page(light)
    png = Image.open(light.page_png)
    assert png.size == (page.layout.width, page.layout.height)
    bubbles = 0
    for panel in page.layout.panels:
        if panel.caption:
            assert dark_pixels(png, panel.caption) > 20, f"no caption text drawn for panel {panel.index}"
        for bubble in panel.bubbles:
            bubbles += 1
            assert panel.image.contains(bubble.box)
            inner = type(bubble.box)(bubble.box.x + 4, bubble.box.y + 4, bubble.box.w - 8, bubble.box.h - 8)
            assert dark_pixels(png, inner) > 10, f"no bubble text drawn in panel {panel.index}"
            # The bubble is drawn: its inside is mostly white paper, whatever the panel shows behind it.
            crop = png.convert("L").crop((inner.x, inner.y, inner.right, inner.bottom))
            assert sum(crop.histogram()[241:]) > 0.5 * inner.w * inner.h
    assert bubbles == 5


def test_png_chinese_glyphs_are_not_tofu(comic):
    """Draw the page's own Chinese caption and compare it with the same number of notdef boxes."""
    light, _ = comic
    page = comic_page(light)
    block = page.text.used["caption", 4]
    chain = FontChain(block.size, "zh")
    text = block.lines[0]
    assert text.startswith("麦田")

    def draw(line: str) -> Image.Image:
        image = Image.new("L", (block.size * (len(line) + 2), block.line_height * 2), 255)
        chain.draw(ImageDraw.Draw(image), (0, 0), line, 0)
        return image

    drawn, tofu = draw(text), draw("\U000f0000" * len(text))
    assert ImageChops.difference(drawn, tofu).getbbox() is not None
    png = Image.open(light.page_png).convert("L")
    box = page.layout.panels[3].caption
    region = png.crop((box.x, box.y, box.x + drawn.width, box.y + block.line_height))
    glyphs = drawn.crop((0, 0, region.width, block.line_height))
    # page.png holds these glyphs (same font, size and line), and they are far from the row of notdef boxes.
    tofu_row = tofu.crop((0, 0, region.width, block.line_height))
    to_glyphs = sum(ImageChops.difference(region, glyphs).histogram()[64:])
    to_tofu = sum(ImageChops.difference(region, tofu_row).histogram()[64:])
    assert to_glyphs < to_tofu / 4, (to_glyphs, to_tofu)


def test_pdf_keeps_text_as_text(comic):
    pdfium = pytest.importorskip("pypdfium2", reason="pypdfium2 (a dev dependency) reads the PDF back")
    light, _ = comic
    assert light.page_pdf.read_bytes().startswith(b"%PDF")
    document = pdfium.PdfDocument(str(light.page_pdf))
    assert len(document) == 1
    text = re.sub(r"\s+", "", document[0].get_textpage().get_text_range())
    for expected in ("小王子与狐狸<TheFox&thePrince>", "沙漠里，天刚亮。", "你是谁？", "안녕하세요", "こんに", "驯服",
                     "Comeandplay", "<b>notbold</b>"):
        assert expected in text
    page = comic_page(light)
    width, height = document[0].get_size()
    assert abs(width / height - page.layout.width / page.layout.height) < 0.001
    # Drawn, it looks like page.png: same boxes, same text lines.
    drawn = document[0].render(scale=page.layout.width / width).to_pil().convert("L")
    png = Image.open(light.page_png).convert("L")
    assert abs(drawn.width - png.width) <= 1 and abs(drawn.height - png.height) <= 1
    drawn = drawn.resize(png.size)
    differ = sum(ImageChops.difference(drawn, png).histogram()[96:])
    assert differ < 0.03 * png.width * png.height, differ


def test_html_escapes_text_and_links_panels(comic):
    light, _ = comic
    html = light.index_html.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html and "<b>not bold</b>" not in html
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; &lt;script&gt;" in html
    assert "&lt;The Fox &amp; the Prince&gt;" in html
    assert 'src="panels/panel-01.png"' in html
    assert 'alt="沙漠里，天刚亮。A desert at dawn."' in html
    assert re.search(r'<p class="bubble top-right"[^>]*><span class="visually-hidden">fox: </span>你好！</p>', html)
    assert "data:image" not in html
    fonts = re.findall(r'url\("(fonts/[^"]+\.woff)"\)', html)
    assert fonts and all((light.out_dir / f).is_file() for f in fonts)
    assert "@media print" in html


def test_self_contained_html_has_no_links_to_files(comic):
    _, mailed = comic
    html = mailed.index_html.read_text(encoding="utf-8")
    assert "panels/" not in html and "page.png" not in html and "fonts/" not in html
    assert "characters/" not in html
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 5  # four panels and the fox in the cast strip
    assert 'url("data:font/woff;base64,' in html
    assert not re.search(r'(src|href)="(?!data:)[^"#]', html)
    assert not list((mailed.out_dir / "fonts").glob("*.woff"))


def test_spanning_panels_render_wider(comic):
    light, _ = comic
    story = load_story(light.out_dir.parent / "comic.yaml")
    sizes = [(j.width, j.height) for j in resolve(story)]
    assert sizes == [(528, 256), (256, 256), (256, 256), (800, 256)]  # 2*256+16, 3*256+2*16
    assert Image.open(light.out_dir / "panels/panel-01.png").size == (528, 256)


@pytest.mark.parametrize("yaml, message", [
    ("layout: {columns: 2}\npanels:\n  - {prompt: a, span: 3}\n",
     "story.yaml:4: panels[0].span: span 3 is wider than the page's 2 columns (layout.columns)"),
    ("layout: {direction: up}\npanels:\n  - {prompt: a}\n",
     "story.yaml:2: layout.direction: expected 'ltr' or 'rtl', got text ('up')"),
    ("layout: {page: letter}\npanels:\n  - {prompt: a}\n",
     "story.yaml:2: layout.page: expected 'auto', 'a4', 'square', 'strip' or 'webtoon', got text ('letter')"),
    ("layout: {background: red}\npanels:\n  - {prompt: a}\n",
     "story.yaml:2: layout.background: expected a colour like '#ffffff', got 'red'"),
    ("panels:\n  - prompt: a\n    dialogue:\n      - {speaker: fox, txt: hi}\n",
     "story.yaml:5: panels[0].dialogue[0].txt: unknown field (did you mean 'text'?) (and 1 more problem)"),
    ("panels:\n  - prompt: a\n    dialogue: [{text: a}, {text: b}, {text: c}, {text: d}, {text: e}]\n",
     "story.yaml:4: panels[0].dialogue: at most 4 speech bubbles fit in a panel (got 5); split the scene"),
    ("panels:\n  - prompt: a\n    narration: once\n    dialogue: [{text: a}, {text: b}, {text: c}, {text: d}]\n",
     "story.yaml:5: panels[0].dialogue: a panel with narration has room for 3 speech bubbles (got 4)"),
    ("panels:\n  - prompt: a\n    dialogue: [{speaker: fox, text: '  '}]\n",
     "story.yaml:4: panels[0].dialogue[0].text: must not be empty: a speech bubble needs text"),
])
def test_bad_layout_fields_give_one_clear_line(write_story, capsys, yaml, message):
    from storyboard.cli import main

    path = write_story("title: T\n" + yaml)
    code = main(["build", str(path), "--renderer", "draft", "--out", str(path.parent / "out")])
    assert code == 1
    assert capsys.readouterr().err == f"Error: {path.parent / message}\n"
    assert not (path.parent / "out").exists()


def test_dialogue_edit_recomposes_without_redrawing(write_story):
    from storyboard.building import build

    path = write_story("""
        title: T
        render: {width: 64, height: 64}
        panels:
          - prompt: a fox
            dialogue: [{speaker: fox, text: "Hello"}]
        """)
    out = path.parent / "out"
    build(path, out, renderer="draft")
    outputs = [out / "page.png", out / "page.pdf", out / "index.html"]
    before = [p.stat().st_mtime_ns for p in outputs]
    again = build(path, out, renderer="draft")
    assert again.rendered == 0 and [p.stat().st_mtime_ns for p in outputs] == before  # nothing to recompose
    path.write_text(path.read_text(encoding="utf-8").replace("Hello", "Goodbye"), encoding="utf-8")
    edited = build(path, out, renderer="draft")
    assert edited.rendered == 0
    assert "Goodbye" in (out / "index.html").read_text(encoding="utf-8")
    assert all(p.stat().st_mtime_ns != t for p, t in zip(outputs, before))


# --------------------------------------------------------------------------- the cast strip


def cast_story(write_story, cast_on: bool = True):
    return load_story(write_story(f"""
        title: Cast
        render: {{width: 512, height: 512}}
        layout: {{columns: 2, cast: {str(cast_on).lower()}}}
        panels:
          - prompt: a fox
            caption: The fox
          - prompt: a girl
    """))


def fake_cast():
    from storyboard.compose.page import CastMember

    return [CastMember("fox", Image.new("RGB", (64, 64), (220, 30, 30)), "characters/fox.png"),
            CastMember("小女孩", Image.new("RGB", (64, 64), (30, 30, 220)), "characters/girl.png")]


def test_cast_strip_under_the_title_in_png_pdf_and_html(write_story):
    import pypdfium2 as pdfium

    from storyboard.compose.html import page_html
    from storyboard.compose.pdf import page_pdf
    from storyboard.compose.png import page_png

    story = cast_story(write_story)
    jobs = resolve(story)
    images = {j.index: Image.new("RGB", (j.width, j.height), (240, 240, 240)) for j in jobs}
    plain = story_page(story, jobs, images, renderer="small", version="t")
    page = story_page(story, jobs, images, renderer="small", version="t", cast=fake_cast())
    layout = page.layout
    assert len(layout.cast) == 2 and plain.layout.cast == ()
    for box in layout.cast:
        assert layout.title.bottom <= box.image.y and box.name.y >= box.image.bottom
        assert box.name.bottom <= min(p.image.y for p in layout.panels)
    # The panels move down by the strip; nothing else about them changes.
    shift = layout.panels[0].image.y - plain.layout.panels[0].image.y
    assert shift > 0 and all(a.image.offset(0, shift) == b.image for a, b in zip(plain.layout.panels, layout.panels))

    png = page_png(page)
    red, blue = (box.image for box in layout.cast)
    assert png.getpixel((red.x + red.w // 2, red.y + red.h // 2)) == (220, 30, 30)
    assert png.getpixel((blue.x + blue.w // 2, blue.y + blue.h // 2)) == (30, 30, 220)
    assert dark_pixels(png, layout.cast[1].name) > 10, "the name is drawn under the portrait"

    document = pdfium.PdfDocument(page_pdf(page))
    text = document[0].get_textpage().get_text_range()
    assert "fox" in text and "小女孩" in text

    html = page_html(page)
    assert '<a href="characters/fox.png"><img src="characters/fox.png"' in html and "<span>小女孩</span>" in html
    alone = page_html(page, self_contained=True)
    assert "characters/" not in alone and alone.count("data:image/png;base64,") == 4


def test_no_cast_or_cast_off_is_the_page_as_before(write_story):
    from storyboard.compose.html import page_html

    story = cast_story(write_story, cast_on=False)
    jobs = resolve(story)
    images = {j.index: Image.new("RGB", (j.width, j.height)) for j in jobs}
    off = story_page(story, jobs, images, renderer="small", version="t", cast=fake_cast())
    none = story_page(story, jobs, images, renderer="small", version="t")
    assert off.layout == none.layout and off.cast == ()
    assert page_html(off) == page_html(none) and 'class="cast"' not in page_html(none)


def test_the_cast_is_in_the_page_key(write_story):
    from storyboard.compose.book import book_pages, page_key_input
    from storyboard.compose.page import CastMember
    from storyboard.resolve import content_key

    story = cast_story(write_story)
    jobs = resolve(story)
    (page,) = book_pages(story)

    def key(cast, s=story):
        return content_key(page_key_input(s, jobs, {j.index: "k" for j in jobs}, renderer="small", version="t",
                                          self_contained=False, page=page, book=False, cast=cast))

    cast = fake_cast()
    assert key(()) != key(cast)
    assert key(cast) != key([cast[0], CastMember("girl", cast[1].image, cast[1].file)])
    assert key(cast) != key([cast[0], CastMember("小女孩", cast[1].image, "characters/girl-2.png")])
    assert key(cast, cast_story(write_story, cast_on=False)) == key((), cast_story(write_story, cast_on=False))
