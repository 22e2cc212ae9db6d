"""The pages for readers: `<title>.cbz` read back against the ComicInfo 2.0 schema, `<title>.epub` checked by
epubcheck."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import xmlschema

import storyboard
from storyboard.export import Built, choose_formats, export_built

ROOT = Path(__file__).resolve().parent.parent
LITTLE_PRINCE = ROOT / "stories" / "little_prince.yaml"
COMIC_INFO = xmlschema.XMLSchema(str(Path(__file__).parent / "data" / "ComicInfo-2.0.xsd"))

RTL_BOOK = """
title: 右から左へ
language: ja
layout: {direction: rtl, columns: 2, rows: 1}
render: {width: 64, height: 64}
outline: A short book read right to left.
characters:
  fox: a red fox
panels:
  - {prompt: a fox, caption: 狐が待っている。, characters: [fox], chapter: 第一章}
  - {prompt: a rose, dialogue: [{speaker: fox, text: 飼いならして。}], characters: [fox]}
  - {prompt: a field, chapter: 第二章}
  - {prompt: the stars, caption: 星。}
"""


def epubcheck() -> list[str] | None:
    """How to run epubcheck here: Debian installs it as a jar."""
    for jar in (Path("/usr/share/java/epubcheck.jar"),):
        if jar.is_file() and shutil.which("java"):
            return ["java", "-jar", str(jar)]
    found = shutil.which("epubcheck")
    return [found] if found else None


def check_epub(path: Path) -> str:
    command = epubcheck()
    if command is None:
        message = "epubcheck is not installed (sudo apt-get install epubcheck)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: the EPUB tests must run here)")
        pytest.skip(message)
    done = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=120)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "Messages: 0 fatals / 0 errors / 0 warnings" in report, report
    return report


def export(path: Path, out: Path, formats: str):
    result = storyboard.build(path, out, renderer="draft")
    return result, export_built(Built.of(result), choose_formats(formats, result.story))


def test_the_little_prince_as_a_comic_book_and_an_epub(tmp_path):
    out = tmp_path / "out"
    result, done = export(LITTLE_PRINCE, out, "cbz,epub")
    assert [e.path.name for e in done] == ["小王子.cbz", "小王子.epub"]

    with zipfile.ZipFile(out / "小王子.cbz") as archive:
        assert archive.namelist() == ["001.png", "ComicInfo.xml"]
        assert archive.read("001.png") == (out / "page.png").read_bytes()
        info = archive.read("ComicInfo.xml").decode("utf-8")
    COMIC_INFO.validate(info)
    data = COMIC_INFO.to_dict(info)
    assert (data["Title"], data["LanguageISO"], data["PageCount"], data["Manga"]) == ("小王子", "zh", 1, "No")
    assert data["Pages"]["Page"][0]["@Type"] == ["FrontCover"]
    assert data["Summary"].startswith("A pilot crashes in the Sahara")

    check_epub(out / "小王子.epub")
    with zipfile.ZipFile(out / "小王子.epub") as book:
        assert book.namelist()[0] == "mimetype" and book.getinfo("mimetype").compress_type == zipfile.ZIP_STORED
        opf = book.read("EPUB/package.opf").decode("utf-8")
        page = book.read("EPUB/page-001.xhtml").decode("utf-8")
    assert "<dc:language>zh</dc:language>" in opf and "rendition:layout\">pre-paginated" in opf
    assert "page-progression-direction" not in opf
    for panel in result.story.panels:  # every caption and line is text a screen reader reads
        assert panel.caption in page
        for line in panel.dialogue:
            assert line.text in page


def test_a_right_to_left_book_of_chapters(write_story, tmp_path):
    path = write_story(RTL_BOOK)
    out = tmp_path / "out"
    result, done = export(path, out, "cbz,epub")
    assert len(result.pages) == 2
    with zipfile.ZipFile(done[0].path) as archive:
        assert archive.namelist() == ["001.png", "002.png", "ComicInfo.xml"]
        assert archive.read("002.png") == (out / "pages" / "page-02.png").read_bytes()
        info = archive.read("ComicInfo.xml").decode("utf-8")
    COMIC_INFO.validate(info)
    data = COMIC_INFO.to_dict(info)
    assert (data["Manga"], data["PageCount"], data["LanguageISO"]) == ("YesAndRightToLeft", 2, "ja")
    assert [p.get("@Bookmark") for p in data["Pages"]["Page"]] == ["第一章", "第二章"]

    check_epub(done[1].path)
    with zipfile.ZipFile(done[1].path) as book:
        opf = book.read("EPUB/package.opf").decode("utf-8")
        nav = book.read("EPUB/nav.xhtml").decode("utf-8")
    assert '<spine page-progression-direction="rtl">' in opf
    assert re.findall(r'<a href="(page-\d+\.xhtml)">([^<]+)</a>', nav) == [("page-001.xhtml", "第一章"),
                                                                          ("page-002.xhtml", "第二章")]


def test_a_comic_book_is_made_again_only_when_its_pages_change(write_story, tmp_path):
    path = write_story(RTL_BOOK)
    out = tmp_path / "out"
    _, done = export(path, out, "cbz")
    before = (done[0].path.read_bytes(), done[0].path.stat().st_mtime_ns)
    _, again = export(path, out, "cbz")
    assert not again[0].made and (again[0].path.read_bytes(), again[0].path.stat().st_mtime_ns) == before
    path.write_text(path.read_text(encoding="utf-8").replace("title: 右から左へ", "title: 左から右へ"),
                    encoding="utf-8")
    _, renamed = export(path, out, "cbz")
    assert renamed[0].made and renamed[0].path.name == "左から右へ.cbz"
    assert sorted(p.name for p in out.glob("*.cbz")) == ["左から右へ.cbz"]  # the old title's file is gone


def test_a_title_becomes_a_file_name(write_story, tmp_path):
    path = write_story('title: "A/B: the *best* story?"\npanels:\n  - {prompt: a}\n')
    _, done = export(path, tmp_path / "out", "cbz")
    assert done[0].path.name == "A_B_ the _best_ story.cbz"
