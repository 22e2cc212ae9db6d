from __future__ import annotations

from storyboard.compose import fonts
from storyboard.compose.fonts import page_subsets

TEXT = ["小王子与狐狸 The fox"]


def test_subsets_are_stored_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("STORYBOARD_CACHE_DIR", str(tmp_path))
    fonts._subset.cache_clear()
    first = page_subsets(TEXT, "zh")
    stored = sorted((tmp_path / "fonts").iterdir())
    assert [p.suffix for p in stored] == [".otf", ".woff"] * len(first)

    fonts._subset.cache_clear()
    again = page_subsets(TEXT, "zh")
    assert [(s.data, s.woff) for s in again] == [(s.data, s.woff) for s in first]

    # The second cut came from the stored files, not from the font.
    woff = next(p for p in stored if p.suffix == ".woff")
    woff.write_bytes(b"stored")
    fonts._subset.cache_clear()
    assert b"stored" in [s.woff for s in page_subsets(TEXT, "zh")]
    fonts._subset.cache_clear()


def test_other_characters_are_another_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("STORYBOARD_CACHE_DIR", str(tmp_path))
    fonts._subset.cache_clear()
    page_subsets(TEXT, "zh")
    page_subsets(["玫瑰"], "zh")
    assert len(list((tmp_path / "fonts").glob("*.woff"))) == 2
    fonts._subset.cache_clear()


def test_an_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("STORYBOARD_CACHE_DIR", str(blocker))
    fonts._subset.cache_clear()
    subsets = page_subsets(TEXT, "zh")
    assert subsets and all(s.data and s.woff for s in subsets)
    fonts._subset.cache_clear()
