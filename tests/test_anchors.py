"""Character anchors: drawn once per character, keyed like panels, read by the panels that list the character."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from storyboard.building import build, panel_key
from storyboard.cli import main
from storyboard.errors import StoryError
from storyboard.resolve import anchor_seed, content_key, resolve, resolve_anchors
from storyboard.story import story_from_yaml

STORY = """
title: Anchors
style:
  prefix: ink drawing
characters:
  fox: a small red fox
  prince:
    description: a boy with a yellow scarf
    seed: 4242
    anchor: head and shoulders, plain background
  rose: a red rose
render:
  width: 64
  height: 64
  seed: 7
panels:
  - prompt: a field at dawn
  - prompt: the fox in the grass
    characters: [fox]
  - prompt: the prince meets the fox
    characters: [prince, fox]
  - prompt: the prince alone
    characters: [prince]
"""


@pytest.fixture
def story(write_story) -> Path:
    return write_story(STORY)


def drawn(renderer) -> list[str]:
    return [job.label for job in renderer.drawn]


def test_anchors_are_drawn_once_listed_in_the_manifest_and_published(story, small_renderer, tmp_path):
    out = tmp_path / "out"
    result = build(story, out, renderer=small_renderer)
    # rose is defined but no panel lists it: no anchor. Anchors come first, in the order characters are defined.
    assert drawn(small_renderer) == ["fox (anchor)", "prince (anchor)", "panel 1", "panel 2", "panel 3", "panel 4"]
    assert (result.rendered, result.anchors_rendered) == (4, 2)
    manifest = json.loads((out / "manifest.json").read_text())
    fox, prince = manifest["characters"]
    assert fox == {"name": "fox", "file": "characters/fox.png", "key": result.characters[0].key,
                   "seed": 2003612461, "prompt": "ink drawing, a small red fox, full body, "
                   "front view, standing, plain light background", "rendered": True}
    assert prince["seed"] == 4242
    assert prince["prompt"] == "ink drawing, a boy with a yellow scarf, head and shoulders, plain background"
    assert [p["characters"] for p in manifest["panels"]] == [[], ["fox"], ["prince", "fox"], ["prince"]]
    assert manifest["panels"][2]["references"] == {"prince": prince["key"], "fox": fox["key"]}
    assert "references" not in manifest["panels"][0]
    assert (out / "characters" / "fox.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    small_renderer.drawn.clear()
    again = build(story, out, renderer=small_renderer)
    assert small_renderer.drawn == [] and again.anchors_rendered == 0


def test_panels_read_their_anchors_and_panels_without_characters_do_not(story, small_renderer, tmp_path):
    build(story, tmp_path / "ref", renderer=small_renderer)
    none = story.with_name("none.yaml")
    none.write_text(story.read_text().replace("  seed: 7\n", "  seed: 7\n  consistency: none\n"))
    result = build(none, tmp_path / "none", renderer=small_renderer)
    assert result.characters == [] and not (tmp_path / "none" / "characters").exists()
    ref = [Image.open(tmp_path / "ref" / f"panels/panel-0{i}.png").tobytes() for i in range(1, 5)]
    plain = [Image.open(tmp_path / "none" / f"panels/panel-0{i}.png").tobytes() for i in range(1, 5)]
    assert ref[0] == plain[0]
    assert all(ref[i] != plain[i] for i in (1, 2, 3))


def test_editing_a_character_redraws_its_anchor_and_exactly_its_panels(story, small_renderer, tmp_path):
    out = tmp_path / "out"
    build(story, out, renderer=small_renderer)
    small_renderer.drawn.clear()
    story.write_text(story.read_text().replace("a small red fox", "a small grey fox"))
    build(story, out, renderer=small_renderer)
    assert drawn(small_renderer) == ["fox (anchor)", "panel 2", "panel 3"]

    # Undo the edit: everything comes back from the cache.
    small_renderer.drawn.clear()
    story.write_text(story.read_text().replace("a small grey fox", "a small red fox"))
    result = build(story, out, renderer=small_renderer)
    assert small_renderer.drawn == [] and result.rendered == 0


def test_an_anchor_seed_or_framing_edit_redraws_the_panels_that_read_it(story, small_renderer, tmp_path):
    out = tmp_path / "out"
    build(story, out, renderer=small_renderer)
    small_renderer.drawn.clear()
    story.write_text(story.read_text().replace("seed: 4242", "seed: 4243"))
    build(story, out, renderer=small_renderer)
    # The prince's description did not change, so only his anchor's key and through it his panels' keys did.
    assert drawn(small_renderer) == ["prince (anchor)", "panel 3", "panel 4"]


def test_panel_option_draws_missing_anchors_and_equals_the_full_build(story, small_renderer, tmp_path):
    build(story, tmp_path / "full", renderer=small_renderer)
    small_renderer.drawn.clear()
    result = build(story, tmp_path / "alone", renderer=small_renderer, panels=[3])
    # A fresh folder: panel 3's anchors are drawn, and every other panel too (nothing is cached there).
    assert drawn(small_renderer)[:2] == ["fox (anchor)", "prince (anchor)"]
    assert result.panels[2].key == build(story, tmp_path / "full", renderer=small_renderer).panels[2].key
    assert Image.open(tmp_path / "alone/panels/panel-03.png").tobytes() == \
        Image.open(tmp_path / "full/panels/panel-03.png").tobytes()

    small_renderer.drawn.clear()
    build(story, tmp_path / "full", renderer=small_renderer, panels=[3])
    assert drawn(small_renderer) == ["panel 3"]  # its anchors come from the cache


def test_force_redraws_anchors_too(story, small_renderer, tmp_path):
    build(story, tmp_path / "out", renderer=small_renderer)
    small_renderer.drawn.clear()
    build(story, tmp_path / "out", renderer=small_renderer, force=True)
    assert len(small_renderer.drawn) == 6


def test_a_removed_character_loses_its_anchor_file(story, small_renderer, tmp_path):
    out = tmp_path / "out"
    build(story, out, renderer=small_renderer)
    story.write_text(story.read_text().replace("    characters: [prince, fox]\n", "").replace(
        "    characters: [prince]\n", ""))
    result = build(story, out, renderer=small_renderer)
    assert [c.job.character for c in result.characters] == ["fox"]
    assert sorted(p.name for p in (out / "characters").iterdir()) == ["fox.png"]


def test_file_names_are_safe_and_distinct(write_story, small_renderer, tmp_path):
    path = write_story("""
        title: Names
        characters:
          "Little Prince": a boy
          "little/prince": another boy
          小王子: a third boy
        render: {width: 64, height: 64}
        panels:
          - prompt: all three
            characters: ["Little Prince", "little/prince", 小王子]
        """)
    result = build(path, tmp_path / "out", renderer="draft")
    assert [c.job.file for c in result.characters] == [
        "characters/little-prince.png", "characters/little-prince-2.png", "characters/小王子.png"]
    assert all((tmp_path / "out" / c.job.file).is_file() for c in result.characters)


# --------------------------------------------------------------------------- your own reference picture


def picture(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (80, 120)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def with_picture(story: Path, image: str) -> None:
    story.write_text(story.read_text().replace("    seed: 4242\n", f"    seed: 4242\n    image: {image}\n"))


def test_a_reference_picture_replaces_the_drawn_anchor_and_is_keyed_by_its_bytes(story, small_renderer, tmp_path):
    picture(story.parent / "refs" / "prince.png", (10, 200, 30))
    with_picture(story, "refs/prince.png")
    out = tmp_path / "out"
    result = build(story, out, renderer=small_renderer)
    assert "prince (anchor)" not in drawn(small_renderer)
    published = Image.open(out / "characters" / "prince.png")
    assert published.size == (64, 64) and published.getpixel((10, 10)) == (10, 200, 30)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["characters"][1]["image"] == "refs/prince.png"
    assert result.characters[1].rendered  # it was put into the cache by this build

    small_renderer.drawn.clear()
    build(story, out, renderer=small_renderer)
    assert small_renderer.drawn == []

    picture(story.parent / "refs" / "prince.png", (200, 10, 30))  # same file name, new bytes
    small_renderer.drawn.clear()
    build(story, out, renderer=small_renderer)
    assert drawn(small_renderer) == ["panel 3", "panel 4"]


@pytest.mark.parametrize("make, problem", [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(parents=True), "it is a folder"),
    (lambda p: (p.parent.mkdir(parents=True), p.write_text("not a picture")), "not an image Pillow can read"),
    (lambda p: (p.parent.mkdir(parents=True), p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)),
     "not an image Pillow can read"),
    (lambda p: (p.parent.mkdir(parents=True), os.mkfifo(p)), "not a regular file (a pipe or a device?)"),
    (lambda p: (p.parent.mkdir(parents=True), p.symlink_to(p)), "a loop of symbolic links"),
    (lambda p: (p.parent.mkdir(parents=True), Image.new("1", (12_000, 16_000)).save(p)),
     f"it has more than {Image.MAX_IMAGE_PIXELS} pixels"),
])
def test_a_bad_reference_picture_is_one_line_naming_file_and_character(story, tmp_path, capsys, make, problem):
    make(story.parent / "refs" / "prince.png")
    with_picture(story, "refs/prince.png")
    out = tmp_path / "out"
    assert main(["build", str(story), "--renderer", "draft", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == (f"Error: {story}: characters.prince.image: cannot use {story.parent}/refs/prince.png as the "
                   f"reference picture of 'prince': {problem}\n")
    assert not out.exists()


# --------------------------------------------------------------------------- keys


def test_a_panel_without_anchors_keeps_the_key_it_always_had():
    story = story_from_yaml("""
        title: Pinned
        style: {prefix: "ink drawing", negative: "blurry"}
        characters:
          fox: a small red fox
        render: {width: 64, height: 64, seed: 7}
        panels:
          - prompt: a field at dawn
          - prompt: the fox in the grass
            characters: [fox]
        """.replace("\n        ", "\n"))
    identity = {"renderer": "small", "version": "1"}
    first, second = resolve(story)
    # These values were produced before anchors existed; a change here silently invalidates every user's cache.
    assert panel_key(first, "small", identity) == "1ce1e4446d96a51eab8b44ea995965e28c493dc01d0a629e72d69a1b96880bbc"
    assert second.references == ("fox",)
    none = story.model_copy(update={"render": story.render.model_copy(update={"consistency": "none"})})
    assert panel_key(resolve(none)[1], "small", identity) == \
        "d766bfae6284f105978410efaf5d7fc8e55e8cbe12ee151310bd1364638dae4a"
    anchor = resolve_anchors(story)[0]
    assert panel_key(second, "small", identity, ["a" * 64]) != panel_key(second, "small", identity, ["b" * 64])
    assert panel_key(anchor, "small", identity) == "56037c8d8fd75d25086372c5f945ea271c9e975ca4a5c98591b8b9cb4599ecf7"


def test_anchor_seeds_are_derived_from_the_story_seed_and_the_name_alone():
    def seeds(characters: str, seed: int = 7) -> dict[str, int]:
        story = story_from_yaml(f"title: S\ncharacters: {{{characters}}}\nrender: {{seed: {seed}}}\n"
                                "panels: [{prompt: p, characters: [fox, rose]}]\n")
        return {name: anchor_seed(story, name) for name in ("fox", "rose")}

    # Made by the code that keys users' anchors: a different value here redraws every character.
    assert seeds("fox: a fox, rose: a rose") == {"fox": 2003612461, "rose": 1636656705}
    assert seeds("rose: a rose, owl: an owl, fox: a fox") == {"fox": 2003612461, "rose": 1636656705}
    assert seeds("fox: a fox, rose: a rose", seed=18446744073709551615)["fox"] == 2003612453  # wraps past the top
    assert seeds("fox: a fox, rose: {description: a rose, seed: 5}")["rose"] == 5


def test_content_key_refuses_values_it_cannot_serialise():
    assert content_key({"a": [1, "x", None, True, 1.5]}) == \
        "b40a9aebbe06f09d7f23f2e6e89edcbb0cafb30b65ba46d9f6e4b866b2e41397"
    with pytest.raises(TypeError):
        content_key({"path": Path("/tmp")})


def test_consistency_settings_are_checked(write_story, capsys):
    path = write_story("title: S\nrender: {consistency: ip_adapter}\npanels: [{prompt: p}]\n")
    assert main(["build", str(path), "--renderer", "draft"]) == 1
    assert capsys.readouterr().err == (
        f"Error: {path}:2: render.ip_adapter: consistency: ip_adapter needs render.ip_adapter: the IP-Adapter weights "
        "(e.g. h94/IP-Adapter/models/ip-adapter_sd15.safetensors or a local file)\n")
    path = write_story("title: S\nrender: {consistency_strength: 1.5}\npanels: [{prompt: p}]\n")
    assert main(["build", str(path), "--renderer", "draft"]) == 1
    assert capsys.readouterr().err == (
        f"Error: {path}:2: render.consistency_strength: input should be less than or equal to 1 (got 1.5)\n")
    with pytest.raises(StoryError):
        story_from_yaml("title: S\ncharacters: {fox: {descripton: a fox}}\npanels: [{prompt: p}]\n")


def test_info_describes_an_anchor_and_a_panel_that_reads_one(story, tmp_path, capsys):
    out = tmp_path / "out"
    build(story, out, renderer="draft")
    assert main(["info", str(out / "characters" / "fox.png")]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{out}/characters/fox.png: anchor portrait of 'fox' of \"Anchors\" ({story})\n")
    assert f"storyboard build {story} --out {out} --renderer draft --force" in text
    assert main(["info", str(out / "panels" / "panel-03.png")]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    fox, prince = (c["key"] for c in manifest["characters"])
    assert f"anchors:    prince ({prince}), fox ({fox})\n" in capsys.readouterr().out


def test_the_cast_strip_follows_the_anchors(story, small_renderer, tmp_path):
    out = tmp_path / "out"
    first = build(story, out, renderer=small_renderer)
    page = (out / "page.png").read_bytes()
    html = (out / "index.html").read_text(encoding="utf-8")
    assert 'characters/fox.png' in html and 'characters/prince.png' in html
    story.write_text(story.read_text().replace("seed: 4242", "seed: 4243"))
    second = build(story, out, renderer=small_renderer)
    assert second.page_key != first.page_key and (out / "page.png").read_bytes() != page
