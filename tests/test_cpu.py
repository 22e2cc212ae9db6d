"""Drawing without a GPU: bfloat16 where the CPU computes it natively (`render.dtype: auto`), on the tiny random
pipelines of tiny_pipeline.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from storyboard.building import build
from storyboard.provenance import read_provenance
from storyboard.render.diffusers import DiffusersRenderer
from storyboard.render.diffusers.device import cpu_has_bfloat16, resolve_dtype

STORY = """\
title: On a laptop
render:
  width: 64
  height: 64
  steps: 3
  seed: 40
{render}panels:
  - prompt: a red apple on a table
  - prompt: a green field under a blue sky
"""

CHARACTERS = """\
title: The fox
characters:
  fox: a small red fox with big ears
render:
  width: 64
  height: 64
  steps: 3
  seed: 5
{render}panels:
  - prompt: the fox runs through the wheat
    characters: [fox]
"""

def write(folder: Path, render: str = "", text: str = STORY, name: str = "story.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text.replace("{render}", render), encoding="utf-8")
    return path


def panels(out: Path) -> list[bytes]:
    found = sorted((out / "panels").glob("panel-*.png"))
    assert found
    return [Image.open(path).convert("RGB").tobytes() for path in found]


def keys(out: Path) -> list[str]:
    return [panel["key"] for panel in json.loads((out / "manifest.json").read_text())["panels"]]


@pytest.fixture
def cpu(tmp_path, monkeypatch):
    """Make the renderer see a CPU with (`cpu(True)`) or without (`cpu(False)`) native bfloat16, through the
    /proc/cpuinfo it reads."""

    def pretend(bfloat16: bool) -> None:
        flags = "fpu sse sse2 avx avx2 fma avx512f avx512bw avx512vl" + (" avx512_bf16 amx_bf16" if bfloat16 else "")
        path = tmp_path / f"cpuinfo-{bfloat16}"
        path.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
                        f"flags\t\t: {flags}\n", encoding="utf-8")
        monkeypatch.setattr("storyboard.render.diffusers.device.CPUINFO", path)

    return pretend


# --------------------------------------------------------------------------- bfloat16


def test_the_cpu_probe_reads_what_torch_reads(tmp_path, monkeypatch):
    import torch

    assert cpu_has_bfloat16() == torch.cpu._is_avx512_bf16_supported()
    monkeypatch.setattr("storyboard.render.diffusers.device.CPUINFO", tmp_path / "missing")
    assert not cpu_has_bfloat16()  # macOS, Windows: no /proc/cpuinfo, so float32
    assert (resolve_dtype("auto", "cpu"), resolve_dtype("bfloat16", "cpu"), resolve_dtype("auto", "cuda")) == \
        ("float32", "bfloat16", "float16")


def test_auto_draws_in_bfloat16_on_a_cpu_that_has_it_and_says_so(tiny_model, tmp_path, cpu):
    import torch

    cpu(True)
    story = write(tmp_path)
    renderer = DiffusersRenderer()
    build(story, tmp_path / "bf16", renderer=renderer, model=str(tiny_model))
    assert renderer.pipeline.unet.dtype == renderer.pipeline.vae.dtype == torch.bfloat16
    record = read_provenance(tmp_path / "bf16" / "panels" / "panel-01.png").record
    assert (record["identity"]["device"], record["identity"]["dtype"]) == ("cpu", "bfloat16")

    # Deterministic: another renderer draws the same pixels.
    build(story, tmp_path / "again", renderer=DiffusersRenderer(), model=str(tiny_model))
    assert panels(tmp_path / "again") == panels(tmp_path / "bf16")
    assert len(set(panels(tmp_path / "bf16")[0])) > 10

    # A CPU without it draws in float32: other pixels, other keys.
    cpu(False)
    renderer = DiffusersRenderer()
    build(story, tmp_path / "f32", renderer=renderer, model=str(tiny_model))
    assert renderer.pipeline.unet.dtype == torch.float32
    assert panels(tmp_path / "f32")[0] != panels(tmp_path / "bf16")[0]
    assert set(keys(tmp_path / "f32")).isdisjoint(keys(tmp_path / "bf16"))

    # An explicit float32 on the bfloat16 CPU is exactly that float32 build: same pixels, same keys.
    cpu(True)
    explicit = write(tmp_path / "explicit", "  dtype: float32\n")
    build(explicit, tmp_path / "explicit" / "out", renderer=DiffusersRenderer(), model=str(tiny_model))
    assert panels(tmp_path / "explicit" / "out") == panels(tmp_path / "f32")
    assert keys(tmp_path / "explicit" / "out") == keys(tmp_path / "f32")


@pytest.mark.parametrize("family", ["sd, reference attention", "sdxl", "flux", "sd3", "kolors"])
def test_every_family_draws_in_bfloat16_on_the_cpu(family, request, tmp_path):
    import torch

    fixture = {"sd, reference attention": "tiny_model"}.get(family, f"tiny_{family}")
    model = request.getfixturevalue(fixture)
    text = CHARACTERS if family.startswith("sd,") else STORY
    story = write(tmp_path, "  dtype: bfloat16\n" + ("  guidance: 3.5\n" if family == "flux" else ""), text)
    renderer = DiffusersRenderer()
    result = build(story, tmp_path / "out", renderer=renderer, model=str(model))
    denoiser = getattr(renderer.pipeline, "unet", None) or renderer.pipeline.transformer
    assert denoiser.dtype == torch.bfloat16
    assert result.anchors_rendered == (1 if text == CHARACTERS else 0)
    drawn = panels(tmp_path / "out")
    assert all(len(set(image)) > 10 for image in drawn)  # pictures, not NaNs turned black
    build(story, tmp_path / "again", renderer=DiffusersRenderer(), model=str(model))
    assert panels(tmp_path / "again") == drawn
