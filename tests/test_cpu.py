"""Drawing without a GPU: bfloat16 where the CPU computes it natively (`render.dtype: auto`), and the tiny
autoencoder (`render.vae`), on the tiny random pipelines of tiny_pipeline.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from storyboard.building import build
from storyboard.cli import main
from storyboard.provenance import read_provenance
from storyboard.render.diffusers import DiffusersRenderer
from storyboard.render.diffusers.device import cpu_has_bfloat16, resolve_dtype
from storyboard.render.diffusers.vae import vae_source
from storyboard.resolve import resolve
from storyboard.story import load_story

ROOT = Path(__file__).resolve().parent.parent

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

TAESD_COMMIT = "5fd2a5d7a5e1b0c4d7f2c9e3a1b6d8f0e4c2a7b9"


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


def last_line(err: str) -> str:
    assert err.endswith("\n") and err.count("Error:") == 1 and "Traceback" not in err
    return err.splitlines()[-1]


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
    provenance = read_provenance(tmp_path / "bf16" / "panels" / "panel-01.png")
    assert (provenance.record["identity"]["device"], provenance.record["identity"]["dtype"]) == ("cpu", "bfloat16")
    assert provenance.parameters.endswith(f"Model: {tiny_model}, Precision: bfloat16")

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


# --------------------------------------------------------------------------- the tiny autoencoder


@pytest.fixture
def hub(tiny_taesd, tmp_path, monkeypatch) -> Path:
    """A hub cache holding `tiny_taesd` as a download of madebyollin/taesd at TAESD_COMMIT; HF_HUB_CACHE points
    there."""
    cache = tmp_path / "hub"
    repo = cache / "models--madebyollin--taesd"
    shutil.copytree(tiny_taesd, repo / "snapshots" / TAESD_COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(TAESD_COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_the_tiny_autoencoder_changes_the_pixels_and_the_key(tiny_model, hub, tmp_path):
    plain = tmp_path / "plain"
    build(write(plain), plain / "out", renderer=DiffusersRenderer(), model=str(tiny_model))
    tiny = tmp_path / "tiny"
    renderer = DiffusersRenderer()
    build(write(tiny, "  vae: tiny\n"), tiny / "out", renderer=renderer, model=str(tiny_model))
    assert type(renderer.pipeline.vae).__name__ == "AutoencoderTiny"
    assert renderer.pipeline.vae.dtype == renderer.pipeline.unet.dtype
    provenance = read_provenance(tiny / "out" / "panels" / "panel-01.png")
    assert provenance.record["identity"]["vae"] == {"model": "madebyollin/taesd", "revision": TAESD_COMMIT}
    assert f"Model: {tiny_model}, VAE: madebyollin/taesd, Precision: " in provenance.parameters
    assert "vae" not in read_provenance(plain / "out" / "panels" / "panel-01.png").record["identity"]

    drawn = panels(tiny / "out")
    assert all(a != b for a, b in zip(drawn, panels(plain / "out"), strict=True))
    assert set(keys(tiny / "out")).isdisjoint(keys(plain / "out"))
    assert all(len(set(image)) > 10 for image in drawn)

    # Deterministic, and rebuilt from the cache without loading anything.
    build(write(tiny, "  vae: tiny\n", name="again.yaml"), tiny / "again", renderer=DiffusersRenderer(),
          model=str(tiny_model))
    assert panels(tiny / "again") == drawn
    again = DiffusersRenderer()
    result = build(tiny / "story.yaml", tiny / "out", renderer=again, model=str(tiny_model))
    assert (result.rendered, result.reused, again.loads) == (0, 2, 0)


def test_the_autoencoder_may_be_named_by_hub_id_or_folder(tiny_model, tiny_taesd, hub, tmp_path):
    tiny = tmp_path / "tiny"
    build(write(tiny, "  vae: tiny\n"), tiny / "out", renderer=DiffusersRenderer(), model=str(tiny_model))
    named = tmp_path / "named"
    build(write(named, "  vae: madebyollin/taesd\n"), named / "out", renderer=DiffusersRenderer(),
          model=str(tiny_model))
    folder = tmp_path / "folder"
    renderer = DiffusersRenderer()
    build(write(folder, f"  vae: {tiny_taesd}\n"), folder / "out", renderer=renderer, model=str(tiny_model))
    assert panels(named / "out") == panels(folder / "out") == panels(tiny / "out")
    identity = renderer.identity(resolve(load_story(folder / "story.yaml"), model=str(tiny_model))[0])
    assert identity["vae"]["model"] == str(tiny_taesd) and len(identity["vae"]["folder_sha256"]) == 64


def test_reference_attention_reads_anchors_through_the_tiny_autoencoder(tiny_model, hub, tmp_path):
    plain = tmp_path / "plain"
    build(write(plain, "  vae: tiny\n  consistency: none\n", CHARACTERS), plain / "out", model=str(tiny_model))
    read = tmp_path / "read"
    result = build(write(read, "  vae: tiny\n", CHARACTERS), read / "out", model=str(tiny_model))
    assert result.anchors_rendered == 1
    assert panels(read / "out") != panels(plain / "out")


@pytest.mark.parametrize(("pipeline", "tiny"), [
    ("StableDiffusionPipeline", "madebyollin/taesd"), ("StableDiffusionXLPipeline", "madebyollin/taesdxl"),
    ("KolorsPipeline", "madebyollin/taesdxl"), ("FluxPipeline", "madebyollin/taef1"),
    ("StableDiffusion3Pipeline", "madebyollin/taesd3"),
])
def test_tiny_means_the_autoencoder_made_for_the_models_family(pipeline, tiny, tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    assert vae_source("tiny", str(tmp_path)).name == tiny


def test_a_missing_autoencoder_is_one_line(tiny_model, tiny_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    story = write(tmp_path, "  vae: tiny\n")
    assert main(["build", str(story), "--out", str(tmp_path / "out"), "--model", str(tiny_model)]) == 1
    assert last_line(capsys.readouterr().err) == (
        f"Error: the tiny autoencoder 'madebyollin/taesd' (render.vae: tiny) is not in the Hugging Face cache "
        f"({tmp_path / 'hub'}) and HF_HUB_OFFLINE=1 forbids downloading it; download it with `storyboard download "
        f"STORY.yaml` or `hf download madebyollin/taesd`, or remove render.vae")

    story = write(tmp_path, f"  vae: tiny\n  model: {tiny_model}\n", name="download.yaml")
    assert main(["download", str(story)]) == 1
    assert capsys.readouterr().err == ("Error: cannot download 'madebyollin/taesd': HF_HUB_OFFLINE=1 forbids it; "
                                       "unset it and try again\n")

    missing = tmp_path / "no-such-vae"
    story = write(tmp_path, f"  vae: {missing}\n", name="folder.yaml")
    assert main(["build", str(story), "--out", str(tmp_path / "out"), "--model", str(tiny_model)]) == 1
    assert last_line(capsys.readouterr().err) == (
        f"Error: render.vae '{missing}' not found: no such folder ({missing}); use tiny, a hub id such as "
        f"madebyollin/taesd, or a local folder holding an autoencoder's config.json")

    # A checkpoint file does not say which family it is: tiny needs its configs (render.config).
    story = write(tmp_path, "  vae: tiny\n", name="file.yaml")
    assert main(["build", str(story), "--out", str(tmp_path / "out"), "--model", str(tiny_checkpoint)]) == 1
    assert last_line(capsys.readouterr().err) == (
        f"Error: render.vae: tiny picks the tiny autoencoder made for the model's family, which '{tiny_checkpoint}' "
        f"does not name; set render.config to its diffusers configs, or render.vae to the autoencoder itself "
        f"(madebyollin/taesd for SD 1.x/2.x, madebyollin/taesdxl for SDXL)")


def test_a_build_fetches_the_autoencoder_before_keying(tiny_model, tmp_path):
    """`prepare` asks the hub for it (here unreachable: nothing listens on port 9), and says what went wrong."""
    story = write(tmp_path, "  vae: tiny\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9",
           "HF_HUB_CACHE": str(tmp_path / "hub")}
    done = subprocess.run([sys.executable, "-m", "storyboard", "build", str(story), "--out", str(tmp_path / "out"),
                           "--model", str(tiny_model)], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 1
    assert done.stderr == ("Error: cannot download autoencoder 'madebyollin/taesd' from the Hugging Face hub "
                           "(ConnectionRefusedError: [Errno 111] Connection refused); check the network connection "
                           "and render.vae\n")
