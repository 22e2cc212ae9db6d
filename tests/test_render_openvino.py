"""The openvino renderer on the tiny random pipelines: exported once per model and LoRA set into a cache keyed by
them, compiled per size, deterministic, close to diffusers' own float32 pixels, and one line for what it cannot
do."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from storyboard.building import build
from storyboard.cli import main
from storyboard.provenance import read_provenance
from storyboard.render.diffusers import DiffusersRenderer
from storyboard.render.openvino import OpenVinoRenderer
from storyboard.render.openvino.ir import export_key
from storyboard.resolve import resolve
from storyboard.story import load_story

pytest.importorskip("openvino")

STORY = """\
title: On a laptop
render:
  width: 64
  height: 72
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
  steps: 2
  seed: 5
{render}panels:
  - prompt: the fox runs through the wheat
    characters: [fox]
"""


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("storyboard-cache")


@pytest.fixture(autouse=True)
def exports_shared(shared_cache, monkeypatch) -> None:
    """The exports go to a cache the tests of this module share (an export takes seconds, even of a tiny model),
    except for those that count exports (`cache`)."""
    monkeypatch.setenv("STORYBOARD_CACHE_DIR", str(shared_cache))


@pytest.fixture(scope="module")
def first_build(tiny_model, shared_cache, tmp_path_factory) -> SimpleNamespace:
    """The tiny model's first openvino build, in float32, into the empty shared cache: the export the other tests
    read."""
    folder = tmp_path_factory.mktemp("first-build")
    story = write(folder, "  dtype: float32\n")
    renderer = OpenVinoRenderer()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORYBOARD_CACHE_DIR", str(shared_cache))
        result = build(story, folder / "out", renderer=renderer, model=str(tiny_model))
    cache = shared_cache / "openvino"
    return SimpleNamespace(story=story, out=folder / "out", renderer=renderer, result=result,
                           made=(len(exports(cache, "unet-")), len(exports(cache, "decoder-"))))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """The test's own storyboard cache, where the exports go, empty."""
    monkeypatch.setenv("STORYBOARD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "openvino"


def write(folder: Path, render: str = "", text: str = STORY, name: str = "story.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text.replace("{render}", render), encoding="utf-8")
    return path


def pixels(out: Path) -> list[np.ndarray]:
    found = sorted((out / "panels").glob("panel-*.png"))
    assert found
    return [np.asarray(Image.open(path).convert("RGB")).astype(int) for path in found]


def keys(out: Path) -> list[str]:
    return [panel["key"] for panel in json.loads((out / "manifest.json").read_text())["panels"]]


def exports(cache: Path, part: str = "") -> list[Path]:
    """The complete exports in the cache (of `part` only, when given)."""
    if not cache.exists():
        return []
    return sorted(p for p in cache.glob(f"{part}*") if (p / "export.json").is_file())


def close(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    """The largest difference, in levels, between two builds' panels."""
    return max(int(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def test_a_model_is_exported_once_and_draws_the_same_pixels_every_time(tiny_model, first_build, tmp_path):
    first, result, story = first_build.renderer, first_build.result, first_build.story
    assert (result.rendered, first.exports, first.loads) == (2, 1, 1)
    assert first_build.made == (1, 1)  # a UNet and a decoder
    assert type(first.pipeline.unet).__name__ == "CompiledUnet"
    assert type(first.pipeline.vae.decoder).__name__ == "CompiledDecoder"
    # 64x72 is a latent of 8x9: odd, so the UNet's upsampling follows its skip connections' sizes.
    assert [shape for shapes in first.pipeline.unet.graph.compiled for name, shape in shapes
            if name == "sample"] == [(2, 4, 9, 8)]

    # Another renderer (a new process, as far as it knows) reads the export: no export, the same pixels.
    second = OpenVinoRenderer()
    build(story, tmp_path / "two", renderer=second, model=str(tiny_model))
    assert (second.exports, second.loads) == (0, 1)
    drawn = pixels(first_build.out)
    assert all((a == b).all() for a, b in zip(drawn, pixels(tmp_path / "two"), strict=True))
    assert all(len(np.unique(image)) > 10 for image in drawn)

    # A rebuild draws nothing and loads nothing.
    third = OpenVinoRenderer()
    result = build(story, first_build.out, renderer=third, model=str(tiny_model))
    assert (result.rendered, result.reused, third.loads, third.exports) == (0, 2, 0, 0)

    # In float32 the compiled graphs compute what diffusers computes, to rounding.
    build(story, tmp_path / "torch", renderer=DiffusersRenderer(), model=str(tiny_model))
    assert close(drawn, pixels(tmp_path / "torch")) <= 2
    assert set(keys(tmp_path / "torch")).isdisjoint(keys(first_build.out))
    identity = read_provenance(first_build.out / "panels" / "panel-01.png").record["identity"]
    assert (identity["renderer"], identity["device"], identity["dtype"]) == ("openvino", "cpu", "float32")
    assert identity["openvino"]


def test_auto_is_bfloat16_where_the_cpu_has_it_and_in_the_key(tiny_model, tmp_path, monkeypatch):
    def cpu(bfloat16: bool) -> None:
        flags = "fpu sse avx2 avx512f" + (" avx512_bf16" if bfloat16 else "")
        path = tmp_path / f"cpuinfo-{bfloat16}"
        path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n", encoding="utf-8")
        monkeypatch.setattr("storyboard.render.diffusers.device.CPUINFO", path)

    job = resolve(load_story(write(tmp_path)), model=str(tiny_model))[0]
    cpu(True)
    assert OpenVinoRenderer().identity(job)["dtype"] == "bfloat16"
    cpu(False)
    assert OpenVinoRenderer().identity(job)["dtype"] == "float32"
    assert main(["build", str(write(tmp_path, "  dtype: bfloat16\n", name="bf16.yaml")), "--renderer", "openvino",
                 "--model", str(tiny_model), "--out", str(tmp_path / "out")]) == 1


def test_bfloat16_draws_deterministically_and_differs_from_float32(tiny_model, first_build, tmp_path):
    from storyboard.render.diffusers.device import cpu_has_bfloat16

    if not cpu_has_bfloat16():
        pytest.skip("this CPU computes no bfloat16 natively")
    story = write(tmp_path, "  dtype: bfloat16\n")
    renderer = OpenVinoRenderer()
    build(story, tmp_path / "bf16", renderer=renderer, model=str(tiny_model))
    assert renderer.exports == 0  # the export holds float32 weights: both precisions compile it
    build(story, tmp_path / "again", renderer=OpenVinoRenderer(), model=str(tiny_model))
    drawn = pixels(tmp_path / "bf16")
    assert all((a == b).all() for a, b in zip(drawn, pixels(tmp_path / "again"), strict=True))
    assert any((a != b).any() for a, b in zip(drawn, pixels(first_build.out), strict=True))


def test_loras_and_the_tiny_autoencoder_are_in_the_export(tiny_model, tiny_lora, tiny_taesd, tmp_path,
                                                         shared_cache, first_build):
    cache, plain = shared_cache / "openvino", first_build.story
    before = {part: exports(cache, part) for part in ("unet-", "decoder-")}

    lora = write(tmp_path, f"  dtype: float32\n  loras:\n    - path: {tiny_lora}\n      weight: 0.8\n",
                 name="lora.yaml")
    renderer = OpenVinoRenderer()
    build(lora, tmp_path / "lora", renderer=renderer, model=str(tiny_model))
    # A LoRA set is another UNet, and the same decoder.
    assert renderer.exports == 1
    assert exports(cache, "decoder-") == before["decoder-"]
    (made,) = set(exports(cache, "unet-")) - set(before["unet-"])
    assert [lora["weight"] for lora in json.loads((made / "export.json").read_text())["loras"]] == [0.8]
    fused = pixels(tmp_path / "lora")
    assert close(fused, pixels(first_build.out)) > 2
    # Fused at its weight, the LoRA draws what diffusers draws with it as an adapter.
    build(lora, tmp_path / "lora-torch", renderer=DiffusersRenderer(), model=str(tiny_model))
    assert close(fused, pixels(tmp_path / "lora-torch")) <= 2

    # Another weight is another export.
    heavier = write(tmp_path, f"  dtype: float32\n  loras:\n    - path: {tiny_lora}\n      weight: 1.0\n",
                    name="heavier.yaml")
    unet_keys = [export_key(renderer.identity(resolve(load_story(path), model=str(tiny_model))[0]), "unet")
                 for path in (plain, lora, heavier)]
    assert len({json.dumps(key, sort_keys=True) for key in unet_keys}) == 3

    tiny = write(tmp_path, f"  dtype: float32\n  vae: {tiny_taesd}\n", name="tiny.yaml")
    renderer = OpenVinoRenderer()
    build(tiny, tmp_path / "tiny", renderer=renderer, model=str(tiny_model))
    # Another autoencoder is another decoder, and the same UNet.
    assert renderer.exports == 1
    assert len(exports(cache, "decoder-")) == len(before["decoder-"]) + 1
    assert len(exports(cache, "unet-")) == len(before["unet-"]) + 1  # the LoRA's
    assert type(renderer.pipeline.vae).__name__ == "AutoencoderTiny"
    assert close(pixels(tmp_path / "tiny"), pixels(first_build.out)) > 2
    build(tiny, tmp_path / "tiny-torch", renderer=DiffusersRenderer(), model=str(tiny_model))
    assert close(pixels(tmp_path / "tiny"), pixels(tmp_path / "tiny-torch")) <= 2


def test_sdxl_draws_through_the_export(tiny_sdxl, tmp_path):
    story = write(tmp_path, "  dtype: float32\n", STORY.split("  - prompt: a green")[0])
    renderer = OpenVinoRenderer()
    build(story, tmp_path / "ov", renderer=renderer, model=str(tiny_sdxl))
    assert renderer.exports == 1
    build(story, tmp_path / "torch", renderer=DiffusersRenderer(), model=str(tiny_sdxl))
    assert close(pixels(tmp_path / "ov"), pixels(tmp_path / "torch")) <= 2


def test_anchors_are_not_read_and_the_build_says_so_once(tiny_model, tmp_path, caplog, capsys):
    story = write(tmp_path, "", CHARACTERS)
    assert main(["build", str(story), "--renderer", "openvino", "--model", str(tiny_model),
                 "--out", str(tmp_path / "out")]) == 0
    said = [r.getMessage() for r in caplog.records if "character anchors" in r.getMessage()]
    assert said == ["the openvino renderer cannot read character anchors; panels that list characters are drawn "
                    "from their prompts alone (render.consistency: none)"]
    assert not (tmp_path / "out" / "characters").exists()
    # `info` compares the panel with the story as this renderer draws it: unchanged, and nothing more said.
    capsys.readouterr()
    assert main(["info", str(tmp_path / "out" / "panels" / "panel-01.png")]) == 0
    shown = capsys.readouterr()
    assert "with the openvino renderer" in shown.out and "note:" not in shown.out and shown.err == ""
    unanchored = write(tmp_path, "  consistency: none\n", CHARACTERS, name="none.yaml")
    assert main(["build", str(unanchored), "--renderer", "openvino", "--model", str(tiny_model),
                 "--out", str(tmp_path / "none")]) == 0
    assert keys(tmp_path / "none") == keys(tmp_path / "out")


def last_line(err: str) -> str:
    assert err.endswith("\n") and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("Error:")] == [err.splitlines()[-1]]
    return err.splitlines()[-1]


def test_what_it_cannot_do_is_one_line(tiny_model, tiny_flux, tmp_path, monkeypatch, capsys):
    def fails(*args: str) -> str:
        assert main(["build", *args, "--renderer", "openvino", "--out", str(tmp_path / "out")]) == 1
        return last_line(capsys.readouterr().err)

    story = write(tmp_path)
    assert fails(str(story), "--model", str(tiny_flux)) == (
        f"Error: the openvino renderer draws Stable Diffusion 1.x/2.x and SDXL models; '{tiny_flux}' is a "
        f"FluxPipeline: draw it with --renderer diffusers")
    half = write(tmp_path, "  dtype: float16\n", name="half.yaml")
    assert fails(str(half), "--model", str(tiny_model)) == (
        "Error: render.dtype float16: the openvino renderer draws in float32 or bfloat16 (auto picks bfloat16 where "
        "the CPU computes it natively)")

    monkeypatch.setitem(sys.modules, "openvino", None)
    assert fails(str(story), "--model", str(tiny_model)) == (
        "Error: the openvino renderer needs OpenVINO, which is not installed: pip install 'storyboard[openvino]'")
    assert not (tmp_path / "out").exists()


def test_an_export_without_room_or_that_fails_leaves_nothing(tiny_model, tmp_path, cache, monkeypatch, capsys):
    import shutil

    story = write(tmp_path)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr("storyboard.render.openvino.ir.shutil.disk_usage",
                        lambda path: usage._replace(free=1000))
    assert main(["build", str(story), "--renderer", "openvino", "--model", str(tiny_model),
                 "--out", str(tmp_path / "out")]) == 1
    line = last_line(capsys.readouterr().err)
    assert line.startswith(f"Error: not enough free disk for the OpenVINO export of '{tiny_model}': it needs about ")
    assert line.endswith(f"in {cache}, which has 0 MB free; free some space or set STORYBOARD_CACHE_DIR to a "
                         f"disk with room")
    monkeypatch.undo()
    monkeypatch.setenv("STORYBOARD_CACHE_DIR", str(cache.parent))

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("storyboard.render.openvino.ir._converted_unet", broken)
    assert main(["build", str(story), "--renderer", "openvino", "--model", str(tiny_model),
                 "--out", str(tmp_path / "out")]) == 1
    assert last_line(capsys.readouterr().err) == (
        f"Error: cannot export '{tiny_model}' to OpenVINO (OSError: No space left on device)")
    assert not cache.exists()  # no export, complete or not, nor an empty folder


def test_an_export_clears_what_killed_exports_left_and_names_those_of_other_versions(tiny_model, tmp_path, cache,
                                                                                    monkeypatch, caplog, capsys):
    import shutil

    story = write(tmp_path, "  dtype: float32\n")
    key = export_key(OpenVinoRenderer().identity(resolve(load_story(story), model=str(tiny_model))[0]), "unet")

    def folder(name: str, size: int, key: dict | None = None) -> Path:
        path = cache / name
        path.mkdir(parents=True)
        (path / "unet.bin").write_bytes(bytes(size))
        if key is not None:
            (path / "export.json").write_text(json.dumps(key), encoding="utf-8")
        return path

    killed = [folder(f".unet-{'0' * 20}.4321", 2 * 2**20), folder(f".decoder-{'1' * 20}.4322", 2**20)]
    unrelated = folder(".unet-not-a-scratch-folder", 10)
    older = folder(f"unet-{'3' * 20}", 2**20, {**key, "openvino": "2026.3.0", "torch": "2.12.0"})
    other_model = folder(f"unet-{'4' * 20}", 10, {**key, "openvino": "2026.3.0", "sha256": "0" * 64})

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr("storyboard.render.openvino.ir.shutil.disk_usage", lambda path: usage._replace(free=1000))
    args = ["build", str(story), "--renderer", "openvino", "--model", str(tiny_model), "--out", str(tmp_path / "out")]
    assert main(args) == 1
    # The disk check counts what killed exports left as free, and names what earlier exports of the model take.
    said = [r.getMessage() for r in caplog.records if "unfinished" in r.getMessage()]
    assert said == [f"removed 2 unfinished OpenVINO exports that a stopped build left in {cache} (3 MB)"]
    assert last_line(capsys.readouterr().err).endswith(
        f"in {cache}, which has 0 MB free; 1 earlier export of it for other library versions takes 1 MB there; free "
        f"some space or set STORYBOARD_CACHE_DIR to a disk with room")
    assert not any(path.exists() for path in killed) and unrelated.exists()

    monkeypatch.undo()
    monkeypatch.setenv("STORYBOARD_CACHE_DIR", str(cache.parent))
    caplog.clear()
    assert main(args) == 0
    said = [r.getMessage() for r in caplog.records if "earlier export" in r.getMessage()]
    assert said == [f"an earlier export of the UNet of '{tiny_model}', made for openvino 2026.3.0 and torch 2.12.0, "
                    f"is still in {older} (1 MB): delete that folder when no other installation of storyboard uses it"]
    assert all(path.exists() for path in (unrelated, older, other_model))
    assert len(exports(cache)) == 4  # the two planted, and the new UNet and decoder


def test_a_build_that_finds_another_exporting_waits_and_uses_its_export(tiny_model, first_build, tmp_path, cache,
                                                                       shared_cache, caplog):
    import logging
    import shutil
    import threading

    from storyboard.files import exclusive_lock

    waiting = threading.Event()

    class Waits(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for it to finish" in record.getMessage():
                waiting.set()

    def another_build() -> None:
        """Another build's export of the same model: the lock held until this build waits, then the export there."""
        with exclusive_lock(cache, "OpenVINO export"):
            held.set()
            assert waiting.wait(120)
            for made in exports(shared_cache / "openvino"):
                shutil.copytree(made, cache / made.name)

    held, handler = threading.Event(), Waits()
    logging.getLogger("storyboard").addHandler(handler)
    other = threading.Thread(target=another_build)
    other.start()
    try:
        assert held.wait(60)
        renderer = OpenVinoRenderer()
        build(first_build.story, tmp_path / "out", renderer=renderer, model=str(tiny_model))
    finally:
        waiting.set()
        other.join()
        logging.getLogger("storyboard").removeHandler(handler)
    said = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert said == [f"another OpenVINO export of {cache} is running (pid {os.getpid()}); waiting for it to finish"]
    assert renderer.exports == 0
    assert all((a == b).all() for a, b in zip(pixels(tmp_path / "out"), pixels(first_build.out), strict=True))


def test_a_checkpoint_file_is_exported_and_then_drawn_without_loading_its_unet(tiny_model, tiny_checkpoint, tmp_path):
    story = write(tmp_path, f"  dtype: float32\n  config: {tiny_model}\n", STORY.split("  - prompt: a green")[0])
    first = OpenVinoRenderer()
    build(story, tmp_path / "one", renderer=first, model=str(tiny_checkpoint))
    second = OpenVinoRenderer()
    build(story, tmp_path / "two", renderer=second, model=str(tiny_checkpoint))
    assert (first.exports, second.exports) == (1, 0)
    assert type(second.pipeline.unet).__name__ == "CompiledUnet"
    assert all((a == b).all() for a, b in zip(pixels(tmp_path / "one"), pixels(tmp_path / "two"), strict=True))
    build(story, tmp_path / "folder", renderer=OpenVinoRenderer(), model=str(tiny_model))
    assert close(pixels(tmp_path / "one"), pixels(tmp_path / "folder")) <= 2
