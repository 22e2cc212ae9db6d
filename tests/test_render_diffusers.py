"""The diffusers renderer, on a tiny random pipeline built from configs (see tiny_pipeline.py): offline, CPU."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from storyboard.building import BuildProgress, build
from storyboard.cli import main
from storyboard.render.diffusers import DiffusersRenderer, dropped_words, probe_device
from storyboard.render.diffusers.device import cpu_has_bfloat16
from storyboard.render.diffusers.families import family_for
from storyboard.resolve import resolve
from storyboard.story import load_story

ROOT = Path(__file__).resolve().parent.parent

STORY = """
title: Tiny pictures
style:
  prefix: storybook
  negative: blurry
render:
  width: 64
  height: 64
  steps: 3
  seed: 40
panels:
  - prompt: a red apple on a table
  - prompt: a green field under a blue sky
  - prompt: a cat asleep on a chair
"""


def pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def panel_pixels(out: Path, count: int) -> list[bytes]:
    return [pixels(out / "panels" / f"panel-{i:02d}.png") for i in range(1, count + 1)]


def last_line(err: str) -> str:
    """The error line: before it, the plain progress display may have said which panels it is drawing."""
    assert err.endswith("\n") and err.count("Error:") == 1 and "Traceback" not in err
    return err.splitlines()[-1] + "\n"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "storyboard", *args], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=300)


@pytest.fixture
def story(write_story) -> Path:
    return write_story(STORY)


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory) -> Path:
    """One full build of STORY, shared by the tests that compare against it."""
    folder = tmp_path_factory.mktemp("reference")
    path = folder / "story.yaml"
    path.write_text(STORY.lstrip("\n"), encoding="utf-8")
    build(path, folder / "out", renderer="diffusers", model=str(tiny_model))
    return folder / "out"


def test_a_build_that_names_no_renderer_draws_with_diffusers(story, tiny_model, reference, tmp_path):
    result = build(story, tmp_path / "default", model=str(tiny_model))
    assert result.renderer == "diffusers"
    assert panel_pixels(tmp_path / "default", 3) == panel_pixels(reference, 3)


def test_two_builds_give_identical_pixels_and_panels_differ(story, tiny_model, reference, tmp_path):
    result = build(story, tmp_path / "again", renderer="diffusers", model=str(tiny_model))
    assert result.rendered == 3
    first, second = panel_pixels(reference, 3), panel_pixels(tmp_path / "again", 3)
    assert first == second
    assert len(set(first)) == 3  # each panel has its own seed and prompt
    assert len(set(first[0])) > 10  # a picture, not a flat square


def test_same_pixels_in_another_process(story, tiny_model, reference, tmp_path):
    done = run_cli("build", str(story), "--out", str(tmp_path / "cli"), "--model", str(tiny_model))
    assert done.returncode == 0, done.stderr
    assert "rendered 3, reused 0 (diffusers renderer)" in done.stdout
    assert "Loading" not in done.stderr and "%|" not in done.stderr  # no library progress bars
    assert panel_pixels(tmp_path / "cli", 3) == panel_pixels(reference, 3)


def test_panel_alone_equals_panel_in_full_build(write_story, tiny_model, reference, tmp_path):
    alone = write_story("""
        title: Just panel two
        style:
          prefix: storybook
          negative: blurry
        render:
          width: 64
          height: 64
          steps: 3
        panels:
          - prompt: a green field under a blue sky
            seed: 41
        """, name="alone.yaml")
    build(alone, tmp_path / "alone", renderer="diffusers", model=str(tiny_model))
    assert pixels(tmp_path / "alone" / "panels" / "panel-01.png") == panel_pixels(reference, 3)[1]


def test_different_seed_gives_different_image(write_story, tiny_model, reference, tmp_path):
    other = write_story(STORY.replace("seed: 40", "seed: 41"), name="other.yaml")
    build(other, tmp_path / "other", renderer="diffusers", model=str(tiny_model))
    moved = panel_pixels(tmp_path / "other", 3)
    assert moved[0] != panel_pixels(reference, 3)[0]
    # Panel 1 now has panel 2's seed but its own prompt: still a different image.
    assert moved[0] != panel_pixels(reference, 3)[1]


def test_model_loaded_once_per_build_and_not_for_a_cached_build(story, tiny_model, tmp_path):
    renderer = DiffusersRenderer()
    result = build(story, tmp_path / "out", renderer=renderer, model=str(tiny_model))
    assert result.rendered == 3 and renderer.loads == 1
    loaded = renderer.pipeline

    again = DiffusersRenderer()
    result = build(story, tmp_path / "out", renderer=again, model=str(tiny_model))
    assert result.reused == 3 and again.loads == 0 and again.pipeline is None

    # Adding a panel draws only that one, with the same single load in the new build.
    story.write_text(story.read_text() + "  - prompt: a lighthouse at night\n")
    result = build(story, tmp_path / "out", renderer=again, model=str(tiny_model))
    assert (result.rendered, result.reused, again.loads) == (1, 3, 1)
    assert renderer.pipeline is loaded


class StepRecorder(BuildProgress):
    def __init__(self) -> None:
        self.steps: list[tuple[int, int, int]] = []

    def step(self, job, step, total):
        self.steps.append((job.index, step, total))


def test_progress_reports_every_denoising_step(story, tiny_model, tmp_path):
    recorder = StepRecorder()
    build(story, tmp_path / "out", renderer="diffusers", model=str(tiny_model), progress=recorder)
    assert recorder.steps == [(i, s, 3) for i in (1, 2, 3) for s in (1, 2, 3)]


def test_scheduler_selection(write_story, tiny_model, reference, tmp_path):
    classes = {}
    images = {}
    for name in ("euler_a", "ddim", "dpmpp_2m_karras", "default"):
        path = write_story(STORY.replace("seed: 40", f"seed: 40\n  scheduler: {name}"), name=f"{name}.yaml")
        renderer = DiffusersRenderer()
        build(path, tmp_path / name, renderer=renderer, model=str(tiny_model))
        classes[name] = type(renderer.pipeline.scheduler).__name__
        images[name] = panel_pixels(tmp_path / name, 1)[0]
    assert classes == {"euler_a": "EulerAncestralDiscreteScheduler", "ddim": "DDIMScheduler",
                       "dpmpp_2m_karras": "DPMSolverMultistepScheduler", "default": "PNDMScheduler"}
    assert len(set(images.values())) == 4
    assert images["dpmpp_2m_karras"] == panel_pixels(reference, 1)[0]  # the documented default


def test_unknown_scheduler_is_a_story_error_before_any_model_load(write_story, capsys):
    path = write_story(STORY.replace("seed: 40", "seed: 40\n  scheduler: euler_ancestral"))
    code = main(["build", str(path), "--model", "no/such-model"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"Error: {path}:10: render.scheduler: unknown scheduler 'euler_ancestral' "
                          "(did you mean 'euler_a'?); choose from: default, euler, euler_a, heun, lms,")
    assert "dpmpp_2m_karras" in err and err.count("\n") == 1


def test_missing_hub_model_is_one_line(story, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["build", str(story), "--out", str(tmp_path / "out"), "--model", "nobody/no-such-model"])
    assert code == 1
    assert last_line(capsys.readouterr().err) == (
        f"Error: model 'nobody/no-such-model' is not in the Hugging Face cache ({tmp_path / 'hub'}) and "
        "HF_HUB_OFFLINE=1 forbids downloading it; download it with `storyboard download nobody/no-such-model`, "
        "pass a local diffusers folder or .safetensors "
        "file with --model, or use --renderer draft\n")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_missing_local_checkpoint_is_one_line(story, tmp_path, capsys):
    missing = tmp_path / "models" / "dreamshaper.safetensors"
    code = main(["build", str(story), "--out", str(tmp_path / "out"), "--model", str(missing)])
    assert code == 1
    assert last_line(capsys.readouterr().err) == (
        f"Error: model '{missing}' not found: no such file or folder ({missing}); pass a local diffusers "
        "folder or .safetensors file with --model, or use --renderer draft\n")


def cached_hub_model(model: Path, tmp_path: Path, monkeypatch) -> Path:
    """`model` as the hub cache holds a download of `tiny/sd` at commit 0123abcd; HF_HUB_CACHE points there."""
    cache = tmp_path / "hub"
    repo = cache / "models--tiny--sd"
    shutil.copytree(model, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_hub_id_loads_from_the_cache_offline(story, tiny_model, reference, tmp_path, monkeypatch):
    cached_hub_model(tiny_model, tmp_path, monkeypatch)
    renderer = DiffusersRenderer()
    build(story, tmp_path / "out", renderer=renderer, model="tiny/sd")
    assert renderer.loads == 1
    assert panel_pixels(tmp_path / "out", 3) == panel_pixels(reference, 3)
    job = resolve(load_story(story), model="tiny/sd")[0]
    assert renderer.identity(job)["revision"] == "0123abcd"


def test_identity_names_model_sampler_device_and_dtype(story, tiny_model, tmp_path):
    job = resolve(load_story(story), model=str(tiny_model))[0]
    identity = DiffusersRenderer().identity(job)
    assert identity["renderer"] == "diffusers"
    assert identity["sampler"] == "DPM++ 2M Karras"
    assert identity["scheduler"] == "dpmpp_2m_karras"
    # On the CPU, auto is bfloat16 where the CPU computes it natively (see test_cpu.py).
    expected = "bfloat16" if cpu_has_bfloat16() else "float32"
    assert (identity["device"], identity["dtype"]) == ("cpu", expected) == (probe_device(), expected)
    assert len(identity["folder_sha256"]) == 64

    # Changing a config in the folder changes the identity, hence the cache key.
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    before = DiffusersRenderer().identity(resolve(load_story(story), model=str(copy))[0])["folder_sha256"]
    config = json.loads((copy / "scheduler" / "scheduler_config.json").read_text())
    config["beta_end"] = 0.02
    (copy / "scheduler" / "scheduler_config.json").write_text(json.dumps(config))
    after = DiffusersRenderer().identity(resolve(load_story(story), model=str(copy))[0])["folder_sha256"]
    assert before != after


def test_identity_of_a_checkpoint_file_is_its_sha256(tmp_path, monkeypatch, story):
    import hashlib

    monkeypatch.setenv("STORYBOARD_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"not really weights" * 1000)
    job = resolve(load_story(story), model=str(checkpoint))[0]
    identity = DiffusersRenderer().identity(job)
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert (identity["sha256"], identity["model_hash"]) == (sha, sha[:10])
    stored = json.loads((tmp_path / "cache" / "hashes.json").read_text())
    assert stored[str(checkpoint.resolve())]["sha256"] == sha


def test_single_file_offline_without_configs_says_what_to_do(story, tmp_path, monkeypatch, capsys):
    import numpy as np
    from safetensors.numpy import save_file

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("STORYBOARD_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = tmp_path / "anime.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": np.zeros((4, 4), dtype=np.float32)},
              str(checkpoint))
    code = main(["build", str(story), "--out", str(tmp_path / "out"), "--model", str(checkpoint)])
    assert code == 1
    assert last_line(capsys.readouterr().err) == (
        f"Error: checkpoint '{checkpoint}' needs the configs of 'stable-diffusion-v1-5/stable-diffusion-v1-5', "
        "which are not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading them; set render.config "
        "in the story to a local diffusers folder or a cached hub id (e.g. after `hf download "
        "stable-diffusion-v1-5/stable-diffusion-v1-5 --include '*.json' '*.txt'`), or use --renderer draft\n")


LONG_TAIL = "a lighthouse keeper waving from the top of the tower"


def test_long_prompts_are_encoded_in_chunks(write_story, tiny_model, tmp_path):
    # Every character is one token of the tiny tokenizer: 120 characters are far beyond the 75-token window.
    head = "a small prince standing on a tiny planet with a single red rose under a glass dome, " * 2
    renderer = DiffusersRenderer()
    outs = []
    for i, tail in enumerate((LONG_TAIL, "a whale jumping out of a stormy sea at midnight")):
        path = write_story(STORY.replace("a red apple on a table", head + tail), name=f"long{i}.yaml")
        build(path, tmp_path / f"long{i}", renderer=renderer, model=str(tiny_model))
        outs.append(panel_pixels(tmp_path / f"long{i}", 1)[0])
    # Words far past token 77 still change the picture: they were not cut off.
    assert outs[0] != outs[1]
    assert renderer.loads == 1

    pipe = renderer.pipeline
    job = resolve(load_story(path), model=str(tiny_model))[0]
    family = family_for(type(pipe).__name__)
    args, cuts = family.text_args(pipe, job.__class__(**{**job.__dict__, "prompt": head + LONG_TAIL}))
    embeds, negative = args["prompt_embeds"], args["negative_prompt_embeds"]
    hidden = pipe.text_encoder.config.hidden_size
    chunks = -(-len(pipe.tokenizer(head + LONG_TAIL, add_special_tokens=False).input_ids) // 75)
    assert chunks >= 3 and cuts == []
    assert embeds.shape == negative.shape == (1, 77 * chunks, hidden)
    # Short prompts go through the pipeline unchanged.
    assert family.text_args(pipe, job.__class__(**{**job.__dict__, "prompt": "a cat"}))[0] == {
        "prompt": "a cat", "negative_prompt": "blurry"}


def test_truncation_warning_names_panel_and_dropped_words(tiny_model, story, caplog):
    from storyboard.render.diffusers.families import Kolors
    from storyboard.render.diffusers.prompts import report_cuts

    renderer = DiffusersRenderer()
    jobs = resolve(load_story(story), model=str(tiny_model))
    list(renderer.render(jobs[:1]))
    tokenizer = renderer.pipeline.tokenizer
    text = "x" * 75 + " " + LONG_TAIL
    assert dropped_words(tokenizer, text, 75) == LONG_TAIL
    assert dropped_words(tokenizer, "a cat", 75) == ""
    job = jobs[0].__class__(**{**jobs[0].__dict__, "prompt": text, "index": 7})
    # A family that passes the prompt as text (as Kolors does) cuts at its window; the renderer says so once.
    cuts = Kolors().text_args(renderer.pipeline, job)[1]
    with caplog.at_level(logging.WARNING, logger="storyboard"):
        assert report_cuts(job, cuts) == LONG_TAIL
    assert f"panel 7: the prompt is longer than the 75 tokens {tiny_model} reads; dropped: '{LONG_TAIL}'" \
        in caplog.text


def test_safety_checker_flags_are_shown_and_can_be_switched_off(story, tiny_model_flagging, tmp_path):
    out = tmp_path / "out"
    build(story, out, renderer="diffusers", model=str(tiny_model_flagging))
    for _ in range(2):  # the second build reuses the cached panels and must still report the flags
        manifest = json.loads((out / "manifest.json").read_text())
        assert [p.get("info") for p in manifest["panels"]] == [{"nsfw": True}] * 3
        assert (out / "index.html").read_text().count("Flagged by the model's safety checker") == 3
        assert set(pixels(out / "panels" / "panel-01.png")) == {0}  # the checker blacks the image out
        result = build(story, out, renderer="diffusers", model=str(tiny_model_flagging))
        assert result.reused == 3

    story.write_text(story.read_text().replace("steps: 3", "steps: 3\n  safety_checker: false"))
    renderer = DiffusersRenderer()
    build(story, tmp_path / "off", renderer=renderer, model=str(tiny_model_flagging))
    assert renderer.pipeline.safety_checker is None
    manifest = json.loads((tmp_path / "off" / "manifest.json").read_text())
    assert all("info" not in p for p in manifest["panels"])
    assert "Flagged" not in (tmp_path / "off" / "index.html").read_text()
    assert len(set(pixels(tmp_path / "off" / "panels" / "panel-01.png"))) > 10


def test_help_draft_and_cached_builds_do_not_import_torch(story, tiny_model, tmp_path):
    build(story, tmp_path / "sd", renderer="diffusers", model=str(tiny_model))
    script = f"""
