from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storyboard import __version__

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "storyboard", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_version_and_help():
    assert run("--version").stdout == f"storyboard, version {__version__}\n"
    helped = run("--help")
    assert helped.returncode == 0 and "build" in helped.stdout
    built = run("build", "--help")
    assert built.returncode == 0
    for option in ("--out", "--renderer", "--model"):
        assert option in built.stdout


def test_build_little_prince_draft(tmp_path):
    result = run("build", str(ROOT / "stories/little_prince.yaml"), "--renderer", "draft", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"rendered 8, reused 0; character anchors: drawn 4, reused 0 (draft renderer)\n"
                             f"wrote {tmp_path}/index.html, page.png, page.pdf, manifest.json\n")
    # Not a terminal: plain progress lines, no bar.
    assert result.stderr.startswith("drawing 8 of 8 panels and 4 character anchors with the draft renderer\n"
                                    "little prince (anchor) done (1/12)\n")
    assert "panel 8 done (12/12)" in result.stderr
    assert sorted(p.name for p in (tmp_path / "characters").iterdir()) == [
        "fox.png", "little-prince.png", "pilot.png", "rose.png"]
    assert "飞行员" in (tmp_path / "index.html").read_text(encoding="utf-8")
    assert len(list((tmp_path / "panels").glob("panel-*.png"))) == 8


def test_bad_story_is_one_line_and_exit_1(write_story, tmp_path):
    story = write_story("title: x\npanels:\n  - prompt: a\n    promt: b\n")
    result = run("build", str(story), "--renderer", "draft", "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {story}:4: panels[0].promt: unknown field (did you mean 'prompt'?)\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["build", "missing.yaml", "--renderer", "draft"], "Error: missing.yaml: no such file\n"),
        (["build", "{story}", "--renderer", "nope"],
         "Error: unknown renderer 'nope' (choose from: diffusers, draft, dashscope, a1111, comfyui, openvino)\n"),
    ],
)
def test_cli_errors(minimal_story, args, expected, tmp_path):
    result = run(*[a.replace("{story}", str(minimal_story)) for a in args], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == expected


def test_usage_error_exits_2():
    result = run("build")
    assert result.returncode == 2
    assert "Missing argument 'STORY...'" in result.stderr  # one or more stories


def test_debug_shows_traceback(tmp_path):
    result = run("build", str(tmp_path / "missing.yaml"), "--debug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "StoryError" in result.stderr


@pytest.mark.parametrize("args", [
    ["build", "{story}", "--renderer", "draft", "--out", ""],
    ["build", "{story}", "--model", ""],
    ["variants", "{story}", "--panel", "1", "--renderer", " "],
    ["plan", "{story}", "--base-url", ""],
])
def test_an_empty_option_value_is_a_usage_error_not_the_default(minimal_story, tmp_path, args):
    # `--out "$OUT"` with OUT unset must not build into the current folder or fall back to the default model.
    before = minimal_story.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    result = run(*[a.replace("{story}", str(minimal_story)) for a in args], cwd=work)
    option = args[[a.strip() for a in args].index("") - 1]
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (f"Error: Invalid value for '{option}': is empty; leave the option "
                                              "out for its default")
    assert list(work.iterdir()) == []
    assert minimal_story.read_bytes() == before
