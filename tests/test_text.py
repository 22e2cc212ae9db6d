from __future__ import annotations

from storyboard.compose.text import NO_LINE_END, NO_LINE_START, font, font_path, wrap


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
