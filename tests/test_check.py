"""`storyboard check`: CLIP-I per character and CLIP-T per panel, scored with a tiny random CLIP loaded from a folder
through the same code path as `--model <folder>`, on pages built with the draft renderer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from storyboard.check import CheckReport, check
from storyboard.cli import main

ROOT = Path(__file__).resolve().parent.parent

STORY = """
title: Fox and prince
characters:
  fox: red fox
  prince: boy with a scarf
  rose: rose
render:
  width: 64
  height: 64
  seed: 3
panels:
  - prompt: the fox and the prince sit together in a wide golden wheat field at sunset, long shadows behind them
    characters: [fox, prince]
  - prompt: close-up of the fox
    characters: [fox]
  - prompt: the prince alone on a tiny planet
    characters: [prince]
  - prompt: a glass dome
    characters: [rose]
"""


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    from tests.tiny_clip import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(story file, build folder) of STORY built with the draft renderer; tests change copies of it."""
    from storyboard.building import build

    root = tmp_path_factory.mktemp("check")
    story = root / "fox.yaml"
    story.write_text(textwrap.dedent(STORY).lstrip("\n"), encoding="utf-8")
    build(story, root / "out", renderer="draft")
    return story, root / "out"


@pytest.fixture
def page(built, tmp_path) -> tuple[Path, Path]:
    """A copy of the built page whose manifest has no `characters` (as before anchors): they come from the story."""
    story, out = built
    copy = shutil.copytree(out, tmp_path / "out")
    data = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    data.pop("characters", None)
    for panel in data["panels"]:
        panel.pop("characters", None)
    (copy / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    return story, copy


def with_anchors(out: Path, anchors: dict[str, int], panels: dict[int, list[str]]) -> None:
    """Give the build in `out` a manifest in the anchors format: each character's anchor is a copy of a panel's
    image, and each panel lists the given names."""
    data = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    (out / "characters").mkdir(exist_ok=True)
    data["characters"] = []
    for name, panel in anchors.items():
        file = f"characters/{name}.png"
        shutil.copyfile(out / f"panels/panel-{panel:02d}.png", out / file)
        data["characters"].append({"name": name, "file": file, "key": "0" * 64, "seed": 4242,
                                   "prompt": f"portrait of {name}", "rendered": True})
    for entry in data["panels"]:
        entry["characters"] = panels[entry["index"]]
    (out / "manifest.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def by_name(report: CheckReport) -> dict:
    return {c.name: c for c in report.characters}


def test_characters_come_from_the_story_when_the_manifest_has_none(page, tiny_clip):
    story, out = page
    report = check(story, out, model=str(tiny_clip))
    scores = by_name(report)
    assert [c.name for c in report.characters] == ["fox", "prince", "rose"]
    assert (scores["fox"].panels, scores["fox"].pairs) == ((1, 2), 1)
    assert (scores["prince"].panels, scores["prince"].pairs) == ((1, 3), 1)
    # Two different images: alike (the draft cards share a layout) but not identical.
    for name in ("fox", "prince"):
        assert -1 <= scores[name].pair_mean < 0.9999
        assert scores[name].pair_min == scores[name].pair_mean  # one pair
        assert scores[name].score == scores[name].pair_mean and scores[name].score_from == "pairs"
    # In one panel, no anchor: nothing to compare, so nothing for --min to judge.
    assert scores["rose"].pairs == 0 and scores["rose"].score is None and scores["rose"].score_from is None
    assert [p.characters for p in report.panels] == [("fox", "prince"), ("fox",), ("prince",), ("rose",)]


def test_identical_images_score_one(page, tiny_clip):
    story, out = page
    shutil.copyfile(out / "panels/panel-01.png", out / "panels/panel-02.png")
    scores = by_name(check(story, out, model=str(tiny_clip)))
    assert scores["fox"].pair_mean == 1.0 and scores["fox"].pair_min == 1.0
    assert scores["prince"].pair_mean < 0.9999


def test_anchors_and_characters_from_the_manifest(page, tiny_clip):
    story, out = page
    # The manifest wins over the story: panel 3 lists no one, panel 4 the fox too; `one` and `four` measure the
    # similarity of panel 1 to panels 2 and 4.
    with_anchors(out, {"fox": 1, "rose": 4},
                 {1: ["fox", "prince", "one", "four"], 2: ["fox", "one"], 3: [], 4: ["rose", "fox", "four"]})
    report = check(story, out, model=str(tiny_clip))
    scores = by_name(report)
    assert [c.name for c in report.characters] == ["fox", "rose", "prince", "one", "four"]
    fox = scores["fox"]
    assert fox.panels == (1, 2, 4) and fox.pairs == 3 and fox.anchor == "characters/fox.png"
    # Its anchor is panel 1's image: 1.0 against panel 1, less against panels 2 and 4.
    one, four = scores["one"].pair_mean, scores["four"].pair_mean
    assert fox.anchor_min == min(one, four) < 0.9999
    assert fox.anchor_mean == pytest.approx((1 + one + four) / 3, abs=1e-4)
    assert check(story, out, model=str(tiny_clip)).characters[0] == fox  # the same numbers again
    # A character in one panel is judged by its anchor.
    rose = scores["rose"]
    assert (rose.pairs, rose.anchor_mean, rose.anchor_min, rose.score, rose.score_from) == (0, 1.0, 1.0, 1.0,
                                                                                           "anchor")
    assert scores["prince"].panels == (1,) and scores["prince"].score is None


def test_clip_t_is_the_models_own_image_text_cosine(page, tiny_clip):
    """Cross-checked against CLIPModel's forward pass (logits_per_image / logit scale), another path than the
    get_*_features calls check makes."""
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    story, out = page
    report = check(story, out, model=str(tiny_clip))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    model = CLIPModel.from_pretrained(tiny_clip, local_files_only=True)
    processor = CLIPProcessor.from_pretrained(tiny_clip, local_files_only=True)
    images = [Image.open(out / p["file"]).convert("RGB") for p in manifest["panels"]]
    prompts = [p["prompt"] for p in manifest["panels"]]
    inputs = processor(text=prompts, images=images, return_tensors="pt", padding=True, truncation=True,
                       max_length=77)
    with torch.no_grad():
        result = model(**inputs)
        cosines = (result.logits_per_image / model.logit_scale.exp()).diagonal().tolist()
    assert [p.clip_t for p in report.panels] == [round(c, 4) for c in cosines]
    assert len({p.clip_t for p in report.panels}) == 4
    # The tiny tokenizer makes each character but a space a token: panel 1's prompt is longer than 77 tokens.
    assert [p.truncated for p in report.panels] == [True, False, False, False]
    assert report.panels[1].prompt_tokens == len(prompts[1].replace(" ", "")) + 2  # and start and end of text
    assert report.max_text_tokens == 77


def cli(*args: str, capsys) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_table_and_json_agree(page, tiny_clip, capsys):
    story, out = page
    with_anchors(out, {"fox": 2}, {1: ["fox", "prince"], 2: ["fox"], 3: ["prince"], 4: ["rose"]})
    code, text, err = cli("check", str(story), "--out", str(out), "--model", str(tiny_clip), "--json", capsys=capsys)
    assert (code, err) == (0, "")
    document = json.loads(text)
    assert list(document) == ["story", "build", "model", "characters", "panels"]
    assert document["model"] == {"name": str(tiny_clip), "kind": "clip", "max_text_tokens": 77}
    assert (document["story"], document["build"]) == (str(story), str(out))
    fox = document["characters"][0]
    assert list(fox) == ["name", "panels", "pairs", "pair_mean", "pair_min", "anchor", "anchor_mean", "anchor_min",
                         "score", "score_from"]
    assert list(document["panels"][0]) == ["index", "file", "characters", "clip_t", "prompt_tokens", "truncated"]

    code, table, err = cli("check", str(story), "--out", str(out), "--model", str(tiny_clip), capsys=capsys)
    assert (code, err) == (0, "")
    lines = table.splitlines()
    assert lines[0] == f"{out}: 4 panels, scored with {tiny_clip} (CLIP)"
    rows = {line.split()[0]: line.split() for line in lines if line}

    def shown(value):
        return "-" if value is None else f"{value:.4f}"

    for c in document["characters"]:
        assert rows[c["name"]] == [c["name"], ",".join(map(str, c["panels"])), str(c["pairs"]),
                                   shown(c["pair_mean"]), shown(c["pair_min"]), shown(c["anchor_mean"]),
                                   shown(c["anchor_min"])]
    assert rows["fox"][5] != "-" and rows["rose"][3:] == ["-"] * 4
    for p in document["panels"]:
        row = next(line for line in lines if line.split()[:1] == [str(p["index"])])
        assert row.split()[1] == shown(p["clip_t"]) + ("*" if p["truncated"] else "")
        assert row.endswith(", ".join(p["characters"]))
    assert lines[-1] == "* prompt longer than the model's 77 tokens; only its first 77 were scored"


def test_min_exit_codes(page, tiny_clip, capsys):
    story, out = page
    shutil.copyfile(out / "panels/panel-01.png", out / "panels/panel-02.png")  # the fox: 1.0
    report = by_name(check(story, out, model=str(tiny_clip)))
    prince = report["prince"].score
    base = ("check", str(story), "--out", str(out), "--model", str(tiny_clip))

    code, _, err = cli(*base, "--min", "1", capsys=capsys)
    assert (code, err) == (1, f"CLIP-I below 1: prince ({prince:.4f})\n")
    code, _, err = cli(*base, "--min", str(prince), capsys=capsys)  # equal is not below
    assert (code, err) == (0, "")
    shutil.copyfile(out / "panels/panel-04.png", out / "panels/panel-02.png")  # the fox: two different images
    fox = by_name(check(story, out, model=str(tiny_clip)))["fox"].score
    code, out_text, err = cli(*base, "--min", "1", "--json", capsys=capsys)
    assert (code, err) == (1, f"CLIP-I below 1: fox ({fox:.4f}), prince ({prince:.4f})\n")
    assert json.loads(out_text)["characters"][0]["score"] == fox  # the scores are printed all the same
    code, _, err = cli(*base, "--min", "-1", capsys=capsys)
    assert (code, err) == (0, "")


def test_image_only_model_scores_clip_i_without_clip_t(page, tmp_path, capsys):
    from tests.tiny_clip import build_tiny_dinov2

    story, out = page
    dinov2 = build_tiny_dinov2(tmp_path / "tiny-dinov2")
    capsys.readouterr()
    shutil.copyfile(out / "panels/panel-01.png", out / "panels/panel-02.png")
    code, table, err = cli("check", str(story), "--out", str(out), "--model", str(dinov2), capsys=capsys)
    assert (code, err) == (0, "")
    assert table.splitlines()[0] == f"{out}: 4 panels, scored with {dinov2} (DINOv2)"
    assert table.splitlines()[-1] == f"CLIP-T: not available: {dinov2} is an image-only model (dinov2)"
    report = check(story, out, model=str(dinov2))
    assert by_name(report)["fox"].pair_mean == 1.0 and by_name(report)["prince"].pair_mean < 0.9999
    assert [p.clip_t for p in report.panels] == [None] * 4 and report.max_text_tokens is None


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "tests" / "run_storyboard.py"), *args], capture_output=True,
                          text=True, env=environment, cwd=cwd, timeout=120)


