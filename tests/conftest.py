from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Model hashes and font subsets are cached per user; tests keep theirs apart.
os.environ.setdefault("STORYBOARD_CACHE_DIR", tempfile.mkdtemp(prefix="storyboard-test-cache-"))
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
def openai_chat(monkeypatch):
    """A chat server on 127.0.0.1 speaking the OpenAI wire format (tests/chat_server.py), with a test key set and
    no backoff between retries."""
    from chat_server import ChatServer

    server = ChatServer().start()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    monkeypatch.setenv("STORYBOARD_PLAN_BACKOFF", "0")
    yield server
    server.stop()


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


COMIC = """
title: 小王子与狐狸 <The Fox & the Prince>
language: zh
characters:
  fox: a small red fox with big ears
render:
  width: 256
  height: 256
  seed: 7
layout:
  columns: 3
  direction: rtl
  gutter: 16
  margin: 24
  credits: 故事：圣埃克苏佩里
panels:
  - prompt: establishing shot, a desert at dawn
    span: 2
    caption: 沙漠里，天刚亮。A desert at dawn.
    narration: 很久很久以前……
  - prompt: close-up of the fox behind a rock
    characters: [fox]
    caption: 一只狐狸出现了。
    dialogue:
      - {speaker: fox, text: "你好！"}
      - {speaker: prince, text: "你是谁？你很好看。"}
  - prompt: medium shot, the prince in the grass
    caption: "<b>not bold</b> & <script>alert(1)</script>"
    dialogue:
      - {speaker: prince, text: "Come and play with me."}
      - {speaker: fox, text: "「我不能和你玩，」狐狸说，「我还没有被驯服呢。」"}
      - {speaker: fox, text: "안녕하세요! こんにちは。"}
  - prompt: wide shot, wheat fields in the wind
    span: 3
    caption: 麦田是金色的。
"""


@pytest.fixture(scope="session")
def comic(tmp_path_factory):
    """The COMIC story built once with the draft renderer: (light build folder, self-contained build folder)."""
    from storyboard.building import build

    root = tmp_path_factory.mktemp("comic")
    story = root / "comic.yaml"
    story.write_text(textwrap.dedent(COMIC).lstrip("\n"), encoding="utf-8")
    light = build(story, root / "light", renderer="draft")
    mailed = build(story, root / "mailed", renderer="draft", self_contained=True)
    return light, mailed


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium for the tests that look at pages; skipped without one (failed under CI=true)."""
    from browser import MISSING, Chromium, find_chromium

    executable = find_chromium()
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING + " (CI=true: the browser tests must run here)")
        pytest.skip(MISSING)
    browser = Chromium(executable)
    yield browser
    browser.close()


def pytest_terminal_summary(terminalreporter):
    artifacts = ROOT / "build" / "test-artifacts"
    shots = sorted(artifacts.glob("*.png")) if artifacts.is_dir() else []
    if shots:
        terminalreporter.write_line(f"browser screenshots: {artifacts} ({', '.join(p.name for p in shots)})")


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


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> Path:
    """A tiny random SDXL pipeline (two CLIP encoders)."""
    from tests.tiny_pipeline import build_tiny_sdxl

    return build_tiny_sdxl(tmp_path_factory.mktemp("models") / "tiny-sdxl")


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory) -> Path:
    """A tiny random FLUX.1-dev-like pipeline (CLIP + T5, guidance-distilled)."""
    from tests.tiny_pipeline import build_tiny_flux

    return build_tiny_flux(tmp_path_factory.mktemp("models") / "tiny-flux")


@pytest.fixture(scope="session")
def tiny_sd3(tmp_path_factory) -> Path:
    """A tiny random Stable Diffusion 3 pipeline (two CLIP encoders + T5, flow matching)."""
    from tests.tiny_pipeline import build_tiny_sd3

    return build_tiny_sd3(tmp_path_factory.mktemp("models") / "tiny-sd3")


@pytest.fixture(scope="session")
def tiny_kolors(tmp_path_factory) -> Path:
    """A tiny random Kolors pipeline (ChatGLM text encoder with a sentencepiece tokenizer trained offline)."""
    from tests.tiny_pipeline import build_tiny_kolors

    return build_tiny_kolors(tmp_path_factory.mktemp("models") / "tiny-kolors")


@pytest.fixture(scope="session")
def tiny_taesd(tmp_path_factory) -> Path:
    """A tiny random AutoencoderTiny whose latents fit the tiny SD pipeline's, as a diffusers folder."""
    from tests.tiny_pipeline import build_tiny_autoencoder

    return build_tiny_autoencoder(tmp_path_factory.mktemp("vae") / "taesd")


@pytest.fixture(scope="session")
def tiny_lora(tiny_model, tmp_path_factory) -> Path:
    """A random LoRA for the tiny SD pipeline, as one .safetensors file."""
    from tests.tiny_pipeline import build_tiny_lora

    return build_tiny_lora(tiny_model, tmp_path_factory.mktemp("loras") / "tiny-sd-lora.safetensors")


@pytest.fixture(scope="session")
def tiny_sdxl_lora(tiny_sdxl, tmp_path_factory) -> Path:
    """A random LoRA for the tiny SDXL pipeline."""
    from tests.tiny_pipeline import build_tiny_lora

    return build_tiny_lora(tiny_sdxl, tmp_path_factory.mktemp("loras") / "tiny-sdxl-lora.safetensors")
