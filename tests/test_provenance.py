"""Each panel PNG says how it was made (A1111 `parameters` + a storyboard JSON chunk); `storyboard info` reads it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from storyboard import __version__
from storyboard.building import build
from storyboard.cli import main
from storyboard.provenance import a1111_parameters, with_text
from storyboard.resolve import PanelJob

STORY = """
# A comment that must survive.
title: The lighthouse
style:
  prefix: ink drawing
  negative: blurry, watermark
render:
  width: 64
  height: 64
  steps: 4
  guidance: 6.5
  seed: 40
panels:
  - prompt: close-up of a keeper, smiling
    caption: The keeper
  - prompt: wide shot of the lighthouse in a storm
    seed: 777
"""


def text_chunks(path) -> dict[str, str]:
    with Image.open(path) as image:
        return dict(image.text)


def test_panel_png_carries_a1111_parameters(write_story, small_renderer, tmp_path):
    story = write_story(STORY)
    model = tmp_path / "tiny.safetensors"
    model.write_bytes(b"weights")
    result = build(story, tmp_path / "out", renderer=small_renderer, model=str(model))
    model_hash = result.panels[1].identity["model_hash"]

    parameters = text_chunks(tmp_path / "out" / "panels" / "panel-02.png")["parameters"]
    assert parameters == (
        "ink drawing, wide shot of the lighthouse in a storm\n"
        "Negative prompt: blurry, watermark\n"
        f"Steps: 4, Sampler: Small a, CFG scale: 6.5, Seed: 777, Size: 64x64, Model hash: {model_hash}, "
        f"Model: {model}, Precision: float32"
    )


def test_a1111_text_quotes_values_with_commas_and_colons_and_keeps_multiline_prompts():
    job = PanelJob(index=1, prompt="a fox,\nin the snow", negative_prompt="", seed=2**40, width=512, height=768,
                   model=r"C:\models\fox, v2.safetensors", steps=25, guidance=7.0)
    text = a1111_parameters(job, {}, "draft")
    assert text == ('a fox,\nin the snow\n'
                    'Steps: 25, Sampler: draft, CFG scale: 7.0, Seed: 1099511627776, Size: 512x768, '
                    'Model: "C:\\\\models\\\\fox, v2.safetensors"')


def test_storyboard_chunk_has_the_job_identity_story_and_version(write_story, tmp_path):
    story = write_story(STORY)
    result = build(story, tmp_path / "out", renderer="draft")
    cached = tmp_path / "out" / "cache" / f"{result.panels[0].key}.png"
    published = tmp_path / "out" / "panels" / "panel-01.png"
    record = json.loads(text_chunks(published)["storyboard"])
    assert record["storyboard"] == __version__
    assert record["story"] == {"title": "The lighthouse", "file": str(story), "panel": 1, "panels": 2}
    assert record["job"] == result.panels[0].job.to_dict()
    assert record["renderer"] == "draft"
    assert record["identity"] == result.panels[0].identity
    assert record["key"] == result.panels[0].key
    assert record["variant"] is False
    # The published file is the cached one, byte for byte, when drawn for this very panel.
    assert published.read_bytes() == cached.read_bytes()


def test_moving_a_panel_reuses_its_image_and_the_copy_names_its_new_place(write_story, small_renderer, tmp_path):
    story = write_story(STORY)
    build(story, tmp_path / "out", renderer=small_renderer)
    moved = STORY.replace("panels:\n", "panels:\n  - prompt: a gull\n    seed: 40\n")
    story.write_text(textwrap.dedent(moved).lstrip("\n"))
    small_renderer.drawn.clear()
    build(story, tmp_path / "out", renderer=small_renderer)
    assert [job.index for job in small_renderer.drawn] == [1, 2]  # the gull, and the keeper's seed moved on
    record = json.loads(text_chunks(tmp_path / "out" / "panels" / "panel-03.png")["storyboard"])
    assert (record["story"]["panel"], record["job"]["seed"]) == (3, 777)
    with Image.open(tmp_path / "out" / "panels" / "panel-03.png") as image:
        image.load()


def test_setting_a_text_chunk_to_its_value_gives_the_same_bytes(minimal_story, tmp_path):
    build(minimal_story, tmp_path / "out", renderer="draft")
    data = (tmp_path / "out" / "panels" / "panel-01.png").read_bytes()
    record = text_chunks(tmp_path / "out" / "panels" / "panel-01.png")["storyboard"]
    assert with_text(data, "storyboard", record) == data
    changed = with_text(data, "storyboard", "{}")
    assert changed != data and len(changed) < len(data)
    (tmp_path / "x.png").write_bytes(with_text(changed, "note", "说明"))
    assert text_chunks(tmp_path / "x.png") | {"parameters": ""} == {"storyboard": "{}", "note": "说明",
                                                                     "parameters": ""}


def test_info_prints_how_the_panel_was_made_and_how_to_draw_it_again(write_story, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_story(STORY)
    assert main(["build", "story.yaml", "--renderer", "draft"]) == 0
    key = json.loads((tmp_path / "build" / "story" / "manifest.json").read_text())["panels"][0]["key"]
    capsys.readouterr()
    assert main(["info", "build/story/panels/panel-01.png"]) == 0
    assert capsys.readouterr().out == textwrap.dedent(f"""\
        build/story/panels/panel-01.png: panel 1 of "The lighthouse" (story.yaml)
        drawn by storyboard {__version__} with the draft renderer (version 3)

        prompt:     ink drawing, close-up of a keeper, smiling
        negative:   blurry, watermark
        seed:       40
        size:       64x64
        steps:      4
        guidance:   6.5
        sampler:    draft
        model:      stable-diffusion-v1-5/stable-diffusion-v1-5
        cache key:  {key}

        to draw it again:
          storyboard build story.yaml --renderer draft --panel 1
        """)

    (tmp_path / "story.yaml").write_text((tmp_path / "story.yaml").read_text().replace("seed: 40", "seed: 41"))
    assert main(["info", "build/story/panels/panel-01.png"]) == 0
    assert capsys.readouterr().out.endswith(
        "\nnote: story.yaml has changed since (seed now differs); these commands would draw something else\n")


def test_info_reproduce_command_keeps_out_and_model(write_story, small_renderer, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_story(STORY)
    (tmp_path / "my model.safetensors").write_bytes(b"w")
    args = ["build", "story.yaml", "--out", "pages/v1", "--renderer", "small", "--model", "my model.safetensors"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["info", "pages/v1/panels/panel-02.png"]) == 0
    out = capsys.readouterr().out
    assert "\nsampler:    Small a\n" in out
    assert "\nmodel hash: " in out
    assert out.endswith("to draw it again:\n  storyboard build story.yaml --out pages/v1 --renderer small "
                        "--model 'my model.safetensors' --panel 2\n")


@pytest.mark.parametrize("name, content, message", [
    ("missing.png", None, "missing.png: no such file"),
    ("notes.txt", b"hello", "notes.txt: not an image"),
    ("photo.jpg", "jpeg", "photo.jpg: is a JPEG image; storyboard writes its provenance into PNG panels"),
    ("plain.png", "png", "plain.png: no storyboard provenance in this PNG"),
    ("a1111.png", "a1111", "a1111.png: no storyboard provenance in this PNG (it has A1111 'parameters' but was "
                           "not made by storyboard)"),
])
def test_info_on_other_files_is_one_clear_error(tmp_path, monkeypatch, capsys, name, content, message):
    from PIL.PngImagePlugin import PngInfo

    monkeypatch.chdir(tmp_path)
    if isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    elif content == "jpeg":
        Image.new("RGB", (8, 8)).save(name, format="JPEG")
    elif content in ("png", "a1111"):
        info = PngInfo()
        if content == "a1111":
            info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 8x8")
        Image.new("RGB", (8, 8)).save(name, pnginfo=info)
    assert main(["info", name]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"Error: {message}\n")


@pytest.mark.parametrize("change", [
    {"story": {"title": "x", "file": "story.yaml", "panel": "two"}},
    {"story": {"title": "x", "file": "story.yaml", "panel": 0}},
    {"story": {"title": "x", "file": None, "panel": 1}},
    {"build": "pages"},
    {"identity": ["draft"]},
    {"renderer": 5},
    {"job": {}, "variant": True},
])
def test_info_on_a_chunk_with_the_wrong_shape_says_it_is_damaged(minimal_story, tmp_path, monkeypatch, capsys,
                                                                 change):
    build(minimal_story, tmp_path / "out", renderer="draft")
    record = json.loads(text_chunks(tmp_path / "out" / "panels" / "panel-01.png")["storyboard"])
    data = (tmp_path / "out" / "panels" / "panel-01.png").read_bytes()
    (tmp_path / "odd.png").write_bytes(with_text(data, "storyboard", json.dumps(record | change)))
    monkeypatch.chdir(tmp_path)
    assert main(["info", "odd.png"]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "Error: odd.png: the storyboard provenance chunk is damaged\n")


def test_info_on_hostile_pngs_is_one_clear_error(tmp_path, monkeypatch, capsys):
    import struct
    import zlib

    from PIL.PngImagePlugin import PngInfo

    monkeypatch.chdir(tmp_path)
    info = PngInfo()
    info.add_text("storyboard", "{" + " " * 5_000_000 + "}", zip=True)  # inflates past Pillow's text limit
    Image.new("RGB", (8, 8)).save("inflating.png", pnginfo=info)
    info = PngInfo()
    info.add_text("storyboard", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    Image.new("RGB", (8, 8)).save("deep.png", pnginfo=info)
    Image.new("RGB", (8, 8)).save("plain.png")
    header = struct.pack(">IIBBBBB", 200_000, 200_000, 8, 2, 0, 0, 0)
    data = Path("plain.png").read_bytes()
    Path("huge.png").write_bytes(data[:8] + struct.pack(">I", 13) + b"IHDR" + header
                                 + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + data[33:])
    expected = {
        "inflating.png": "inflating.png: cannot read: Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK",
        "deep.png": "deep.png: the storyboard provenance chunk is damaged",
        "huge.png": "huge.png: cannot read: Image size (40000000000 pixels) exceeds limit of 178956970 pixels, "
                    "could be decompression bomb DOS attack.",
    }
    for name, message in expected.items():
        assert main(["info", name]) == 1
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("", f"Error: {message}\n")
