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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Stable Diffusion pipeline saved as a diffusers folder (see tests/tiny_pipeline.py)."""
    from tests.tiny_pipeline import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_model_flagging(tmp_path_factory) -> Path:
    """The tiny pipeline with a tiny safety checker that flags every image."""
    from tests.tiny_pipeline import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd-flagging", safety_checker=True,
                               flag_everything=True)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model, tmp_path_factory) -> Path:
    """The tiny pipeline as one original-layout `.safetensors` file, as A1111 / ComfyUI users download them."""
    from tests.tiny_pipeline import save_single_file

    return save_single_file(tiny_model, tmp_path_factory.mktemp("checkpoints") / "tiny-sd.safetensors")
