"""`variants` draws candidate seeds for one panel through the build cache; `pick` keeps one in the YAML."""

from __future__ import annotations

import difflib
import json
import textwrap

import pytest
from PIL import Image

from storyboard.building import build, variants
from storyboard.cli import main

STORY = """\
# The lighthouse, in three panels.
title: The lighthouse   # shown above the page
render:
  width: 64
  height: 64
  steps: 2
  seed: 500

panels:
  # The keeper, seen close.
  - prompt: "close-up of a keeper"
    caption: The keeper
  - prompt: 'wide shot of the lighthouse'   # try a few seeds for this one
    caption: "The lighthouse"

  - {prompt: a gull over the sea, seed: 9}
"""


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_variants_draw_candidates_and_a_contact_sheet_without_touching_the_page(tmp_path, small_renderer):
    story = tmp_path / "story.yaml"
    story.write_text(STORY)
    out = tmp_path / "out"
    build(story, out, renderer=small_renderer)
    page_files = {name: v for name, v in snapshot(out).items() if not name.startswith(("cache", "variants", "."))}
    small_renderer.drawn.clear()

    result = variants(story, 2, 4, out_dir=out, renderer=small_renderer)

    assert result.seeds == [501, 502, 503, 504]
    assert (result.rendered, result.reused) == (3, 1)  # the current seed's picture came from the cache
    assert [(job.index, job.seed) for job in small_renderer.drawn] == [(2, 502), (2, 503), (2, 504)]
    folder = out / "variants" / "panel-02"
    assert sorted(p.name for p in folder.iterdir()) == ["contact-sheet.png", "seed-501.png", "seed-502.png",
                                                        "seed-503.png", "seed-504.png"]
    with Image.open(folder / "seed-501.png") as current, Image.open(out / "panels" / "panel-02.png") as panel:
        assert current.tobytes() == panel.tobytes()
    with Image.open(folder / "contact-sheet.png") as sheet:
        assert sheet.width > 4 * 64 and sheet.height > 64
    record = json.loads(Image.open(folder / "seed-503.png").text["storyboard"])
    assert (record["variant"], record["story"]["panel"], record["job"]["seed"]) == (True, 2, 503)
    after = {name: v for name, v in snapshot(out).items() if not name.startswith(("cache", "variants", "."))}
    assert after == page_files


def test_pick_writes_only_that_seed_and_the_next_build_reuses_the_candidate(tmp_path, small_renderer, capsys):
    story = tmp_path / "story.yaml"
    story.write_text(STORY)
    out = tmp_path / "out"
    assert main(["variants", str(story), "--panel", "2", "--count", "3", "--seed-start", "7000", "--out", str(out),
                 "--renderer", "small"]) == 0
    assert capsys.readouterr().out == textwrap.dedent(f"""\
        rendered 3, reused 0 (small renderer)
        wrote {out}/variants/panel-02/contact-sheet.png and 3 candidates (seeds 7000-7002) in {out}/variants/panel-02
        keep one: storyboard pick {story} --panel 2 --seed <seed>
        """)

    assert main(["pick", str(story), "--panel", "2", "--seed", "7001"]) == 0
    assert capsys.readouterr().out == f"{story}: panel 2 seed 501 -> 7001\nnext: storyboard build {story}\n"
    diff = [line for line in difflib.unified_diff(STORY.splitlines(), story.read_text().splitlines(), lineterm="",
                                                  n=0) if not line.startswith(("---", "+++", "@@"))]
    assert diff == ["+    seed: 7001"]
    assert story.read_text().replace("    seed: 7001\n", "") == STORY

    small_renderer.drawn.clear()
    result = build(story, out, renderer=small_renderer)
    assert [job.index for job in small_renderer.drawn] == [1, 3]  # never built before; panel 2 was a candidate
    assert [p.rendered for p in result.panels] == [True, False, True]
    with Image.open(out / "variants" / "panel-02" / "seed-7001.png") as chosen, \
            Image.open(out / "panels" / "panel-02.png") as panel:
        assert chosen.tobytes() == panel.tobytes()


def test_after_a_build_pick_and_rebuild_renders_nothing(tmp_path, small_renderer):
    story = tmp_path / "story.yaml"
    story.write_text(STORY)
    out = tmp_path / "out"
    build(story, out, renderer=small_renderer)
    variants(story, 3, 2, out_dir=out, renderer=small_renderer)
    main(["pick", str(story), "--panel", "3", "--seed", "10"])
    assert story.read_text() == STORY.replace("seed: 9}", "seed: 10}")
    small_renderer.drawn.clear()
    result = build(story, out, renderer=small_renderer)
    assert (result.rendered, result.reused, small_renderer.drawn) == (0, 3, [])