import sys
from storyboard.cli import main
for args in (["--help"], ["build", {str(story)!r}, "--renderer", "draft", "--out", {str(tmp_path / 'draft')!r}],
             ["build", {str(story)!r}, "--out", {str(tmp_path / 'sd')!r}, "--model", {str(tiny_model)!r}]):
    try:
        main(args)
    except SystemExit:
        pass
    heavy = sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules)
    print(args[0], args[-1] if len(args) > 1 else "", heavy)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stdout.splitlines() if ln.endswith("]")]
    assert lines == ["--help  []", f"build {tmp_path / 'draft'} []", f"build {tiny_model} []"]
    assert "rendered 0, reused 3 (diffusers renderer)" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("STORYBOARD_TEST_MODEL"),
                    reason="set STORYBOARD_TEST_MODEL to a local Stable Diffusion model to run")
def test_real_model_draws_a_real_picture(write_story, tmp_path):
    import numpy as np

    path = write_story("""
        title: Real
        render:
          width: 512
          height: 512
          steps: 20
          safety_checker: false
        panels:
          - prompt: a red apple on a wooden table, studio photo
        """)
    build(path, tmp_path / "out", renderer="diffusers", model=os.environ["STORYBOARD_TEST_MODEL"])
    with Image.open(tmp_path / "out" / "panels" / "panel-01.png") as image:
        array = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert array.shape == (512, 512, 3)
    assert array.std() > 20  # not a flat or black square
    red, green = array[..., 0].mean(), array[..., 1].mean()
    assert red > green  # a red apple


