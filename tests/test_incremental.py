"""Incremental builds: only panels whose content key has no image are drawn; --panel and --force redraw."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from storyboard.building import build, panel_key
from storyboard.cli import main
from storyboard.errors import ModelNotFound
from storyboard.resolve import PanelJob


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and modification time (ns) of every file under `folder` but the build lock."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_editing_one_prompt_draws_exactly_that_panel_and_changes_only_its_files(eight_panel_story, small_renderer,
                                                                                 tmp_path):
    out = tmp_path / "out"
    first = build(eight_panel_story, out, renderer=small_renderer)
    assert (first.rendered, first.reused) == (8, 0)
    before = snapshot(out / "panels")
    cache_before = {p.name for p in (out / "cache").iterdir()}

    text = eight_panel_story.read_text()
    eight_panel_story.write_text(text.replace("scene number 5,", "scene number 5 at night,"))
    small_renderer.drawn.clear()
    second = build(eight_panel_story, out, renderer=small_renderer)

    assert [job.index for job in small_renderer.drawn] == [5]
    assert (second.rendered, second.reused) == (1, 7)
    after = snapshot(out / "panels")
    assert [name for name in before if after[name] != before[name]] == ["panel-05.png"]
    assert after["panel-05.png"][0] != before["panel-05.png"][0]
    new_cache = {p.name for p in (out / "cache").iterdir()} - cache_before
    assert new_cache == {f"{second.panels[4].key}.png"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["rendered"] for p in manifest["panels"]] == [i == 5 for i in range(1, 9)]


def test_no_change_rebuild_draws_nothing_and_rewrites_no_panel(eight_panel_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    build(eight_panel_story, out, renderer=small_renderer)
    before = snapshot(out)
    small_renderer.drawn.clear()
    result = build(eight_panel_story, out, renderer=small_renderer)
    assert small_renderer.drawn == []
    assert (result.rendered, result.reused) == (0, 8)
    after = snapshot(out)
    # Only the manifest changes: it now says no panel was rendered. The page is not even composed again.
    assert [name for name in after if after[name] != before.get(name)] == ["manifest.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert not any(p["rendered"] for p in manifest["panels"])
    build(eight_panel_story, out, renderer=small_renderer)
    assert snapshot(out) == after


def test_cli_summary_and_panel_option_redraw_only_the_named_panels(eight_panel_story, small_renderer, tmp_path,
                                                                   capsys):
    out = str(tmp_path / "out")
    assert main(["build", str(eight_panel_story), "--out", out, "--renderer", "small"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "rendered 8, reused 0 (small renderer)"
    log = tmp_path / "drawn.log"
    args = ["build", str(eight_panel_story), "--out", out, "--renderer", "small", "--panel", "3", "--panel", "7"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMALL_RENDERER_LOG", str(log))
        assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[0] == "rendered 2, reused 6 (small renderer)"
    assert log.read_text().split("\n")[:-1] == ["3 102", "7 106"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [p["index"] for p in manifest["panels"] if p["rendered"]] == [3, 7]


def test_force_redraws_every_panel(eight_panel_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    build(eight_panel_story, out, renderer=small_renderer)
    small_renderer.drawn.clear()
    result = build(eight_panel_story, out, renderer=small_renderer, force=True)
    assert [job.index for job in small_renderer.drawn] == list(range(1, 9))
    assert (result.rendered, result.reused) == (8, 0)


@pytest.mark.parametrize("number", ["0", "3", "-1"])
def test_panel_number_out_of_range_is_one_clear_error_and_writes_nothing(minimal_story, tmp_path, capsys, number):
    out = tmp_path / "out"
    code = main(["build", str(minimal_story), "--out", str(out), "--panel", number])
    assert code == 1
    assert capsys.readouterr().err == (f"Error: {minimal_story}: there is no panel {number}; the story has 2 panels "
                                       "(choose 1 to 2)\n")
    assert not out.exists()


def test_content_key_covers_everything_that_decides_the_pixels():
    job = PanelJob(index=1, prompt="a fox", negative_prompt="blurry", seed=1, width=512, height=512,
                   model="org/model", steps=25, guidance=7.5, caption="Hello", scene="a fox",
                   options=(("scheduler", "euler_a"),))
    identity = {"renderer": "sd", "version": "1", "model_commit": "abc", "scheduler": "EulerAncestral",
                "scheduler_config": {"timestep_spacing": "leading"}, "dtype": "float16", "device": "cuda"}
    key = panel_key(job, "sd", identity)
    changed_jobs = [dataclasses.replace(job, **change) for change in [
        {"prompt": "a fox at night"}, {"negative_prompt": ""}, {"seed": 2}, {"width": 768}, {"height": 768},
        {"model": "org/other"}, {"steps": 30}, {"guidance": 7.0}, {"options": (("scheduler", "dpmpp_2m"),)},
    ]]
    changed_identities = [{**identity, name: value} for name, value in [
        ("version", "2"), ("model_commit", "def"), ("scheduler", "DPMSolverMultistep"),
        ("scheduler_config", {"timestep_spacing": "trailing"}), ("dtype", "float32"), ("device", "mps"),
    ]]
    keys = [panel_key(j, "sd", identity) for j in changed_jobs]
    keys += [panel_key(job, "sd", i) for i in changed_identities]
    keys.append(panel_key(job, "other", identity))
    assert key not in keys and len(set(keys)) == len(keys)
    # What the renderer does not draw is not in the key: a new caption or panel position reuses the image.
    assert panel_key(dataclasses.replace(job, caption="Bye", index=4), "sd", identity) == key


def test_caption_edit_recomposes_the_page_without_drawing(eight_panel_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    build(eight_panel_story, out, renderer=small_renderer)
    page = (out / "page.png").read_bytes()
    eight_panel_story.write_text(eight_panel_story.read_text().replace("caption: Panel 2", "caption: Two"))
    small_renderer.drawn.clear()
    result = build(eight_panel_story, out, renderer=small_renderer)
    assert (result.rendered, small_renderer.drawn) == (0, [])
    assert (out / "page.png").read_bytes() != page


def test_no_change_rebuild_succeeds_with_the_model_moved_away(eight_panel_story, small_renderer, tmp_path):
    model = tmp_path / "models" / "tiny.safetensors"
    model.parent.mkdir()
    model.write_bytes(b"weights")
    out = tmp_path / "out"
    first = build(eight_panel_story, out, renderer=small_renderer, model=str(model))
    assert first.rendered == 8
    shutil.move(model.parent, tmp_path / "elsewhere")

    small_renderer.drawn.clear()
    result = build(eight_panel_story, out, renderer=small_renderer, model=str(model))
    assert (result.rendered, result.reused, small_renderer.drawn) == (0, 8, [])
    assert [p.key for p in result.panels] == [p.key for p in first.panels]

    # A panel that does need drawing still needs the model.
    eight_panel_story.write_text(eight_panel_story.read_text().replace("scene number 2,", "scene two,"))
    with pytest.raises(ModelNotFound, match="tiny.safetensors not found"):
        build(eight_panel_story, out, renderer=small_renderer, model=str(model))


def test_a_truncated_cached_image_is_drawn_again(eight_panel_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    first = build(eight_panel_story, out, renderer=small_renderer)
    damaged = out / "cache" / f"{first.panels[1].key}.png"
    damaged.write_bytes(damaged.read_bytes()[:100])
    small_renderer.drawn.clear()
    result = build(eight_panel_story, out, renderer=small_renderer)
    assert [job.index for job in small_renderer.drawn] == [2]
    assert result.rendered == 1
