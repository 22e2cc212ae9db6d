from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import pytest
from PIL import Image

from storyboard import RenderError
from storyboard.building import build
from storyboard.render import Rendered
from storyboard.render.draft import DraftRenderer
from storyboard.resolve import PanelJob


def test_build_writes_the_four_outputs(minimal_story, tmp_path):
    out = tmp_path / "out"
    result = build(minimal_story, out, renderer="draft")
    assert (result.rendered, result.reused) == (2, 0)
    for name in ("index.html", "page.png", "manifest.json", "panels/panel-01.png", "panels/panel-02.png"):
        assert (out / name).is_file(), name
    with Image.open(out / "panels/panel-01.png") as im:
        assert im.size == (64, 64)
    with Image.open(out / "page.png") as page:
        assert page.width > 2 * 64 and page.height > 64

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    first = manifest["panels"][0]
    assert {k: first[k] for k in ("index", "file", "prompt", "negative_prompt", "seed", "width", "height", "model",
                                  "steps", "guidance", "rendered")} == {
        "index": 1, "file": "panels/panel-01.png", "prompt": "close-up of a red apple", "negative_prompt": "",
        "seed": 10, "width": 64, "height": 64, "model": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "steps": 25, "guidance": 7.5, "rendered": True,
    }
    assert manifest["panels"][1]["seed"] == 11
    assert not list(out.rglob("*.tmp"))


def test_default_output_folder_is_build_slash_stem(minimal_story, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = build(minimal_story, renderer="draft")
    assert result.out_dir.as_posix() == "build/story"
    assert (tmp_path / "build/story/index.html").is_file()


def test_rebuild_reuses_panels_and_redraws_an_edited_one(minimal_story, tmp_path):
    out = tmp_path / "out"
    build(minimal_story, out, renderer="draft")
    again = build(minimal_story, out, renderer="draft")
    assert (again.rendered, again.reused) == (0, 2)
    assert [p["rendered"] for p in json.loads((out / "manifest.json").read_text())["panels"]] == [False, False]

    before = (out / "panels/panel-01.png").read_bytes()
    minimal_story.write_text(minimal_story.read_text().replace("green field", "blue lake"), encoding="utf-8")
    edited = build(minimal_story, out, renderer="draft")
    assert [p.rendered for p in edited.panels] == [False, True]
    assert (out / "panels/panel-01.png").read_bytes() == before


def test_html_escapes_captions_and_links_relatively(write_story, tmp_path):
    story = write_story("""
        title: "<b>Bold</b> & title"
        render: {width: 64, height: 64}
        panels:
          - prompt: a rose
            caption: "<script>alert('x')</script> 玫瑰"
    """)
    build(story, tmp_path / "out", renderer="draft")
    html = (tmp_path / "out/index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; 玫瑰" in html
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; title" in html
    assert 'src="panels/panel-01.png"' in html
    assert 'lang="en"' in html


class FailingRenderer(DraftRenderer):
    """Draws the first panel, then fails, like a GPU running out of memory halfway."""

    def render(self, jobs: Sequence[PanelJob], on_step=None) -> Iterator[Rendered]:
        for job in jobs:
            if job.index == 2:
                raise RenderError("out of memory on panel 2")
            yield from super().render([job], on_step)


def test_failed_build_keeps_previous_good_build(minimal_story, tmp_path):
    out = tmp_path / "out"
    build(minimal_story, out, renderer="draft")
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and "cache" not in p.parts}
    minimal_story.write_text(minimal_story.read_text().replace("seed: 10", "seed: 20"), encoding="utf-8")
    with pytest.raises(RenderError):
        build(minimal_story, out, renderer=FailingRenderer())
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and "cache" not in p.parts} == snapshot
    assert not list(out.rglob("*.tmp"))
    # The panel finished before the failure is kept and reused.
    retry = build(minimal_story, out, renderer="draft")
    assert [p.rendered for p in retry.panels] == [False, True]


def test_shrinking_story_removes_stale_panels(write_story, tmp_path):
    three = write_story("title: x\nrender: {width: 64, height: 64}\npanels:\n"
                        "  - prompt: a\n  - prompt: b\n  - prompt: c\n")
    build(three, tmp_path / "out", renderer="draft")
    three.write_text("title: x\nrender: {width: 64, height: 64}\npanels:\n  - prompt: a\n", encoding="utf-8")
    build(three, tmp_path / "out", renderer="draft")
    assert sorted(p.name for p in (tmp_path / "out/panels").iterdir()) == ["panel-01.png"]


def test_out_path_that_is_a_file(minimal_story, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    from storyboard import BuildError

    with pytest.raises(BuildError, match="exists and is not a folder"):
        build(minimal_story, target, renderer="draft")


def test_a_failed_first_build_leaves_no_folders(minimal_story, tmp_path):
    out = tmp_path / "new" / "out"
    with pytest.raises(RenderError):
        build(minimal_story, out, renderer=FailingFirst())
    assert not (tmp_path / "new").exists()


def test_a_failed_first_build_keeps_the_panels_it_finished(minimal_story, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RenderError):
        build(minimal_story, out, renderer=FailingRenderer())
    assert len(list((out / "cache").glob("*.png"))) == 1


class FailingFirst(DraftRenderer):
    """Fails before drawing anything, like a model that cannot be loaded."""

    def render(self, jobs: Sequence[PanelJob], on_step=None) -> Iterator[Rendered]:
        raise RenderError("cannot load the model")
        yield  # a generator, like every renderer


def test_a_foreign_manifest_in_the_output_folder_is_ignored(minimal_story, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"renderer": "draft", "panels": 5, "page": []}', encoding="utf-8")
    result = build(minimal_story, out, renderer="draft")
    assert (result.rendered, result.reused) == (2, 0)
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["panels"][0]["index"] == 1
