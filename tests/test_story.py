from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from storyboard import StoryError, load_story
from storyboard.story import MAX_SEED, dump_document, load_document

LITTLE_PRINCE = Path(__file__).resolve().parent.parent / "stories" / "little_prince.yaml"


def error_of(path) -> str:
    with pytest.raises(StoryError) as info:
        load_story(path)
    return str(info.value)


def test_loads_minimal_story_with_defaults(minimal_story):
    story = load_story(minimal_story)
    assert story.title == "Test story"
    assert story.language == "en"
    assert story.render.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert (story.render.width, story.render.height, story.render.seed) == (64, 64, 10)
    assert story.layout.columns == 4
    assert [p.prompt for p in story.panels] == ["close-up of a red apple", "wide shot of a green field"]


def test_little_prince_story_is_valid():
    story = load_story(LITTLE_PRINCE)
    assert story.title == "小王子"
    assert len(story.panels) == 8
    assert set(story.characters) == {"little prince", "pilot", "fox", "rose"}
    assert all(p.caption for p in story.panels)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title: x\npanels:\n  - prompt: a\n    promt: b\n",
         "story.yaml:4: panels[0].promt: unknown field (did you mean 'prompt'?)"),
        ("title: x\npanels: [\n", "story.yaml:3: invalid YAML: expected the node content, but found '<stream end>'"),
        ("", "story.yaml: the file is empty; a story needs at least 'title' and 'panels'"),
        ("# only a comment\n",
         "story.yaml: the file holds no YAML values; a story needs at least 'title' and 'panels'"),
        ("title: x\npanels: []\n", "story.yaml:2: panels: a story needs at least one panel"),
        ("title: x\n", "story.yaml:1: panels: required field is missing"),
        ("panels:\n  - prompt: a\n", "story.yaml:1: title: required field is missing"),
        ("title: x\npanels:\n  - prompt: '  '\n",
         "story.yaml:3: panels[0].prompt: must not be empty: describe what the panel shows"),
        ("title: x\ncharacters:\n  pilot: a man\npanels:\n  - prompt: a\n    characters: [pilot, fox]\n",
         "story.yaml:6: panels[0].characters[1]: character 'fox' is not defined under 'characters' (defined: 'pilot')"),
        ("title: x\ncharacters:\n  little prince: a boy\npanels:\n  - prompt: a\n    characters: [little prnce]\n",
         "story.yaml:6: panels[0].characters[0]: character 'little prnce' is not defined under 'characters' "
         "(did you mean 'little prince'?) (defined: 'little prince')"),
        ("title: x\nrender:\n  width: 500\npanels:\n  - prompt: a\n",
         "story.yaml:3: render.width: must be a multiple of 8 between 64 and 2048 (got 500)"),
        ("title: x\nrender:\n  height: 4096\npanels:\n  - prompt: a\n",
         "story.yaml:3: render.height: must be a multiple of 8 between 64 and 2048 (got 4096)"),
        ("title: x\nrender:\n  width: 32\npanels:\n  - prompt: a\n",
         "story.yaml:3: render.width: must be a multiple of 8 between 64 and 2048 (got 32)"),
        ("title: x\nrender:\n  seed: -1\npanels:\n  - prompt: a\n",
         "story.yaml:3: render.seed: must be 0 or more (got -1); storyboard always uses fixed seeds"),
        ("title: x\npanels:\n  - prompt: a\n    seed: -5\n",
         "story.yaml:4: panels[0].seed: must be 0 or more (got -5); storyboard always uses fixed seeds"),
        (f"title: x\nrender:\n  seed: {MAX_SEED}\npanels:\n  - prompt: a\n  - prompt: b\n",
         f"story.yaml:3: render.seed: seed + number of panels - 1 must stay at most {MAX_SEED}"),
        ("title: x\npanels: hello\n", "story.yaml:2: panels: expected a list, got text ('hello')"),
        ("title: x\npanels:\n  - a prompt\n",
         "story.yaml:3: panels[0]: expected a mapping of fields, got text ('a prompt')"),
        ("title: x\nrender:\n  steps: many\npanels:\n  - prompt: a\n",
         "story.yaml:3: render.steps: expected a whole number, got text ('many')"),
        ("title: x\nrender:\n  steps: 2.5\npanels:\n  - prompt: a\n",
         "story.yaml:3: render.steps: expected a whole number, got a number (2.5)"),
        ("title: x\nrender:\n  seed: true\npanels:\n  - prompt: a\n",
         "story.yaml:3: render.seed: expected a whole number, got a boolean (true)"),
        ("title: x\nrender: 5\npanels:\n  - prompt: a\n",
         "story.yaml:2: render: expected a mapping of fields, got a whole number (5)"),
        ("title: x\npanels:\n  - prompt: 42\n",
         "story.yaml:3: panels[0].prompt: expected text, got a whole number (42) (put quotes around it)"),
        ("- a\n- b\n", "story.yaml:1: expected a mapping of story fields (title:, panels:, ...), got a list"),
        ("title: x\ntitle: y\npanels:\n  - prompt: a\n",
         'story.yaml:2: invalid YAML: found duplicate key "title" with value "y" (original value: "x")'),
        ("title: x\ncaption: hi\npanels:\n  - prompt: a\n",
         "story.yaml:2: caption: unknown field (allowed: title, medium, language, outline, style, characters, render, "
         "layout, planned_by, animatic, panels)"),
        ("title: x\nlanguage: chinese\npanels:\n  - prompt: a\n",
         "story.yaml:2: language: expected a language code such as 'en', 'zh' or 'pt-BR', got 'chinese'"),
        ("title: x\nlayout:\n  columns: 0\npanels:\n  - prompt: a\n",
         "story.yaml:3: layout.columns: input should be greater than or equal to 1 (got 0)"),
        ("title: x\nstyle:\n  prefx: pastel\npanels:\n  - prompt: a\n",
         "story.yaml:3: style.prefx: unknown field (did you mean 'prefix'?)"),
        ("title: x\npanels:\n  - prompt: a\n    promt: b\n  - prompt: ''\n",
         "story.yaml:4: panels[0].promt: unknown field (did you mean 'prompt'?) (and 1 more problem)"),
    ],
)
def test_bad_stories_get_one_precise_line(write_story, text, expected):
    path = write_story(text)
    message = error_of(path)
    assert message == f"{path.parent}/{expected}"
    assert "\n" not in message


