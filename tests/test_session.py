"""The library API `serve` stands on: `import storyboard` without torch, builds from an in-memory Story, and a
`Session` that holds the folder's lock, keeps its renderer warm and can cancel a build."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from conftest import ROOT, storyboard_process

import storyboard
from storyboard.building import BuildProgress
from storyboard.errors import BuildCancelled
from storyboard.story import load_story


def test_import_storyboard_gives_build_without_torch():
    code = ("import sys, storyboard; assert callable(storyboard.build) and storyboard.Session and "
            "storyboard.BuildResult and storyboard.VariantsResult; "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_storyboard_build_is_callable_after_the_module_was_imported(minimal_story, tmp_path):
    import storyboard.building

    result = storyboard.build(minimal_story, tmp_path / "out", renderer="draft")
    assert isinstance(result, storyboard.BuildResult) and result.rendered == 2


def test_build_from_an_in_memory_story(minimal_story, small_renderer, tmp_path):
    before = minimal_story.read_text()
    story = load_story(minimal_story)
    story.panels[0].prompt = "close-up of a golden pear"
    result = storyboard.build(minimal_story, tmp_path / "out", story=story, renderer=small_renderer)
    assert "golden pear" in result.panels[0].job.prompt
    assert "golden pear" in (tmp_path / "out" / "manifest.json").read_text()
    assert minimal_story.read_text() == before


def test_session_holds_the_lock_and_builds_again(minimal_story, small_renderer, tmp_path):
    out = tmp_path / "out"
    with storyboard.Session(minimal_story, out, renderer=small_renderer) as session:
        assert session.build().rendered == 2
        minimal_story.write_text(minimal_story.read_text().replace("red apple", "green apple"))
        again = session.build()
        assert (again.rendered, again.reused) == (1, 1)
        assert [job.index for job in small_renderer.drawn] == [1, 2, 1]

        other = storyboard_process("build", str(minimal_story), "--out", str(out), "--renderer", "small")
        _, stderr = other.communicate(timeout=60)
        assert other.returncode == 1
        assert stderr == (f"Error: another storyboard serve of {out} is running (pid {os.getpid()}); "
                          "wait for it to finish\n")
    other = storyboard_process("build", str(minimal_story), "--out", str(out), "--renderer", "small")
    stdout, stderr = other.communicate(timeout=60)
    assert other.returncode == 0 and stdout.startswith("rendered 0, reused 2"), stderr
    with pytest.raises(storyboard.BuildError, match="session is closed"):
        session.build()


def test_cancel_stops_a_build_at_the_next_step_and_keeps_finished_panels(eight_panel_story, tmp_path):
    import small_renderers

    renderer = small_renderers.SmallRenderer(delay=0.3)

    class CancelAfterTwo(BuildProgress):
        def __init__(self, session):
            self.session, self.done = session, 0

        def panel_done(self, job):
            self.done += 1
            if self.done == 2:
                threading.Thread(target=self.session.cancel).start()

    with storyboard.Session(eight_panel_story, tmp_path / "out", renderer=renderer) as session:
        with pytest.raises(BuildCancelled):
            session.build(progress=CancelAfterTwo(session))
        assert len(renderer.drawn) == 2  # the third panel stopped at a step, before it was finished
        result = session.build()
    assert (result.reused, result.rendered) == (2, 6)


def test_session_keeps_the_model_loaded_across_builds(minimal_story, tiny_model, tmp_path):
    from storyboard.render.diffusers import DiffusersRenderer

    renderer = DiffusersRenderer()
    with storyboard.Session(minimal_story, tmp_path / "out", renderer=renderer, model=str(tiny_model)) as session:
        session.build()
        minimal_story.write_text(minimal_story.read_text().replace("red apple", "green apple"))
        result = session.build()
    assert (result.rendered, result.reused, renderer.loads) == (1, 1, 1)
