"""Several stories in one build, a shared cache, each distinct panel drawn once; and --ray without Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT
from PIL import Image

from storyboard.building import build, build_many
from storyboard.cli import main

SAME = "  - prompt: the same lighthouse\n    seed: 7\n"


def story_text(title: str, *panels: str) -> str:
    return f"title: {title}\nrender: {{width: 64, height: 64}}\npanels:\n" + "".join(panels)


def pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def drawn(renderer) -> list[tuple[int, int]]:
    return [(job.index, job.seed) for job in renderer.drawn]


def test_two_identical_panels_of_a_story_are_drawn_once(write_story, small_renderer, tmp_path):
    story = write_story(story_text("Twice", SAME, "  - prompt: a boat\n", SAME))

    result = build(story, tmp_path / "out", renderer=small_renderer)

    assert drawn(small_renderer) == [(1, 7), (2, 1235)]
    assert (result.rendered, result.reused) == (2, 1)
    assert result.panels[0].key == result.panels[2].key
    assert pixels(tmp_path / "out/panels/panel-03.png") == pixels(tmp_path / "out/panels/panel-01.png")


def test_a_batch_builds_each_story_in_its_folder_and_reports_the_broken_one(write_story, small_renderer, tmp_path,
                                                                           capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_story(story_text("One", SAME, "  - prompt: a boat\n"), "one.yaml")
    write_story("title: Broken\npanels: 3\n", "broken.yaml")
    write_story(story_text("Two", "  - prompt: a gull\n", SAME), "two.yaml")

    code = main(["build", "one.yaml", "broken.yaml", "two.yaml", "--renderer", "small", "--out", "out"])

    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines()[-1] == "Error: broken.yaml:2: panels: expected a list, got a whole number (3)"
    assert out.splitlines() == [
        "one.yaml: rendered 2, reused 0 -> out/one",
        "two.yaml: rendered 1, reused 1 -> out/two",
        "3 stories: 2 built, 1 failed; drew 3 images (1 duplicate drawn once) (small renderer)",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one", "two"]  # nothing for the broken one
    for name in ("one", "two"):
        manifest = json.loads((tmp_path / "out" / name / "manifest.json").read_text())
        assert manifest["story"] == f"{name}.yaml"
        assert (tmp_path / "out" / name / "page.png").is_file()
    assert pixels(tmp_path / "out/two/panels/panel-02.png") == pixels(tmp_path / "out/one/panels/panel-01.png")

    # A folder (or a glob) is a batch too; everything is reused now.
    assert main(["build", ".", "--renderer", "small", "--out", "out"]) == 1
    assert "3 stories: 2 built, 1 failed; drew 0 images (small renderer)" in capsys.readouterr().out


def test_a_panel_another_story_has_cached_is_copied_not_drawn(write_story, small_renderer, tmp_path):
    one = write_story(story_text("One", SAME), "one.yaml")
    two = write_story(story_text("Two", "  - prompt: a gull\n", SAME), "two.yaml")
    build(one, tmp_path / "out" / "one", renderer=small_renderer)
    small_renderer.drawn.clear()

    batch = build_many([one, two], tmp_path / "out", renderer=small_renderer)

    assert drawn(small_renderer) == [(1, 1234)]
    assert (batch.drawn, batch.copied) == (1, 1)
    assert pixels(tmp_path / "out/two/panels/panel-02.png") == pixels(tmp_path / "out/one/panels/panel-01.png")


def test_a_shared_cache_serves_other_stories_and_is_never_pruned(write_story, small_renderer, tmp_path,
                                                                   monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "someone-else.png").write_bytes(b"not ours")
    (shared / ".0123.png.4242.tmp").write_bytes(b"another machine's write in progress")
    one = write_story(story_text("One", SAME, "  - prompt: a boat\n"), "one.yaml")
    two = write_story(story_text("Two", "  - prompt: a gull\n", SAME), "two.yaml")

    build(one, tmp_path / "one", renderer=small_renderer, cache=shared)
    monkeypatch.setenv("STORYBOARD_CACHE", str(shared))
    monkeypatch.setenv("SMALL_RENDERER_LOG", str(tmp_path / "drawn.txt"))
    assert main(["build", str(two), "--renderer", "small", "--out", str(tmp_path / "two")]) == 0

    assert (tmp_path / "drawn.txt").read_text() == "1 1234\n"  # the lighthouse came from the shared cache
    assert not (tmp_path / "one" / "cache").exists() and not (tmp_path / "two" / "cache").exists()
    assert len(list(shared.glob("*.png"))) == 4
    assert (shared / "someone-else.png").read_bytes() == b"not ours"
    assert (shared / ".0123.png.4242.tmp").is_file()


def test_two_stories_with_one_name_are_refused(write_story, small_renderer, tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    write_story(story_text("One", SAME), "one.yaml")
    write_story(story_text("Other one", SAME), "sub/one.yaml")

    code = main(["build", str(tmp_path / "one.yaml"), str(tmp_path / "sub/one.yaml"), "--renderer", "small",
                 "--out", str(tmp_path / "out")])

    assert code == 1
    assert capsys.readouterr().err == (f"Error: {tmp_path}/one.yaml and {tmp_path}/sub/one.yaml would both be built "
                                       f"into {tmp_path}/out/one; rename one, or build them apart\n")
    assert not (tmp_path / "out").exists()


BLOCK_RAY = """
import sys
class NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoRay())
from storyboard.cli import main
code = main(sys.argv[1:])
print("ray imported:", any(m == "ray" or m.startswith("ray.") for m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def run_without_ray(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK_RAY, *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def test_without_ray_ray_is_one_line_saying_how_to_install_it(write_story, tmp_path):
    write_story(story_text("One", SAME), "one.yaml")

    refused = run_without_ray("build", "one.yaml", "--renderer", "draft", "--ray", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr == ("Error: --ray needs Ray, which is not installed; install it with: "
                              "pip install 'storyboard[ray]'\nray imported: False\n")
    assert not (tmp_path / "build").exists()

    built = run_without_ray("build", "one.yaml", "--renderer", "draft", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert built.stderr.splitlines()[-1] == "ray imported: False"
