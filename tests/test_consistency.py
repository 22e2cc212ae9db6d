"""Reference attention on the tiny Stable Diffusion pipeline: panels read their characters' anchors."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from storyboard.building import build
from storyboard.errors import RenderError
from storyboard.render.diffusers import DiffusersRenderer

STORY = """
title: Consistency
characters:
  fox: a small red fox with big ears
render:
  width: 64
  height: 64
  steps: 3
  seed: 5
  consistency: {mode}
panels:
  - prompt: close-up of the fox behind a rock
    characters: [fox]
  - prompt: wide shot of a field
  - prompt: the fox runs through the wheat
    characters: [fox]
"""


def write(folder: Path, mode: str = "reference", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "story.yaml"
    path.write_text(textwrap.dedent(STORY).lstrip().replace("{mode}", mode) + extra, encoding="utf-8")
    return path


def panel(out: Path, n: int) -> bytes:
    return Image.open(out / "panels" / f"panel-{n:02d}.png").tobytes()


@pytest.fixture(scope="module")
def full(tiny_model, tmp_path_factory) -> Path:
    """One build with reference attention, drawing the fox's anchor and all three panels."""
    root = tmp_path_factory.mktemp("consistency")
    renderer = DiffusersRenderer()
    result = build(write(root), root / "out", renderer=renderer, model=str(tiny_model))
    assert (result.rendered, result.anchors_rendered) == (3, 1)
    # The fox's pass at each of the 3 steps was computed for panel 1 and kept for panel 3.
    assert len(renderer._recorded_steps.steps) == 3
    return root / "out"


def test_reference_changes_exactly_the_panels_that_list_characters(full, tiny_model, tmp_path):
    none = tmp_path / "none"
    result = build(write(tmp_path, "none"), none, model=str(tiny_model))
    assert result.characters == []
    assert panel(full, 2) == panel(none, 2)  # no character: bit-identical to consistency: none
    assert panel(full, 1) != panel(none, 1)
    assert panel(full, 3) != panel(none, 3)


def test_a_panel_is_the_same_whether_its_anchor_was_drawn_now_or_came_from_the_cache(full, tiny_model, tmp_path):
    out = tmp_path / "out"
    (out / "cache").mkdir(parents=True)
    import json

    anchor = json.loads((full / "manifest.json").read_text())["characters"][0]
    shutil.copy(full / "cache" / f"{anchor['key']}.png", out / "cache")
    renderer = DiffusersRenderer()
    result = build(write(tmp_path), out, renderer=renderer, model=str(tiny_model), panels=[3])
    assert result.anchors_rendered == 0 and result.rendered == 3
    assert [panel(out, n) for n in (1, 2, 3)] == [panel(full, n) for n in (1, 2, 3)]


def test_one_panel_alone_equals_the_full_build(full, tiny_model, tmp_path):
    # Alone, the panel computes its anchor's passes itself; in the full build it read the ones kept from panel 1.
    alone = write(tmp_path / "alone")
    text = alone.read_text().replace("  - prompt: close-up of the fox behind a rock\n    characters: [fox]\n"
                                     "  - prompt: wide shot of a field\n", "")
    alone.write_text(text.replace("  - prompt: the fox runs", "  - seed: 7\n    prompt: the fox runs"))
    build(alone, tmp_path / "alone-out", model=str(tiny_model))
    assert panel(tmp_path / "alone-out", 1) == panel(full, 3)


def test_a_no_change_rebuild_loads_no_model(full, tiny_model, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(full, out)
    renderer = DiffusersRenderer()
    result = build(write(tmp_path), out, renderer=renderer, model=str(tiny_model))
    assert (result.rendered, result.anchors_rendered, renderer.loads) == (0, 0, 0)


def test_strength_is_in_the_key_and_changes_the_pixels(full, tiny_model, tmp_path):
    out = tmp_path / "stronger"
    shutil.copytree(full, out)
    story = write(tmp_path)
    story.write_text(story.read_text().replace("consistency: reference", "consistency: reference\n"
                                                                         "  consistency_strength: 1.0"))
    stronger = build(story, out, model=str(tiny_model))
    assert stronger.anchors_rendered == 0 and stronger.rendered == 2  # panels 1 and 3; panel 2 reads no anchor
    assert panel(out, 1) != panel(full, 1) and panel(out, 2) == panel(full, 2)


def test_a_model_without_a_unet_cannot_use_reference_attention():
    from storyboard.render.diffusers.reference import ReferenceReader

    class TransformerPipeline:  # FLUX and SD3 pipelines have a transformer and no unet
        transformer = object()

    with pytest.raises(RenderError) as error:
        ReferenceReader(TransformerPipeline(), [], 0.5, encode=None, generator_device="cpu")
    assert str(error.value) == (
        "consistency: reference needs a UNet model (SD 1.x/2.x, SDXL, Kolors); TransformerPipeline has none: set "
        "render.consistency to ip_adapter or none (or give the character a LoRA)")


# --------------------------------------------------------------------------- IP-Adapter


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model, tmp_path_factory) -> Path:
    from tests.tiny_pipeline import build_tiny_ip_adapter

    return build_tiny_ip_adapter(tiny_model, tmp_path_factory.mktemp("adapter"))


