"""Editions: `storyboard translate` against a real chat server on 127.0.0.1, and editions built from the original's
drawn panels."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from chat_server import Say

import storyboard
from storyboard.cli import main
from storyboard.export import Built, choose_formats, export_built
from storyboard.story import load_story

STORY = """\
title: 狐狸和女孩
language: zh
characters:
  狐狸: a small red fox
  女孩: a girl in a blue coat
render: {width: 64, height: 64, seed: 7}
panels:
  - prompt: a snowy forest
    caption: 下雪了。
    characters: [狐狸]
    dialogue: [{speaker: 狐狸, text: 好冷。}]
  - prompt: the girl smiling
    caption: 她笑了。
    characters: [女孩]
    dialogue: [{speaker: 女孩, text: 你好，小狐狸。}]
  - prompt: the fox and the girl walk away
    caption: 完。
"""

GLOSSARY = {"狐狸": "Fox", "女孩": "Girl"}


def reply(panels: dict[int, dict], title: str = "The Fox and the Girl", glossary: dict | None = None) -> str:
    return json.dumps({"title": title, "glossary": GLOSSARY if glossary is None else glossary,
                       "panels": [{"n": n, **p} for n, p in panels.items()]}, ensure_ascii=False)


ENGLISH = {1: {"caption": "It snowed.", "dialogue": ["So cold."]},
           2: {"caption": "She smiled.", "dialogue": ["Hello, little fox."]},
           3: {"caption": "The end.", "dialogue": []}}


@pytest.fixture
def chat(openai_chat):
    return openai_chat


@pytest.fixture
def story(tmp_path) -> Path:
    path = tmp_path / "fox.yaml"
    path.write_text(STORY, encoding="utf-8")
    return path


def translate(chat, story, *more: str) -> int:
    return main(["translate", str(story), "--to", "en", "--provider", "openai", "--base-url", chat.openai_url,
                 "--model", "qwen-plus", *more])


def test_translate_writes_an_edition_that_builds_without_drawing(chat, story, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    chat.add(Say(reply(ENGLISH)))
    assert translate(chat, story) == 0
    out, err = capsys.readouterr()
    assert out == f"en: translated 3 panels → {tmp_path / 'fox.en.yaml'}\n"
    assert err == "asking openai qwen-plus for English: 3 panels...\n"
    (request,) = chat.requests
    asked = request.body["messages"][1]["content"]
    assert "Add these names to the glossary: 女孩, 狐狸" in asked and "好冷。" in asked

    edition = load_story(tmp_path / "fox.en.yaml")
    assert (edition.title, edition.language) == ("The Fox and the Girl", "en")
    assert [p.caption for p in edition.panels] == ["It snowed.", "She smiled.", "The end."]
    assert [(d.speaker, d.text) for d in edition.panels[1].dialogue] == [("Girl", "Hello, little fox.")]
    assert [p.prompt for p in edition.panels] == [p.prompt for p in load_story(story).panels]

    original = storyboard.build(story, renderer="draft")
    assert original.rendered == 3
    built = storyboard.build(tmp_path / "fox.en.yaml", renderer="draft")
    assert (built.rendered, built.anchors_rendered, built.reused) == (0, 0, 3)
    assert built.folder.root == Path("build") / "fox.en"
    page = built.index_html.read_text(encoding="utf-8")
    assert '<html lang="en"' in page and "Hello, little fox." in page and "It snowed." in page
    assert '<link rel="alternate" hreflang="zh" href="../fox/index.html">' in page
    assert '<span>Fox</span>' in page  # the cast strip names the characters as the glossary does
    assert 'hreflang="en" href="../fox.en/index.html"' in storyboard.build(story, renderer="draft") \
        .index_html.read_text(encoding="utf-8")

    done = export_built(Built.of(built), choose_formats("cbz", built.story))
    with zipfile.ZipFile(done[0].path) as archive:
        assert "<LanguageISO>en</LanguageISO>" in archive.read("ComicInfo.xml").decode("utf-8")
    assert done[0].path.name == "The Fox and the Girl.cbz"


def test_translating_again_sends_only_what_changed_and_keeps_locked_panels(chat, story, tmp_path, capsys):
    chat.add(Say(reply(ENGLISH)))
    assert translate(chat, story) == 0
    edition = tmp_path / "fox.en.yaml"
    text = edition.read_text(encoding="utf-8")
    text = text.replace("caption: The end.", "caption: The End, by hand.\n    locked: true")
    edition.write_text(text, encoding="utf-8")
    story.write_text(STORY.replace("她笑了。", "她开心地笑了。").replace("caption: 完。", "caption: 结束。"),
                     encoding="utf-8")
    chat.add(Say(reply({2: {"caption": "She smiled happily.", "dialogue": ["Hello, little fox."]}})))
    capsys.readouterr()
    assert translate(chat, story) == 0
    assert capsys.readouterr().out == f"en: translated 1 panel, 2 kept → {edition}\n"
    asked = chat.requests[-1].body["messages"][1]["content"]
    assert "她开心地笑了。" in asked and "下雪了。" not in asked and "结束。" not in asked
    assert "- 狐狸 → Fox" in asked  # the glossary so far, to keep
    again = load_story(edition)
    assert [p.caption for p in again.panels] == ["It snowed.", "She smiled happily.", "The End, by hand."]


def test_a_bubble_too_long_is_sent_back_once_then_set_smaller(chat, story, tmp_path, capsys):
    long = "Hello, little fox, " * 6 + "how are you?"
    chat.add(Say(reply({**ENGLISH, 2: {"caption": "She smiled.", "dialogue": [long]}})),
             Say(reply({2: {"caption": "She smiled.", "dialogue": ["Hi, fox!"]}})))
    assert translate(chat, story) == 0
    out, err = capsys.readouterr()
    assert out == f"en: translated 3 panels, 1 shortened to fit → {tmp_path / 'fox.en.yaml'}\n"
    assert err.splitlines()[-1] == "1 text does not fit; asking qwen-plus to shorten it..."
    shorten = chat.requests[1].body["messages"][1]["content"]
    assert "panel 2: bubble 1" in shorten and long in shorten
    assert load_story(tmp_path / "fox.en.yaml").panels[1].dialogue[0].text == "Hi, fox!"

    # Still too long after the second answer: the page sets it smaller, and says so.
    (tmp_path / "fox.en.yaml").unlink()
    chat.add(Say(reply({**ENGLISH, 2: {"caption": "She smiled.", "dialogue": [long]}})),
             Say(reply({2: {"caption": "She smiled.", "dialogue": [long]}})))
    assert translate(chat, story) == 0
    out, _ = capsys.readouterr()
    assert out == (f"en: translated 3 panels, 1 shortened to fit, 1 set smaller (panel 2 bubble 1) → "
                   f"{tmp_path / 'fox.en.yaml'}\n")
    built = storyboard.build(tmp_path / "fox.en.yaml", tmp_path / "out", renderer="draft")
    page = built.index_html.read_text(encoding="utf-8")
    assert long in page  # the whole text: set smaller, not cut


@pytest.mark.parametrize(("edition", "expected"), [
    ("edition_of: nowhere.yaml\nlanguage: en\ntitle: x\npanels: []\n",
     "fox.en.yaml:1: edition_of: nowhere.yaml is not a story file next to this edition ({dir}/nowhere.yaml does "
     "not exist)"),
    ("edition_of: fox.yaml\nlanguage: en\ntitle: x\npanels:\n  - caption: a\n    prompt: a dog\n",
     "fox.en.yaml:6: panels[0].prompt: an edition holds text only (caption, narration, dialogue); prompt comes from "
     "the story it translates"),
    ("edition_of: fox.yaml\nlanguage: english\ntitle: x\npanels: []\n",
     "fox.en.yaml:2: language: expected a language code such as 'en', 'zh' or 'pt-BR', got 'english'"),
    ("edition_of: fox.yaml\nlanguage: en\ntitle: x\npanels:\n  - caption: a\n",
     "fox.en.yaml: panels: the edition has 1 panels and fox.yaml has 3: add panels 2 to 3 (`storyboard translate` "
     "fills what is missing)"),
])
def test_bad_editions_get_one_line(story, tmp_path, capsys, edition, expected):
    path = tmp_path / "fox.en.yaml"
    path.write_text(edition, encoding="utf-8")
    assert main(["build", str(path), "--renderer", "draft", "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"Error: {tmp_path}/{expected.format(dir=tmp_path)}\n"


def test_an_unknown_language_code_is_one_line(chat, story, capsys):
    assert main(["translate", str(story), "--to", "english", "--provider", "openai", "--base-url", chat.openai_url,
                 "--model", "m"]) == 1
    assert capsys.readouterr().err == "Error: --to: 'english' is not a language code such as 'en', 'ja' or 'pt-BR'\n"
    assert chat.requests == []


def test_an_editions_epub_passes_epubcheck_in_its_language(chat, story, tmp_path, monkeypatch):
    from test_readers import check_epub

    monkeypatch.chdir(tmp_path)
    chat.add(Say(reply(ENGLISH)))
    assert translate(chat, story) == 0
    storyboard.build(story, renderer="draft")
    built = storyboard.build(tmp_path / "fox.en.yaml", renderer="draft")
    (epub,) = export_built(Built.of(built), choose_formats("epub", built.story))
    check_epub(epub.path)
    with zipfile.ZipFile(epub.path) as book:
        assert "<dc:language>en</dc:language>" in book.read("EPUB/package.opf").decode("utf-8")
        assert "Hello, little fox." in book.read("EPUB/page-001.xhtml").decode("utf-8")


def test_an_edition_saved_while_it_is_translated_is_left_as_saved(chat, story, tmp_path, capsys):
    chat.add(Say(reply(ENGLISH)))
    assert translate(chat, story) == 0
    edition = tmp_path / "fox.en.yaml"
    story.write_text(STORY.replace("完。", "结束。"), encoding="utf-8")
    saved = edition.read_text(encoding="utf-8").replace("The end.", "The End, by hand.")
    chat.add(Say(reply({3: {"caption": "Finished.", "dialogue": []}}),
                 before=lambda: edition.write_text(saved, encoding="utf-8")))
    assert translate(chat, story) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"Error: {edition} changed while it was being translated; nothing was written, run `storyboard translate` "
        "again")
    assert edition.read_text(encoding="utf-8") == saved