def test_errors_are_one_line_and_need_no_torch(page, tmp_path):
    story, out = page
    modules = tmp_path / "modules.txt"
    empty = tmp_path / "empty-hub"
    empty.mkdir()
    cases = [
        (["check", str(story), "--out", str(out), "--model", "openai/clip-vit-base-patch32"],
         {"HF_HUB_CACHE": str(empty)},
         f"Error: scoring model 'openai/clip-vit-base-patch32' is not in the Hugging Face cache ({empty}) and "
         f"HF_HUB_OFFLINE=1 forbids downloading it; download it once with `hf download openai/clip-vit-base-patch32` "
         f"(`storyboard download` fetches only Stable Diffusion pipelines), or pass a local CLIP folder with --model"),
        (["check", str(story), "--out", str(out), "--model", "./no-such-clip"], {},
         f"Error: scoring model './no-such-clip' not found: no such folder ({tmp_path}/no-such-clip); pass a CLIP "
         f"model folder or a hub id such as openai/clip-vit-base-patch32"),
        (["check", str(story), "--out", str(tmp_path / "nothing")], {},
         f"Error: {tmp_path}/nothing has no manifest.json; run `storyboard build {story} --out {tmp_path}/nothing` "
         f"first"),
        (["check", "stories/x.yaml"], {},
         "Error: build/x has no manifest.json; run `storyboard build stories/x.yaml` first"),
        (["check", str(story), "--out", str(out)], {},
         f"Error: {out}/panels/panel-03.png is missing (listed in {out}/manifest.json); "
         f"run `storyboard build {story} --out {out}` again"),
    ]
    for args, env, expected in cases:
        if "missing" in expected:
            (out / "panels/panel-03.png").unlink()
        result = run(*args, env={"STORYBOARD_MODULES_OUT": str(modules), **env}, cwd=tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", expected + "\n"), args
        assert "torch" not in modules.read_text().split()


def test_a_folder_that_is_not_a_model(page, tmp_path, capsys):
    story, out = page
    (tmp_path / "empty-model").mkdir()
    code, text, err = cli("check", str(story), "--out", str(out), "--model", str(tmp_path / "empty-model"),
                          capsys=capsys)
    assert code == 1 and text == ""
    assert err.startswith(f"Error: cannot load the scoring model from {tmp_path}/empty-model (")
    assert err.endswith("); it must be a CLIP or DINOv2 model saved by transformers\n") and err.count("\n") == 1


def test_a_hub_id_in_the_cache_loads_offline(page, tiny_clip, tmp_path, monkeypatch):
    """The layout huggingface_hub writes: refs/main names the commit whose snapshot holds the files."""
    story, out = page
    repo = tmp_path / "hub" / "models--tiny--clip"
    shutil.copytree(tiny_clip, repo / "snapshots" / "0123abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc", encoding="utf-8")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from_hub = check(story, out, model="tiny/clip")
    assert from_hub.model == "tiny/clip"
    assert from_hub.characters == check(story, out, model=str(tiny_clip)).characters


def test_min_with_nothing_to_judge_says_so(page, tiny_clip, capsys):
    story, out = page
    with_anchors(out, {}, {1: ["fox"], 2: [], 3: ["prince"], 4: []})
    code, text, err = cli("check", str(story), "--out", str(out), "--model", str(tiny_clip), "--min", "0.5",
                          capsys=capsys)
    assert code == 0 and "CLIP-T" in text
    assert err == "--min 0.5 judged nothing: no character is in two panels or has an anchor\n"


@pytest.mark.parametrize(("manifest", "problem"), [
    ("{not json", "not a storyboard manifest (Expecting property name enclosed in double quotes: line 1 column 2 "
                  "(char 1))"),
    ('{"panels": []}', "not a storyboard manifest (no 'panels' list)"),
    ('{"panels": [{"index": 1, "file": "panels/panel-01.png"}]}',
     "panels[0]: needs 'index' (a number), 'file' and 'prompt' (text)"),
    ('{"panels": [{"index": 1, "file": "panels/panel-01.png", "prompt": "p", "characters": "fox"}]}',
     "panels[0].characters: must be a list of names"),
    ('{"panels": [{"index": 1, "file": "panels/panel-01.png", "prompt": "p"}], "characters": [{"name": "fox"}]}',
     "characters[0]: needs 'name' and 'file' (text)"),
])
def test_a_damaged_manifest_is_one_line(page, tiny_clip, capsys, manifest, problem):
    story, out = page
    (out / "manifest.json").write_text(manifest, encoding="utf-8")
    code, text, err = cli("check", str(story), "--out", str(out), "--model", str(tiny_clip), capsys=capsys)
    assert (code, text, err) == (1, "", f"Error: {out}/manifest.json: {problem}\n")


def test_a_build_with_anchors_is_scored_against_them(built, tiny_clip):
    """The manifest a build writes: each panel lists its characters, and each character has an anchor portrait."""
    story, out = built
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    anchors = {c["name"]: c["file"] for c in manifest.get("characters", [])}
    assert set(anchors) == {"fox", "prince", "rose"}
    report = check(story, out, model=str(tiny_clip))
    for character in report.characters:
        assert character.anchor == anchors[character.name] and (out / character.anchor).is_file()
        assert -1 <= character.anchor_min <= character.anchor_mean <= 1
    assert by_name(report)["rose"].score_from == "anchor"
    assert [list(p.characters) for p in report.panels] == [p["characters"] for p in manifest["panels"]]
