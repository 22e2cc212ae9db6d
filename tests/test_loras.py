"""LoRAs, story-wide and per character, and the few-step presets: on the tiny SD pipeline, offline, CPU."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from storyboard.building import build, panel_key
from storyboard.cli import main
from storyboard.render.diffusers import DiffusersRenderer
from storyboard.resolve import resolve
from storyboard.story import load_story

STORY = """\
title: Fox and field
characters:
  fox: a small red fox
  prince:
    description: a boy with golden hair
render:
  width: 64
  height: 64
  steps: 2
  seed: 10
  consistency: none
{loras}panels:
  - prompt: a red apple
  - prompt: the fox in a field
    characters: [fox]
  - prompt: the prince on a planet
    characters: [prince]
"""


def pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def panels(out: Path) -> list[bytes]:
    return [pixels(out / "panels" / f"panel-0{i}.png") for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def plain(tiny_model, tmp_path_factory) -> list[bytes]:
    """The story drawn without any LoRA."""
    root = tmp_path_factory.mktemp("plain")
    (root / "s.yaml").write_text(STORY.format(loras=""), encoding="utf-8")
    build(root / "s.yaml", root / "out", renderer="diffusers", model=str(tiny_model))
    return panels(root / "out")


def with_fox_lora(lora: Path, weight: float) -> str:
    return STORY.format(loras="").replace("  fox: a small red fox\n", f"  fox:\n    description: a small red fox\n"
                                                                      f"    lora: {lora}\n    lora_weight: {weight}\n")


def test_a_character_lora_changes_exactly_the_panels_of_that_character(write_story, tiny_model, tiny_lora, plain,
                                                                      tmp_path):
    path = write_story(with_fox_lora(tiny_lora, 0.8))
    renderer = DiffusersRenderer()
    result = build(path, tmp_path / "out", renderer=renderer, model=str(tiny_model))
    assert result.rendered == 3 and renderer.loads == 1
    drawn = panels(tmp_path / "out")
    assert drawn[1] != plain[1]  # the fox's panel
    assert drawn[0] == plain[0] and drawn[2] == plain[2]  # bit for bit: the LoRA is off for the others

    # A new weight redraws the fox's panel only, and gives yet another picture.
    path.write_text(with_fox_lora(tiny_lora, 0.3))
    result = build(path, tmp_path / "out", renderer=renderer, model=str(tiny_model))
    assert (result.rendered, result.reused) == (1, 2)
    again = panels(tmp_path / "out")
    assert again[1] not in (drawn[1], plain[1]) and again[0] == plain[0] and again[2] == plain[2]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    fox = manifest["panels"][1]["identity"]["loras"]
    assert fox == [{"sha256": hashlib.sha256(tiny_lora.read_bytes()).hexdigest(), "weight": 0.3}]
    assert "loras" not in manifest["panels"][0]["identity"] and "loras" not in manifest["panels"][2]["identity"]


def test_a_story_lora_changes_every_panel_and_its_weight_redraws_them(write_story, tiny_model, tiny_lora, plain,
                                                                     tmp_path):
    path = write_story(STORY.format(loras=f"  loras:\n    - path: {tiny_lora}\n      weight: 0.5\n"))
    build(path, tmp_path / "out", renderer="diffusers", model=str(tiny_model))
    drawn = panels(tmp_path / "out")
    assert all(d != p for d, p in zip(drawn, plain))
    path.write_text(path.read_text().replace("weight: 0.5", "weight: 0.9"))
    result = build(path, tmp_path / "out", renderer="diffusers", model=str(tiny_model))
    assert result.rendered == 3
    assert all(a != d for a, d in zip(panels(tmp_path / "out"), drawn))


def test_a_changed_lora_file_redraws_its_panels(write_story, tiny_model, tiny_lora, tmp_path):
    from tests.tiny_pipeline import build_tiny_lora

    lora = tmp_path / "fox.safetensors"
    lora.write_bytes(tiny_lora.read_bytes())
    path = write_story(with_fox_lora(lora, 1.0))
    build(path, tmp_path / "out", renderer="diffusers", model=str(tiny_model))
    build_tiny_lora(tiny_model, lora, seed=2)  # retrained, same name
    result = build(path, tmp_path / "out", renderer="diffusers", model=str(tiny_model))
    assert (result.rendered, result.reused) == (1, 2)


def test_panels_without_a_lora_keep_the_key_they_always_had(write_story):
    # Keys computed before LoRAs existed (with a fixed renderer identity, so only the job's own values count): a
    # story without LoRAs must not redraw anything after an upgrade.
    path = write_story("""\
        title: Keys
        characters:
          fox: a small red fox
        render:
          width: 64
          height: 64
          seed: 10
        panels:
          - prompt: close-up of a red apple
          - prompt: the fox in a field
            characters: [fox]
        """)
    keys = [panel_key(job, "diffusers", {"model": "fixed"}) for job in resolve(load_story(path))]
    assert keys == ["22c794df24ba7ab0ea63fcc52bb3c8798a6f8bf2685927c71410a430114b1352",
                    "0b4a7a7c2da8a5de1a0bc1c1dff6075444667efaba6bc92b6aaa8e0c1af876e2"]
    # The fox's LoRA changes the fox's panel's key, and only that one.
    lora = path.parent / "fox.safetensors"
    lora.write_bytes(b"not read: only the job's own values are keyed here")
    path.write_text(path.read_text().replace("  fox: a small red fox\n", f"  fox:\n    description: a small red "
                                                                         f"fox\n    lora: {lora}\n"))
    changed = [panel_key(job, "diffusers", {"model": "fixed"}) for job in resolve(load_story(path))]
    assert changed[0] == keys[0] and changed[1] != keys[1]


def test_a_character_anchor_is_drawn_with_the_character_lora(write_story, tiny_lora):
    from storyboard.resolve import resolve_anchors

    path = write_story(with_fox_lora(tiny_lora, 0.8).replace("  consistency: none\n", ""))
    anchors = {job.character: dict(job.options).get("loras") for job in resolve_anchors(load_story(path))}
    assert anchors == {"fox": [{"path": str(tiny_lora), "weight": 0.8}], "prince": None}


def test_a_lora_for_another_model_family_is_one_line(write_story, tiny_model, tiny_sdxl_lora, tmp_path, capsys):
    wrong = tiny_sdxl_lora
    path = write_story(with_fox_lora(wrong, 1.0))
    code = main(["build", str(path), "--out", str(tmp_path / "out"), "--model", str(tiny_model)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "size mismatch" not in err
    assert [line for line in err.splitlines() if "Error" in line] == [
        f"Error: LoRA '{wrong}' does not fit '{tiny_model}': its layers have other sizes than the model's (a LoRA "
        f"for another model family?)"]
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_missing_lora_is_one_line(write_story, tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    missing = tmp_path / "nowhere.safetensors"
    for lora, message in [
        (str(missing), f"Error: LoRA '{missing}' not found: no such file ({missing})"),
        ("someone/fox-lora", f"Error: LoRA 'someone/fox-lora' is not in the Hugging Face cache ({tmp_path / 'hub'}) "
                             f"and HF_HUB_OFFLINE=1 forbids downloading it; download it with `hf download "
                             f"someone/fox-lora` or give a local .safetensors file"),
    ]:
        path = write_story(with_fox_lora(Path(lora), 1.0))
        code = main(["build", str(path), "--out", str(tmp_path / "out"), "--model", str(tiny_model)])
        err = capsys.readouterr().err
        assert code == 1 and err.splitlines()[-1] == message, err


def test_lora_fields_are_checked_in_the_story(write_story, capsys):
    path = write_story(STORY.format(loras="  loras:\n    - path: x.safetensors\n      weigth: 0.5\n"))
    assert main(["build", str(path), "--renderer", "draft"]) == 1
    assert capsys.readouterr().err == (f"Error: {path}:14: render.loras[0].weigth: unknown field "
                                       "(did you mean 'weight'?)\n")


def test_a_renderer_that_cannot_apply_loras_says_so_once_and_keys_without_them(write_story, small_renderer,
                                                                                 tiny_lora, tmp_path, caplog):
    small_renderer.applies_loras = False  # as the remote renderers declare
    plain = write_story(STORY.format(loras=""), name="plain.yaml")
    with_loras = write_story(with_fox_lora(tiny_lora, 0.8).replace(
        "  consistency: none\n", f"  consistency: none\n  loras:\n    - path: {tiny_lora}\n"), name="loras.yaml")
    build(plain, tmp_path / "out", renderer=small_renderer)
    result = build(with_loras, tmp_path / "out", renderer=small_renderer)
    assert (result.rendered, result.reused) == (0, 3)  # the same panels: nothing about them changed
    notes = [r.getMessage() for r in caplog.records if "LoRA" in r.getMessage()]
    assert notes == ["the small renderer cannot apply LoRAs; render.loras and the characters' lora are not used"]


# --------------------------------------------------------------------------- few-step presets


@pytest.mark.parametrize(("preset", "expected"), [
    ("turbo", (4, 0.0, "euler_a")),
    ("lcm", (4, 1.0, "lcm")),
])
def test_presets_set_steps_guidance_and_scheduler(write_story, preset, expected):
    path = write_story(f"title: t\nrender:\n  preset: {preset}\npanels:\n  - prompt: a fox\n")
    job = resolve(load_story(path))[0]
    assert (job.steps, job.guidance, dict(job.options)["scheduler"]) == expected


def test_fields_in_the_story_win_over_the_preset(write_story):
    path = write_story("title: t\nrender:\n  preset: turbo\n  steps: 1\npanels:\n  - prompt: a fox\n")
    job = resolve(load_story(path))[0]
    assert (job.steps, job.guidance, dict(job.options)["scheduler"]) == (1, 0.0, "euler_a")


def test_an_lcm_preset_draws_with_the_lcm_scheduler(write_story, tiny_model, tmp_path):
    path = write_story("title: t\nrender:\n  preset: lcm\n  width: 64\n  height: 64\npanels:\n  - prompt: a fox\n")
    renderer = DiffusersRenderer()
    build(path, tmp_path / "out", renderer=renderer, model=str(tiny_model))
    assert type(renderer.pipeline.scheduler).__name__ == "LCMScheduler"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["panels"][0]["steps"] == 4 and manifest["panels"][0]["identity"]["sampler"] == "LCM"