def test_pick_changes_an_existing_seed_line_in_place(write_story, capsys):
    story = write_story(STORY.replace('    caption: The keeper\n', '    caption: The keeper\n    seed: 12  # nice\n'))
    original = story.read_text()
    assert main(["pick", str(story), "--panel", "1", "--seed", "13"]) == 0
    assert story.read_text() == original.replace("seed: 12  # nice", "seed: 13  # nice")
    assert capsys.readouterr().out.startswith(f"{story}: panel 1 seed 12 -> 13\n")



def test_pick_through_a_symlink_edits_the_story_it_points_to_and_keeps_the_link(tmp_path, capsys):
    (tmp_path / "stories").mkdir()
    real = tmp_path / "stories" / "story.yaml"
    real.write_text("title: T\npanels:\n  - prompt: x\n")
    link = tmp_path / "story.yaml"
    link.symlink_to(real)
    assert main(["pick", str(link), "--panel", "1", "--seed", "41"]) == 0
    assert link.is_symlink() and link.resolve() == real
    assert real.read_text() == "title: T\npanels:\n  - prompt: x\n    seed: 41\n"


def test_pick_keeps_the_story_files_permissions(write_story):
    story = write_story(STORY)
    story.chmod(0o600)
    assert main(["pick", str(story), "--panel", "1", "--seed", "41"]) == 0
    assert story.stat().st_mode & 0o777 == 0o600


def test_pick_refuses_a_panel_that_is_an_alias_of_another(write_story, capsys):
    story = write_story("title: T\npanels:\n  - &first {prompt: x}\n  - prompt: y\n  - *first\n")
    original = story.read_bytes()
    assert main(["pick", str(story), "--panel", "3", "--seed", "7"]) == 1
    assert capsys.readouterr().err == (
        f"Error: {story}:3: panels[2]: panels 1 and 3 are one YAML mapping (an anchor and its alias), so a seed "
        "set on one would change both; write panel 3 out in full first\n")
    assert story.read_bytes() == original


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_pick_keeps_crlf_line_endings_and_a_bom(tmp_path, capsys, bom):
    story = tmp_path / "story.yaml"
    original = bom + b"title: T  # mine\r\npanels:\r\n  - prompt: x  # first\r\n  - prompt: y\r\n    seed: 3\r\n"
    story.write_bytes(original)
    assert main(["pick", str(story), "--panel", "1", "--seed", "41"]) == 0
    assert main(["pick", str(story), "--panel", "2", "--seed", "42"]) == 0
    assert story.read_bytes() == original.replace(b"# first\r\n", b"# first\r\n    seed: 41\r\n").replace(
        b"seed: 3\r\n", b"seed: 42\r\n")


@pytest.mark.parametrize("args, message", [
    (["pick", "{story}", "--panel", "4", "--seed", "1"],
     "{story}: there is no panel 4; the story has 3 panels (choose 1 to 3)"),
    (["pick", "{story}", "--panel", "1", "--seed", "-5"],
     "{story}: panels[0].seed: must be between 0 and 18446744073709551615 (got -5)"),
    (["variants", "{story}", "--panel", "0", "--count", "2"],
     "{story}: there is no panel 0; the story has 3 panels (choose 1 to 3)"),
    (["variants", "{story}", "--panel", "1", "--count", "0"], "--count must be between 1 and 100 (got 0)"),
    (["variants", "{story}", "--panel", "1", "--seed-start", "-5"],
     "--seed-start -5 with --count 4 gives seeds -5 to -2; seeds lie between 0 and 18446744073709551615"),
])
def test_bad_panel_seed_or_count_is_one_clear_error_and_changes_nothing(write_story, capsys, monkeypatch, args,
                                                                       message):
    story = write_story(STORY)
    monkeypatch.chdir(story.parent)
    assert main([a.format(story=story) for a in args]) == 1
    assert capsys.readouterr().err == f"Error: {message.format(story=story)}\n"
    assert story.read_text() == STORY
    assert not (story.parent / "build").exists()


def test_info_on_a_candidate_says_how_to_draw_it_and_how_to_use_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "story.yaml").write_text(STORY)
    assert main(["variants", "story.yaml", "--panel", "1", "--count", "2", "--renderer", "draft"]) == 0
    capsys.readouterr()
    assert main(["info", "build/story/variants/panel-01/seed-501.png"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('build/story/variants/panel-01/seed-501.png: candidate for panel 1 of "The lighthouse" '
                          "(story.yaml)\n")
    assert "\nseed:       501\n" in out
    assert out.endswith(
        "\nto draw it again:\n"
        "  storyboard variants story.yaml --panel 1 --count 1 --seed-start 501 --renderer draft\n"
        "\nto use it for panel 1:\n"
        "  storyboard pick story.yaml --panel 1 --seed 501\n"
        "  storyboard build story.yaml --renderer draft\n")
