"""Interrupted builds lose nothing that was finished; two builds of one folder never run at once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from conftest import storyboard_process
from PIL import Image

from storyboard.building import build
from storyboard.cli import main
from storyboard.errors import FolderBusy


def wait_for(condition, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def cached(out: Path) -> list[Path]:
    return sorted((out / "cache").glob("*.png")) if (out / "cache").is_dir() else []


def assert_clean(out: Path) -> None:
    """No temp files anywhere, and every PNG under `out` decodes completely."""
    assert [p.name for p in out.rglob("*.tmp")] == []
    for path in out.rglob("*.png"):
        with Image.open(path) as image:
            image.load()


def test_kill_9_mid_build_then_rebuild_reuses_every_finished_panel(eight_panel_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    process = storyboard_process("build", str(eight_panel_story), "--out", str(out), "--renderer", "small",
                                 env={"SMALL_RENDERER_DELAY": "0.25"})
    try:
        wait_for(lambda: len(cached(out)) >= 2, "two finished panels")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    finished = cached(out)
    assert 2 <= len(finished) < 8
    # What a process killed while writing leaves behind: a half-written temp file.
    (out / "cache" / ".0123abcd.png.999999.tmp").write_bytes(b"\x89PNG\r\n half")

    result = build(eight_panel_story, out, renderer=small_renderer)

    assert result.reused == len(finished)
    assert result.rendered == 8 - len(finished)
    assert [job.index for job in small_renderer.drawn] == list(range(len(finished) + 1, 9))
    assert set(finished) <= set(cached(out))
    assert_clean(out)


def test_ctrl_c_mid_build_keeps_finished_panels_and_releases_the_lock(eight_panel_story, small_renderer, tmp_path):
    out = tmp_path / "out"

    class Interrupted(type(small_renderer)):
        def render(self, jobs, on_step=None):
            for done in super().render(jobs, on_step):
                yield done
                if len(self.drawn) == 3:
                    raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(eight_panel_story, out, renderer=Interrupted())
    assert len(cached(out)) == 3
    assert_clean(out)

    result = build(eight_panel_story, out, renderer=small_renderer)
    assert (result.rendered, result.reused) == (5, 3)


def test_ctrl_c_in_a_real_build_exits_130_and_says_what_was_kept(eight_panel_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    process = storyboard_process("build", str(eight_panel_story), "--out", str(out), "--renderer", "small",
                                 env={"SMALL_RENDERER_DELAY": "0.25"},
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: len(cached(out)) >= 2, "two finished panels")
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate()
    assert process.returncode == 130
    assert stderr.endswith("Interrupted; finished panels are kept and reused by the next build.\n")
    finished = len(cached(out))
    assert_clean(out)
    result = build(eight_panel_story, out, renderer=small_renderer)
    assert (result.rendered, result.reused) == (8 - finished, finished)


def test_a_second_build_of_the_same_folder_is_refused_while_the_first_runs(eight_panel_story, small_renderer,
                                                                         tmp_path, capsys):
    out = tmp_path / "out"
    process = storyboard_process("build", str(eight_panel_story), "--out", str(out), "--renderer", "small",
                                 env={"SMALL_RENDERER_DELAY": "30"})
    try:
        lock = out / ".lock"
        wait_for(lambda: lock.is_file() and lock.read_text().startswith(f"{process.pid} "), "the first build's lock")

        with pytest.raises(FolderBusy) as refused:
            build(eight_panel_story, out, renderer=small_renderer)
        assert str(refused.value) == f"another build of {out} is running (pid {process.pid}); wait for it to finish"
        assert main(["build", str(eight_panel_story), "--out", str(out), "--renderer", "small"]) == 1
        assert capsys.readouterr().err == (f"Error: another build of {out} is running (pid {process.pid}); "
                                           "wait for it to finish\n")
        assert small_renderer.drawn == []
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()

    # The operating system released the dead process's lock: the next build just runs.
    result = build(eight_panel_story, out, renderer=small_renderer)
    assert result.rendered == 8
    assert lock.read_text() == ""
    assert_clean(out)


def test_a_no_change_rebuild_never_imports_torch_or_draws(eight_panel_story, tmp_path):
    out = tmp_path / "out"
    log, modules = tmp_path / "drawn.log", tmp_path / "modules.txt"
    env = {"SMALL_RENDERER_LOG": str(log), "STORYBOARD_MODULES_OUT": str(modules)}
    for expected in ("rendered 8, reused 0", "rendered 0, reused 8"):
        process = storyboard_process("build", str(eight_panel_story), "--out", str(out), "--renderer", "small",
                                     env=env)
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        assert stdout.startswith(f"{expected} (small renderer)\n")
    assert len(log.read_text().splitlines()) == 8  # all by the first build
    loaded = set(modules.read_text().split())
    assert "storyboard" in loaded
    assert loaded.isdisjoint({"torch", "diffusers", "transformers", "dashscope", "openai"})


def test_stale_temp_files_of_dead_builds_are_removed_and_only_those(minimal_story, tmp_path):
    out = tmp_path / "out"
    stale = [out / ".page.png.4242.tmp", out / "panels" / ".panel-01.png.77.tmp", out / "cache" / ".x.png.1.tmp"]
    kept = [out / "notes.tmp", out / "my.draft.tmp"]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    build(minimal_story, out, renderer="draft")
    assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in kept)


def test_temp_files_outside_the_build_folders_are_left_alone(minimal_story, tmp_path):
    # `--out .` next to the story, or a home folder: other programs' temp files there are not the build's.
    out = tmp_path / "out"
    foreign = [out / "drafts" / ".essay.txt.4242.tmp", out / "drafts" / "deep" / ".x.png.7.tmp"]
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"someone else's")
    build(minimal_story, out, renderer="draft")
    assert all(p.read_bytes() == b"someone else's" for p in foreign)


def test_a_build_writes_no_scratch_file_outside_its_folder(minimal_story, tmp_path, monkeypatch):
    # The PDF writer reads fonts from files; a process killed while composing must not leave them in $TMPDIR.
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no such folder"))  # any write there fails
    out = tmp_path / "out"
    build(minimal_story, out, renderer="draft")
    assert (out / "page.pdf").is_file()
    assert not (out / ".scratch").exists()


def test_scratch_files_a_killed_build_left_are_removed_by_the_next(minimal_story, tmp_path):
    out = tmp_path / "out"
    left = out / ".scratch" / "storyboard-pdf-x1y2" / "Noto Sans SC.otf"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"font")
    build(minimal_story, out, renderer="draft")
    assert not (out / ".scratch").exists()
    assert (out / "page.pdf").is_file()


@pytest.mark.parametrize("when", ["while the command runs", "after its last line, at exit"])
def test_ctrl_c_exits_130_with_the_usual_line_whenever_it_arrives(when, tmp_path):
    # Deterministic stand-ins for a Ctrl-C during the last write and for one during Python's shutdown.
    import subprocess
    import sys

    script = (
        "import atexit, os, signal, sys, storyboard.cli as cli\n"
        "def command(argv=None):\n"
        "    print('wrote page.png')\n"
        "    if WHEN == 'during':\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return 0\n"
        "if WHEN == 'exit':\n"
        "    atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))\n"
        "cli.main = command\n"
        "cli.run()\n"
    ).replace("WHEN", repr("during" if when.startswith("while") else "exit"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (130, "wrote page.png\n", "Interrupted.\n")
