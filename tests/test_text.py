"""Line breaking (kinsoku, Latin at spaces) and fonts covering Chinese, Japanese and Korean."""

from __future__ import annotations

import pytest
from PIL import Image, ImageChops, ImageDraw

from storyboard.text import NO_LINE_END, NO_LINE_START, FontChain, coverage, font, font_path, wrap


def test_bundled_cjk_font_is_used():
    assert font_path() is not None and font_path().name == "NotoSansSC-Regular.otf"


def test_latin_wraps_at_spaces():
    f = font(20)
    lines = wrap("the quick brown fox jumps over the lazy dog", f, 120)
    assert len(lines) > 1
    assert " ".join(lines) == "the quick brown fox jumps over the lazy dog"
    assert all(f.getlength(line) <= 120 for line in lines)


def test_cjk_wraps_between_characters_and_respects_kinsoku():
    f = font(20)
    text = "小王子和狐狸成为朋友：“眼睛看不见的事物才是最重要的。”飞行员在撒哈拉沙漠迫降，小王子请他画一只羊。"
    for width in range(60, 400, 7):
        lines = wrap(text, f, width)
        assert "".join(lines) == text
        assert all(f.getlength(line) <= width for line in lines)
        assert not any(line[0] in NO_LINE_START for line in lines[1:])
        assert not any(line[-1] in NO_LINE_END for line in lines[:-1])


def test_mixed_text_and_long_words():
    f = font(16)
    lines = wrap("小王子站在B612小行星上 supercalifragilisticexpialidocious", f, 80)
    assert all(f.getlength(line) <= 80 for line in lines)
    assert "".join(lines).replace(" ", "") == "小王子站在B612小行星上supercalifragilisticexpialidocious"


def test_max_lines_ends_with_ellipsis():
    lines = wrap("one two three four five six seven eight nine ten", font(20), 80, max_lines=2)
    assert len(lines) == 2 and lines[-1].endswith("…")


NOT_AT_START = "。，、」』）！？"
NOT_AT_END = "「『（"
MIXED = ("狐狸说：「你好，小王子！」他笑了（很开心）。Then the fox smiled and said: “Tame me, please.” "
         "『星星』真美丽！你看见了吗？ 안녕하세요, 여러분! こんにちは、王子さま。")


@pytest.mark.parametrize("width", range(40, 420, 7))
def test_kinsoku_and_latin_words(width):
    chain = FontChain(20, "zh")
    lines = wrap(MIXED, chain, width)
    assert "".join(lines).replace(" ", "") == MIXED.replace(" ", "")
    for line in lines:
        assert line[0] not in NOT_AT_START, (width, lines)
        assert line[-1] not in NOT_AT_END, (width, lines)
    if width >= 120:  # wide enough for every word: Latin and Korean words are never split
        words = set("Then the fox smiled and said Tame me please 안녕하세요 여러분".split())
        for line in lines:
            assert chain.getlength(line) <= width + 0.5
            for token in line.translate(str.maketrans("“”,.:!", "      ")).split():
                if token.isascii() or "\uac00" <= token[0] <= "\ud7a3":
                    assert token in words, (token, lines)


def test_fonts_cover_chinese_japanese_korean():
    chain = FontChain(20, "en")
    for char in "你好世界麦田狐狸こんにちはカタカナ안녕하세요한국어ABCé":
        fnt = chain.font_for(char)
        path = next(p for p, f in zip(chain.paths, chain.fonts) if f is fnt)
        assert ord(char) in coverage(path), char


def render(chain: FontChain, text: str) -> Image.Image:
    image = Image.new("L", (200, 60), 255)
    chain.draw(ImageDraw.Draw(image), (5, 5), text, 0)
    return image


@pytest.mark.parametrize("text", ["狐", "麦", "か", "カ", "한", "글"])
def test_glyphs_are_not_tofu(text):
    """A character the fonts lack draws the .notdef box; every CJK character must draw something else."""
    chain = FontChain(40, "zh")
    tofu = render(chain, "\U000f0000")  # a private-use code point no font has
    drawn = render(chain, text)
    assert ImageChops.difference(drawn, tofu).getbbox() is not None, f"{text!r} is drawn as the notdef box"
    assert drawn.getextrema()[0] < 128  # and it does draw ink


def test_languages_put_their_own_font_first():
    assert "KR" in FontChain(20, "ko").paths[0].name
    assert "SC" in FontChain(20, "zh").paths[0].name


class CountingFont:
    """A font that counts the characters it is asked to measure."""

    def __init__(self, inner):
        self.inner, self.measured = inner, 0

    def getlength(self, text):
        self.measured += len(text)
        return self.inner.getlength(text)


@pytest.mark.parametrize("text", ["w" * 4000, "汉" * 4000, ("word " * 800).strip()])
def test_wrapping_measures_each_character_a_bounded_number_of_times(text):
    # Linear, not quadratic: a 4000-letter word once cost its whole rest measured on every line it filled.
    counting = CountingFont(font(20))
    lines = wrap(text, counting, 200)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert all(counting.inner.getlength(line) <= 200 for line in lines)
    assert counting.measured <= 25 * len(text), counting.measured
