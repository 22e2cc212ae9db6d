"""The story's render: settings for the diffusers renderer: validated strictly, and only the ones that change
pixels enter the cache key. No torch here."""

from __future__ import annotations

import pytest

from storyboard.errors import ModelNotFound, StoryError
from storyboard.resolve import content_key, resolve
from storyboard.schedulers import SCHEDULERS
from storyboard.story import story_from_yaml


def story(render: str = ""):
    return story_from_yaml("title: t\nrender:\n  width: 64\n" + render + "panels:\n  - prompt: a cat\n", "s.yaml")


@pytest.mark.parametrize("line, message", [
    ("scheduler: Euler a", "s.yaml:4: render.scheduler: unknown scheduler 'Euler a' (did you mean 'euler_a'?); "
                           "choose from: " + ", ".join(SCHEDULERS)),
    ("device: gpu", "s.yaml:4: render.device: unknown device 'gpu'; use auto, cpu, mps, cuda or cuda:N"),
    ("dtype: fp16", "s.yaml:4: render.dtype: expected 'auto', 'float16', 'bfloat16' or 'float32', got text ('fp16')"),
    ("vae_tiling: 'yes'", "s.yaml:4: render.vae_tiling: expected true or false, got text ('yes')"),
    ("cpu_offload: 1", "s.yaml:4: render.cpu_offload: expected true or false, got a whole number (1)"),
    ("safty_checker: false", "s.yaml:4: render.safty_checker: unknown field (did you mean 'safety_checker'?)"),
])
def test_bad_render_settings_are_one_clear_line(line, message):
    with pytest.raises(StoryError) as error:
        story(f"  {line}\n")
    assert str(error.value) == message


def test_defaults_are_visible():
    render = story().render
    assert (render.scheduler, render.device, render.dtype, render.safety_checker) == \
        ("dpmpp_2m_karras", "auto", "auto", True)
    assert not any([render.attention_slicing, render.vae_tiling, render.vae_slicing, render.cpu_offload])
    assert render.config is None


def key(render: str) -> str:
    return content_key(resolve(story(render))[0].params())


def test_only_pixel_settings_change_the_cache_key():
    base = key("")
    for changes_pixels in ("  scheduler: euler_a\n", "  safety_checker: false\n", "  vae_tiling: true\n",
                           "  attention_slicing: true\n", "  config: some/repo\n", "  vae: tiny\n"):
        assert key(changes_pixels) != base, changes_pixels
    # Device and dtype enter through the renderer's identity, as the class and dtype they resolve to.
    for runtime_only in ("  cpu_offload: true\n", "  vae_slicing: true\n", "  device: cpu\n", "  dtype: float32\n"):
        assert key(runtime_only) == base, runtime_only
    job = resolve(story("  cpu_offload: true\n  scheduler: ddim\n"))[0]
    assert dict(job.runtime)["cpu_offload"] is True and dict(job.options)["scheduler"] == "ddim"


def test_identity_decides_device_class_and_dtype_from_the_settings(tmp_path, monkeypatch):
    from storyboard.render.diffusers import DiffusersRenderer

    repo = tmp_path / "models--nobody--x"  # a hub model in the cache, as `storyboard download` leaves it
    (repo / "snapshots" / "c0ffee").mkdir(parents=True)
    (repo / "snapshots" / "c0ffee" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c0ffee")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    renderer = DiffusersRenderer()
    identity = renderer.identity(resolve(story("  device: cuda:1\n  scheduler: euler_a\n"), model="nobody/x")[0])
    assert (identity["device"], identity["dtype"], identity["sampler"]) == ("cuda", "float16", "Euler a")
    assert (identity["model"], identity["revision"]) == ("nobody/x", "c0ffee")
    identity = renderer.identity(resolve(story("  device: mps\n  dtype: bfloat16\n"), model="nobody/x")[0])
    assert (identity["device"], identity["dtype"], identity["sampler"]) == ("mps", "bfloat16", "DPM++ 2M Karras")
    # On the CPU, auto is bfloat16 where the CPU computes it natively, float32 elsewhere (see test_cpu.py).
    for flags, dtype in (("fpu sse avx2 avx512f", "float32"), ("fpu sse avx2 avx512f avx512_bf16", "bfloat16")):
        (tmp_path / dtype).write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr("storyboard.render.diffusers.device.CPUINFO", tmp_path / dtype)
        identity = DiffusersRenderer().identity(resolve(story("  device: cpu\n"), model="nobody/x")[0])
        assert (identity["device"], identity["dtype"]) == ("cpu", dtype)
    # Offline, a model that is not cached cannot be identified (nor drawn): the build decides what that means.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE=1 forbids downloading it"):
        DiffusersRenderer().identity(resolve(story("  device: cpu\n"), model="nobody/y")[0])
