from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def write_story(tmp_path: Path):
    """Write a story file from YAML text (dedented) and return its path."""

    def write(text: str, name: str = "story.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


MINIMAL = """
title: Test story
render:
  width: 64
  height: 64
  seed: 10
panels:
  - prompt: close-up of a red apple
    caption: An apple
  - prompt: wide shot of a green field
"""


@pytest.fixture
def minimal_story(write_story) -> Path:
    return write_story(MINIMAL)


EIGHT = """
# Eight panels, so an edit to one can be told apart from a rebuild of all.
title: Eight panels
render:
  width: 64
  height: 64
  steps: 3
  seed: 100
panels:
""" + "".join(f"  - prompt: scene number {i}, a lighthouse at dusk\n    caption: Panel {i}\n" for i in range(1, 9))


@pytest.fixture
def eight_panel_story(write_story) -> Path:
    return write_story(EIGHT)


@pytest.fixture
def small_renderer(monkeypatch):
    """A `SmallRenderer` instance, also registered as renderer 'small' for CLI runs in this process."""
    import small_renderers

    from storyboard.render import RENDERERS

    monkeypatch.setitem(RENDERERS, "small", "small_renderers:SmallRenderer")
    return small_renderers.SmallRenderer()


def storyboard_process(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, **popen):
    """Start the real CLI (with the test renderers registered) as a separate process."""
    import subprocess
    import sys

    environment = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "run_storyboard.py"), *args], cwd=cwd,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