def test_missing_file_and_folder(tmp_path):
    assert error_of(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: no such file"
    assert error_of(tmp_path) == f"{tmp_path}: is a folder, not a story file"


def test_encodings(tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("title: café\npanels:\n  - prompt: a\n".encode("latin-1"))
    assert error_of(latin1) == f"{latin1}:1: is not UTF-8 text (byte 0xe9); save it as UTF-8"
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes("title: x\n".encode("utf-16"))
    assert error_of(utf16) == f"{utf16}: is UTF-16; save it as UTF-8"
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbftitle: x\npanels:\n  - prompt: a\n")
    assert load_story(bom).title == "x"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_endless_file_is_refused_without_reading_it(tmp_path):
    endless = tmp_path / "story.yaml"
    endless.symlink_to("/dev/zero")  # no size to check up front, and no end
    assert error_of(endless) == f"{endless}: cannot read: not a regular file (a pipe or a device?)"


def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "story.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert error_of(fifo) == f"{fifo}: cannot read: not a regular file (a pipe or a device?)"
    assert time.monotonic() - started < 5


def test_a_loop_of_links_and_a_nul_in_the_path_are_one_line(tmp_path):
    loop = tmp_path / "story.yaml"
    loop.symlink_to(loop)
    assert error_of(loop) == f"{loop}: cannot read: a loop of symbolic links"
    nul = f"{tmp_path}/sto\x00ry.yaml"
    assert error_of(nul).endswith("cannot read: the path holds a NUL character")


def test_alias_bomb_is_refused_quickly(write_story):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = write_story("\n".join(lines) + "\ntitle: x\npanels:\n  - prompt: a\n")
    assert error_of(path) == f"{path}: YAML expands to more than 100000 values (nested aliases?)"


def test_deep_nesting_is_refused(write_story):
    path = write_story("title: x\npanels: " + "[" * 3000 + "]" * 3000 + "\n")
    assert error_of(path) == f"{path}: YAML nested too deeply (more than 50 levels)"


def test_harmless_aliases_are_fine(write_story):
    path = write_story("""
        title: x
        characters:
          fox: &fox a small red fox
          twin: *fox
        panels:
          - prompt: a
            characters: [fox, twin]
    """)
    assert load_story(path).characters["twin"].description == "a small red fox"


def test_round_trip_is_byte_identical():
    document = load_document(LITTLE_PRINCE)
    assert dump_document(document) == LITTLE_PRINCE.read_text(encoding="utf-8")


def test_an_alias_bomb_before_a_duplicate_key_is_refused_before_it_expands(write_story):
    # The duplicate key's own message would show the aliased value expanded: 9**9 values.
    lines = ['title: x', 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = write_story("\n".join([*lines, "outline: *a8", "outline: x", "panels: [{prompt: a}]"]) + "\n")
    started = time.monotonic()
    assert error_of(path) == f"{path}: YAML expands to more than 100000 values (nested aliases?)"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("key", ["bad\nkey", "bad\rkey", "bad\u2028key", "Error: forged\nError: x"])
def test_an_error_line_is_one_line_whatever_the_file_holds(write_story, key):
    path = write_story(f"title: x\n{json.dumps(key)}: 1\npanels: [{{prompt: a}}]\n")
    message = error_of(path)
    assert message.splitlines() == [message]
    assert "unknown field" in message


@pytest.mark.parametrize("field", ["language", "render:\n  scheduler"])
def test_a_huge_value_is_never_echoed_whole(write_story, field):
    path = write_story(f"title: x\n{field}: {'k' * 100_000}\npanels: [{{prompt: a}}]\n")
    message = error_of(path)
    assert len(message) <= 1100 and message.splitlines() == [message]


@pytest.mark.parametrize("characters, problem", [
    ('{"": a}', "a character's name must not be empty"),
    ('{"a\\nb": a}', "a character's name must not hold line breaks or other control characters (got 'a\\nb')"),
    ("{" + "x" * 300 + ": a}", "a character's name must be at most 100 characters (got 300)"),
])
def test_names_that_cannot_name_a_file_or_a_speaker_are_refused(write_story, characters, problem):
    path = write_story(f"title: x\ncharacters: {characters}\npanels: [{{prompt: a}}]\n")
    assert error_of(path) == f"{path}:2: characters: {problem}"


def test_limits_a_real_story_never_reaches_are_one_line(write_story):
    path = write_story("title: " + "t" * 400 + "\npanels: [{prompt: a}]\n")
    assert error_of(path) == f"{path}:1: title: must be at most 300 characters (got 400)"
    path = write_story("title: x\npanels:\n" + "  - {prompt: a}\n" * 1001)
    assert error_of(path) == f"{path}:2: panels: a story has at most 1000 panels (got 1001)"
    path = write_story("title: x\npanels: [{prompt: a, dialogue: [{text: " + "w" * 5000 + "}]}]\n")
    assert error_of(path) == f"{path}:2: panels[0].dialogue[0].text: must be at most 1000 characters (got 5000)"