def test_device_this_torch_cannot_use_is_one_line(write_story, tiny_model, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = write_story(STORY.replace("seed: 40", "seed: 40\n  device: cuda"))
    code = main(["build", str(path), "--out", str(tmp_path / "out"), "--model", str(tiny_model)])
    assert code == 1
    assert last_line(capsys.readouterr().err) == (
        f"Error: render.device asks for cuda, but this torch {torch.__version__} cannot use it; install a torch "
        "build for your GPU or set render.device: cpu in the story\n")


def test_scheduler_needing_a_missing_package_fails_before_loading(write_story, tiny_model, tmp_path):
    import importlib.util

    from storyboard.errors import RenderError

    if importlib.util.find_spec("torchsde") is not None:
        pytest.skip("torchsde is installed")
    path = write_story(STORY.replace("seed: 40", "seed: 40\n  scheduler: dpmpp_sde_karras"))
    renderer = DiffusersRenderer()
    with pytest.raises(RenderError, match=r"^scheduler 'dpmpp_sde_karras' needs the torchsde package: "
                                          r"pip install torchsde$"):
        build(path, tmp_path / "out", renderer=renderer, model=str(tiny_model))
    assert renderer.loads == 0


def test_single_file_checkpoint_gives_the_folder_pixels(story, tiny_model, tiny_checkpoint, reference, tmp_path,
                                                         monkeypatch):
    monkeypatch.setenv("STORYBOARD_CACHE_DIR", str(tmp_path / "user-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    # With render.config naming a diffusers folder for its configs.
    with_config = story.parent / "with-config.yaml"
    with_config.write_text(story.read_text().replace("seed: 40", f"seed: 40\n  config: {tiny_model}"))
    renderer = DiffusersRenderer()
    build(with_config, tmp_path / "config", renderer=renderer, model=str(tiny_checkpoint))
    assert type(renderer.pipeline).__name__ == "StableDiffusionPipeline" and renderer.loads == 1
    assert panel_pixels(tmp_path / "config", 3) == panel_pixels(reference, 3)
    job = resolve(load_story(with_config), model=str(tiny_checkpoint))[0]
    assert len(renderer.identity(job)["model_hash"]) == 10

    # Without it, the configs diffusers guesses for the checkpoint are read from the local hub cache.
    repo = tmp_path / "hub" / "models--stable-diffusion-v1-5--stable-diffusion-v1-5"
    shutil.copytree(tiny_model, repo / "snapshots" / "feedface")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("feedface")
    build(story, tmp_path / "guessed", renderer="diffusers", model=str(tiny_checkpoint))
    assert panel_pixels(tmp_path / "guessed", 3) == panel_pixels(reference, 3)


def test_a_moved_model_folder_still_rebuilds_what_it_drew(story, tiny_model, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    out = tmp_path / "out"
    build(story, out, renderer="diffusers", model=str(model))
    panels = {p.name: p.read_bytes() for p in (out / "panels").iterdir()}

    model.rename(tmp_path / "away")
    again = build(story, out, renderer="diffusers", model=str(model))
    assert (again.rendered, again.reused) == (0, 3)
    assert {p.name: p.read_bytes() for p in (out / "panels").iterdir()} == panels

    story.write_text(story.read_text().replace("a cat asleep", "a dog asleep"), encoding="utf-8")
    assert main(["build", str(story), "--out", str(out), "--model", str(model)]) == 1
    assert last_line(capsys.readouterr().err) == (
        f"Error: model '{model}' not found: no such file or folder ({model}); pass a local diffusers folder or "
        ".safetensors file with --model, or use --renderer draft\n")
    assert {p.name: p.read_bytes() for p in (out / "panels").iterdir()} == panels


UNREACHABLE = "http://127.0.0.1:9"  # nothing listens on port 9 of this machine


def test_download_errors_are_one_line(write_story, tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["download", "nobody/model"]) == 1
    assert capsys.readouterr().err == ("Error: cannot download 'nobody/model': HF_HUB_OFFLINE=1 forbids it; "
                                       "unset it and try again\n")
    story = write_story(f"title: x\nrender:\n  model: {tiny_model}\npanels:\n  - prompt: a\n")
    assert main(["download", str(story)]) == 1
    assert capsys.readouterr().err == f"Error: model '{tiny_model}' is a local folder; there is nothing to download\n"

    # A hub that cannot be reached (nothing listens on port 9 of this machine).
    done = run_cli("download", "nobody/model",
                   env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": UNREACHABLE, "HF_HUB_CACHE": str(tmp_path / "hub")})
    assert done.returncode == 1
    err = done.stderr
    assert err == ("Error: cannot download 'nobody/model' from the Hugging Face hub (ConnectionRefusedError: "
                   "[Errno 111] Connection refused); check the network connection and the model id\n")
    assert err.count("\n") == 1
    assert not (tmp_path / "hub" / "models--nobody--model" / "snapshots").exists()


def test_a_hub_model_is_fetched_before_its_panels_are_keyed(story, tmp_path):
    """So the key names the commit it was drawn with; here the hub is unreachable (nothing listens on port 9)."""
    done = run_cli("build", str(story), "--out", str(tmp_path / "out"), "--model", "nobody/model",
                   env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": UNREACHABLE, "HF_HUB_CACHE": str(tmp_path / "hub")})
    assert done.returncode == 1
    assert done.stderr == ("Error: cannot download 'nobody/model' from the Hugging Face hub (ConnectionRefusedError: "
                           "[Errno 111] Connection refused); check the network connection and the model id\n")
    assert not (tmp_path / "out").exists()


def test_a_long_lived_renderer_sees_models_change_on_disk(story, tiny_model, tmp_path, monkeypatch):
    """What a server keeps for hours must not go stale: a folder saved again, a new hub snapshot, a new file."""
    renderer = DiffusersRenderer()
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    job = resolve(load_story(story), model=str(folder))[0]
    before = renderer.identity(job)["folder_sha256"]
    assert renderer.identity(job)["folder_sha256"] == before
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # saved again in place
    assert renderer.identity(job)["folder_sha256"] != before

    cache = tmp_path / "hub"
    repo = cache / "models--tiny--sd"
    for commit in ("0123abcd", "4567cdef"):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "model_index.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    hub_job = resolve(load_story(story), model="tiny/sd")[0]
    assert renderer.identity(hub_job)["revision"] == "0123abcd"
    (repo / "refs" / "main").write_text("4567cdef")  # `storyboard download` fetched a newer snapshot
    assert renderer.identity(hub_job)["revision"] == "4567cdef"

    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"first")
    file_job = resolve(load_story(story), model=str(checkpoint))[0]
    first = renderer.identity(file_job)["sha256"]
    checkpoint.write_bytes(b"second, longer")
    assert renderer.identity(file_job)["sha256"] != first


def test_switching_model_frees_the_old_pipeline_before_loading_the_new(story, tiny_model, tmp_path, monkeypatch):
    import gc
    import weakref

    import storyboard.render.diffusers.load as module

    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)
    renderer = DiffusersRenderer()
    build(story, tmp_path / "a", renderer=renderer, model=str(tiny_model))
    old = weakref.ref(renderer.pipeline)
    alive_at_load: list[bool] = []
    load = module.load_pretrained

    def watching_load(*args, **kwargs):
        gc.collect()
        alive_at_load.append(old() is not None)
        return load(*args, **kwargs)

    monkeypatch.setattr(module, "load_pretrained", watching_load)
    build(story, tmp_path / "b", renderer=renderer, model=str(other))
    assert alive_at_load == [False] and renderer.loads == 2

    # The same folder saved again in place is loaded again too: its weights may have changed.
    weights = other / "unet" / "diffusion_pytorch_model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    build(story, tmp_path / "b", renderer=renderer, model=str(other))
    assert renderer.loads == 3


FAKE_HUB = """
import json, os, sys
from loopback import JsonHandler, LoopbackServer

class Hub(JsonHandler):  # knows no repository, as the real hub answers for one that does not exist
    def do_GET(self):
        seen.append(self.path)
        self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})

    do_HEAD = do_GET

seen = []
server = LoopbackServer(Hub).start()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{server.port}"  # read when huggingface_hub is imported
from storyboard.errors import ModelNotFound
from storyboard.render.diffusers import DiffusersRenderer
from storyboard.resolve import resolve
from storyboard.story import load_story

jobs = resolve(load_story(sys.argv[1]), model="nobody/model")
renderer = DiffusersRenderer()
for step in ("identity", "prepare", "identity"):
    try:
        getattr(renderer, step)(jobs if step == "prepare" else jobs[0])
        outcome = "ok"
    except ModelNotFound as exc:
        outcome = str(exc)
    print(json.dumps([step, outcome, len(seen), "torch" in sys.modules]))
"""


def test_identity_never_downloads_prepare_does(story, tmp_path):
    """identity() reads the disk only (no request, no torch); prepare() asks the hub, and what it could not fetch
    is what identity() then says."""
    done = subprocess.run([sys.executable, "-c", FAKE_HUB, str(story)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
                                            "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(tmp_path / "hub")})
    assert done.returncode == 0, done.stderr
    hint = ("download it with `storyboard download nobody/model`, pass a local diffusers folder or .safetensors file "
            "with --model, or use --renderer draft")
    steps = [json.loads(line) for line in done.stdout.splitlines()]
    assert steps[0] == ["identity", f"model 'nobody/model' is not in the Hugging Face cache ({tmp_path / 'hub'}); "
                                    f"{hint}", 0, False]
    assert steps[1][:2] == ["prepare", "ok"] and steps[1][2] > 0
    assert steps[2] == ["identity", f"model 'nobody/model' was not found on the Hugging Face hub; {hint}",
                        steps[1][2], True]


def test_a_hub_model_that_cannot_be_fetched_still_rebuilds_what_it_drew(story, tiny_model, tmp_path, monkeypatch,
                                                                        capsys):
    cache = cached_hub_model(tiny_model, tmp_path, monkeypatch)
    repo = cache / "models--tiny--sd"
    out = tmp_path / "out"
    build(story, out, renderer="diffusers", model="tiny/sd")
    panels = {p.name: p.read_bytes() for p in (out / "panels").iterdir()}

    shutil.rmtree(repo)  # the cache was cleared, and the hub cannot be reached: prepare's download fails
    env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": UNREACHABLE, "HF_HUB_CACHE": str(cache)}
    done = run_cli("build", str(story), "--out", str(out), "--model", "tiny/sd", env=env)
    assert done.returncode == 0, done.stderr
    assert "rendered 0, reused 3 (diffusers renderer)" in done.stdout
    assert {p.name: p.read_bytes() for p in (out / "panels").iterdir()} == panels

    story.write_text(story.read_text().replace("a cat asleep", "a dog asleep"), encoding="utf-8")
    done = run_cli("build", str(story), "--out", str(out), "--model", "tiny/sd", env=env)
    assert done.returncode == 1
    assert done.stderr == (
        "Error: cannot download 'tiny/sd' from the Hugging Face hub (ConnectionRefusedError: [Errno 111] Connection "
        "refused); check the network connection and the model id\n")


def _corrupt_weights(folder: Path) -> None:
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors" * 100)


def _unknown_component_class(folder: Path) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "NoSuchScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index))


def _invalid_model_index(folder: Path) -> None:
    (folder / "model_index.json").write_text("{not json")


@pytest.mark.parametrize(("breakage", "reported"), [
    (_corrupt_weights, " (OSError: Unable to load weights from checkpoint file"),
    (_unknown_component_class, " (ValueError: `diffusers` has no class `NoSuchScheduler`"),
    (_invalid_model_index, ": its model_index.json cannot be read (JSONDecodeError: "),
])
def test_a_broken_model_is_reported_as_what_it_is_not_as_missing(story, tiny_model, tmp_path, breakage, reported):
    from storyboard.errors import ModelNotFound, RenderError

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    breakage(model)
    with pytest.raises(RenderError) as raised:
        build(story, tmp_path / "out", renderer="diffusers", model=str(model))
    assert not isinstance(raised.value, ModelNotFound)
    assert str(raised.value).startswith(f"cannot load model '{model}'{reported}")
    assert "--renderer draft" not in str(raised.value)


def test_a_model_folder_missing_a_file_is_model_not_found(story, tiny_model, tmp_path):
    from storyboard.errors import ModelNotFound

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / "unet" / "diffusion_pytorch_model.safetensors").unlink()  # a download that stopped half-way
    with pytest.raises(ModelNotFound, match=r"^cannot load model '.*' \(OSError: Error no file named "
                                            r"diffusion_pytorch_model.bin found in directory .*; pass a local "
                                            r"diffusers folder or .safetensors file with --model, or use "
                                            r"--renderer draft$"):
        build(story, tmp_path / "out", renderer="diffusers", model=str(model))


def test_the_collector_is_paused_while_a_pipeline_loads_and_resumed_after(tmp_path, monkeypatch):
    import gc

    from storyboard.render.diffusers import load

    seen = []
    monkeypatch.setattr(load, "_open_pipeline", lambda *args: seen.append(gc.isenabled()) or ("pipe", "cpu"))
    assert gc.isenabled()
    assert load.open_pipeline(None, None) == ("pipe", "cpu")
    assert seen == [False] and gc.isenabled()

    def fails(*args):
        raise RuntimeError("no such weights")

    monkeypatch.setattr(load, "_open_pipeline", fails)
    with pytest.raises(RuntimeError):
        load.open_pipeline(None, None)
    assert gc.isenabled()

    gc.disable()  # a caller's own pause is the caller's to end
    try:
        with load.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