def test_ip_adapter_shows_panels_their_anchors_and_leaves_other_panels_alone(full, tiny_model, tiny_adapter,
                                                                           tmp_path):
    story = write(tmp_path, "ip_adapter", extra="")
    story.write_text(story.read_text().replace("consistency: ip_adapter",
                                               f"consistency: ip_adapter\n  ip_adapter: {tiny_adapter}"))
    out = tmp_path / "out"
    shutil.copytree(full, out)  # the fox's anchor is the same job whatever the panels read
    result = build(story, out, model=str(tiny_model))
    assert (result.anchors_rendered, result.rendered) == (0, 2)
    assert result.panels[0].identity["ip_adapter"]["sha256"] == __import__("hashlib").sha256(
        tiny_adapter.read_bytes()).hexdigest()
    none = tmp_path / "none"
    build(write(tmp_path / "n", "none"), none, model=str(tiny_model), panels=[2])
    assert panel(out, 2) == panel(none, 2) == panel(full, 2)
    assert panel(out, 1) != panel(none, 1) and panel(out, 1) != panel(full, 1)


def test_ip_adapter_weights_missing_offline_is_one_line(write_story, tiny_model, tmp_path, monkeypatch, capsys):
    from storyboard.cli import main

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    path = write(tmp_path, "ip_adapter")
    spec = "h94/IP-Adapter/models/ip-adapter_sd15.safetensors"
    text = path.read_text()
    path.write_text(text.replace("consistency: ip_adapter", f"consistency: ip_adapter\n  ip_adapter: {spec}"))
    assert main(["build", str(path), "--model", str(tiny_model), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        f"Error: IP-Adapter 'h94/IP-Adapter/models/ip-adapter_sd15.safetensors' is not in the Hugging Face cache "
        f"({tmp_path}/empty-cache) and HF_HUB_OFFLINE=1 forbids downloading it; download it with `hf download "
        f"h94/IP-Adapter models/ip-adapter_sd15.safetensors --include 'models/image_encoder/*'`, or set "
        f"render.consistency: reference\n")


def test_kept_anchor_passes_are_not_shared_between_panels_drawn_with_other_loras(tiny_model, tiny_lora, tmp_path):
    # Panel 1 is drawn with the fox's LoRA switched on, panel 2 without it; both read the prince's anchor. The
    # prince's passes recorded for panel 1 ran through the LoRA's weights and must not be reused for panel 2.
    story = textwrap.dedent(f"""\
        title: Two with a LoRA
        characters:
          fox:
            description: a small red fox
            lora: {tiny_lora}
          prince: a boy with golden hair
        render:
          width: 64
          height: 64
          steps: 2
          seed: 5
        panels:
          - prompt: the fox and the prince
            characters: [fox, prince]
          - prompt: the prince alone
            characters: [prince]
        """)
    (tmp_path / "both.yaml").write_text(story, encoding="utf-8")
    build(tmp_path / "both.yaml", tmp_path / "both", model=str(tiny_model))
    alone = story.replace("  - prompt: the fox and the prince\n    characters: [fox, prince]\n", "")
    (tmp_path / "alone.yaml").write_text(alone.replace("  - prompt: the prince alone", "  - seed: 6\n"
                                                       "    prompt: the prince alone"), encoding="utf-8")
    build(tmp_path / "alone.yaml", tmp_path / "alone", model=str(tiny_model))
    assert panel(tmp_path / "alone", 1) == panel(tmp_path / "both", 2)
