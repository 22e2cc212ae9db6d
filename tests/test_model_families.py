"""SDXL, FLUX, SD3 and Kolors through the diffusers renderer, on tiny random pipelines built from configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from storyboard.building import build
from storyboard.errors import RenderError
from storyboard.render.diffusers import DiffusersRenderer

ROOT = Path(__file__).resolve().parent.parent

# 104+ tokens of the tiny CLIP tokenizer (one token per character), before the words that tell the panels apart.
HEAD = "storybook, " + "a little prince standing on a tiny planet with a red rose under a glass dome, " * 2


def story(head: str, tails: list[str], render: str = "", negative: str = "blurry") -> str:
    panels = "".join(f"  - prompt: {head}{tail}\n    seed: 5\n" for tail in tails)
    return (f"title: Families\nstyle:\n  negative: {negative}\nrender:\n  width: 64\n  height: 64\n  steps: 2\n"
            f"{render}panels:\n{panels}")


def pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


LIBRARY_NOISE = ("Token indices", "truncated", "[transformers]", "Warning", "warn(", "it/s]", "deprecated", "%|")
FAMILIES = ("sdxl", "flux", "sd3", "kolors")
TWO_PANELS = {
    # Same seed, same first 150 tokens: only the words past CLIP's window tell the two panels apart.
    "sdxl": story(HEAD, ["a whale in a stormy sea", "a lighthouse keeper waving"]),
    # Past CLIP's 77 tokens but within T5's window: the tail words still reach the picture.
    "flux": story(HEAD, ["a whale in a stormy sea", "a lighthouse keeper waving"]),
    "sd3": story(HEAD, ["a whale in a stormy sea", "a lighthouse keeper waving"]),
    "kolors": story("", ["小王子站在星球上", "狐狸坐在麦田里"], negative="模糊"),
}


@pytest.fixture(scope="module")
def built(tiny_sdxl, tiny_flux, tiny_sd3, tiny_kolors, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Each family's two-panel story built by the real CLI in one fresh process (torch is imported once):
    {family: (output folder, what that build wrote on stderr)}."""
    root = tmp_path_factory.mktemp("families")
    models = {"sdxl": tiny_sdxl, "flux": tiny_flux, "sd3": tiny_sd3, "kolors": tiny_kolors}
    runs = []
    for family in FAMILIES:
        (root / f"{family}.yaml").write_text(TWO_PANELS[family], encoding="utf-8")
        runs.append(["build", str(root / f"{family}.yaml"), "--out", str(root / family), "--model",
                     str(models[family])])
    script = ("import sys\nfrom storyboard.cli import main\n"
              f"for name, args in zip({FAMILIES!r}, {runs!r}):\n"
              "    print('=== ' + name, file=sys.stderr, flush=True)\n"
              "    code = main(args)\n"
              "    print('=== exit', code, file=sys.stderr, flush=True)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600)
    parts = done.stderr.split("=== ")[1:]
    assert done.returncode == 0 and len(parts) == 2 * len(FAMILIES), done.stderr
    return {family: (root / family, parts[2 * i].split("\n", 1)[1]) for i, family in enumerate(FAMILIES)
            if parts[2 * i + 1].strip() == "exit 0" or pytest.fail(done.stderr)}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_builds_a_page_without_library_noise(built, family):
    out, stderr = built[family]
    assert (out / "page.png").is_file() and (out / "index.html").is_file()
    assert not any(noise in stderr for noise in LIBRARY_NOISE), stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert all("dropped_words" not in panel.get("info", {}) for panel in manifest["panels"])
    assert "dropped" not in stderr
    first, second = (pixels(out / "panels" / f"panel-0{i}.png") for i in (1, 2))
    assert first != second  # for SDXL, FLUX and SD3: the words past CLIP's 77 tokens were read
    assert len(set(first)) > 10  # a picture, not NaNs turned black


def test_flux_says_once_what_it_does_not_use(built):
    stderr = built["flux"][1]
    assert stderr.count("FLUX takes no negative prompt: style.negative is not used\n") == 1
    assert stderr.count("render.guidance 7.5 is FLUX's distilled guidance, not classifier-free guidance: "
                        "FLUX.1-dev is made for 1 to 6 (3.5 is usual)\n") == 1


def test_sdxl_long_prompt_embeddings_cover_both_encoders(write_story, tiny_sdxl, tmp_path):
    from storyboard.render.diffusers.families import family_for
    from storyboard.resolve import resolve
    from storyboard.story import load_story

    path = write_story(story(HEAD, ["a whale"]))
    renderer = DiffusersRenderer()
    build(path, tmp_path / "out", renderer=renderer, model=str(tiny_sdxl))
    pipe = renderer.pipeline
    job = resolve(load_story(path), model=str(tiny_sdxl))[0]
    args, cuts = family_for(type(pipe).__name__).text_args(pipe, job)
    chunks = -(-len(pipe.tokenizer(job.prompt, add_special_tokens=False).input_ids) // 75)
    assert chunks >= 2 and cuts == []
    assert args["prompt_embeds"].shape == args["negative_prompt_embeds"].shape == (1, 77 * chunks, 64)
    assert args["pooled_prompt_embeds"].shape == args["negative_pooled_prompt_embeds"].shape == (1, 32)


def test_flux_prompt_past_t5_window_is_reported_once_in_our_words(write_story, tiny_flux, tmp_path, caplog):
    long = "a little fox " * 60 + "under the moon"  # 600+ T5 tokens: past the 512 the pipeline reads
    path = write_story(story(long, [""], render="  guidance: 3.5\n", negative="''"))
    build(path, tmp_path / "out", renderer="diffusers", model=str(tiny_flux))
    cut = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(cut) == 1 and cut[0].startswith(f"panel 1: the prompt is longer than the 511 tokens {tiny_flux} "
                                               f"reads; dropped: ")
    assert cut[0].endswith("under the moon'")
    assert not [r for r in caplog.records if "FLUX" in r.getMessage()]  # no negative, guidance as it should be


@pytest.mark.parametrize(("model", "scheduler", "message"), [
    ("tiny_flux", "euler_a", "render.scheduler 'euler_a' does not fit FLUX (FluxPipeline), a flow-matching model; "
                             "choose from: default, flow_euler, flow_euler_karras"),
    ("tiny_sdxl", "flow_euler", "render.scheduler 'flow_euler' does not fit SDXL (StableDiffusionXLPipeline), "
                                "not a flow-matching model; choose from: default, euler, euler_a,"),
])
def test_a_scheduler_that_does_not_fit_the_family_is_one_line(write_story, tmp_path, capsys, request, model,
                                                              scheduler, message):
    from storyboard.cli import main

    folder = request.getfixturevalue(model)
    path = write_story(story("a fox", [""], render=f"  scheduler: {scheduler}\n"))
    renderer = DiffusersRenderer()
    with pytest.raises(RenderError):
        build(path, tmp_path / "out", renderer=renderer, model=str(folder))
    assert renderer.loads == 0  # told from model_index.json, before the model is loaded
    code = main(["build", str(path), "--out", str(tmp_path / "out"), "--model", str(folder)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("Error:") == 1 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("Error: " + message)


def test_flux_keeps_its_own_scheduler_unless_the_story_chooses_one(write_story, tiny_flux, tmp_path):
    chosen = write_story(story("a fox", [""], render="  guidance: 3.5\n  scheduler: flow_euler_karras\n"), "c.yaml")
    left = write_story(story("a fox", [""], render="  guidance: 3.5\n"), name="l.yaml")
    karras, identities = [], []
    for path in (chosen, left):
        renderer = DiffusersRenderer()
        build(path, tmp_path / path.stem, renderer=renderer, model=str(tiny_flux))
        assert type(renderer.pipeline.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
        karras.append(renderer.pipeline.scheduler.config.use_karras_sigmas)
        manifest = json.loads((tmp_path / path.stem / "manifest.json").read_text())
        identities.append(manifest["panels"][0]["identity"]["scheduler"])
    assert karras == [True, False]
    assert identities == ["flow_euler_karras", "default"]  # the story's default dpmpp_2m_karras is not used


def test_flux_sizes_are_multiples_of_twice_the_vae_scale(write_story, tiny_flux, tmp_path):
    from types import SimpleNamespace

    from storyboard.render.diffusers.families import Flux, family_for

    # FLUX.1's VAE scales by 8 and its latents are packed 2x2: 520 would be resized by the pipeline, not drawn.
    assert Flux().size_multiple(SimpleNamespace(vae_scale_factor=8)) == 16
    assert family_for("StableDiffusion3Pipeline").size_multiple(
        SimpleNamespace(vae_scale_factor=8, transformer=SimpleNamespace(config=SimpleNamespace(patch_size=2)))) == 16
    assert family_for("StableDiffusionXLPipeline").size_multiple(SimpleNamespace(vae_scale_factor=8)) == 8


def test_an_sdxl_lora_changes_the_sdxl_panels_that_use_it(write_story, tiny_sdxl, tiny_sdxl_lora, tmp_path):
    lora = tiny_sdxl_lora
    plain = write_story(story("a fox", ["", " in the snow"]), name="plain.yaml")
    with_lora = write_story(story("a fox", ["", " in the snow"], render=f"  loras:\n    - path: {lora}\n"),
                            name="lora.yaml")
    renderer = DiffusersRenderer()
    for path in (plain, with_lora):
        build(path, tmp_path / path.stem, renderer=renderer, model=str(tiny_sdxl))
    assert renderer.loads == 1
    for i in (1, 2):
        assert pixels(tmp_path / "plain" / "panels" / f"panel-0{i}.png") != \
            pixels(tmp_path / "lora" / "panels" / f"panel-0{i}.png")
