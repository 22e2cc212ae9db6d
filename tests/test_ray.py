"""Drawing on Ray workers: one local Ray instance with 2 CPUs for the whole module, workers are Ray actors."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from storyboard.building import BuildProgress, build, build_many
from storyboard.files import exclusive_lock

ray = pytest.importorskip("ray")
from storyboard.workers.ray_cluster import RayWorkers  # noqa: E402

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray instance with 2 CPUs; its workers import the test renderers from tests/."""
    path = os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}})
    yield
    ray.shutdown()


@pytest.fixture
def two_workers():
    workers = RayWorkers(count=2)
    yield workers
    workers.close()


CAST = """
title: Ray
characters:
  fox: a small red fox
render:
  width: 64
  height: 64
  steps: 2
  seed: 40
panels:
  - prompt: the fox in the desert
    characters: [fox]
  - prompt: a rose under a glass dome
  - prompt: the fox and a well
    characters: [fox]
  - prompt: stars over the dunes
"""


def pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def test_panels_drawn_on_ray_are_bit_identical_to_a_local_build(write_story, tiny_model, tmp_path, two_workers):
    story = write_story(CAST)
    local = build(story, tmp_path / "local", renderer="diffusers", model=str(tiny_model))
    on_ray = build(story, tmp_path / "ray", renderer="diffusers", model=str(tiny_model), workers=two_workers)

    assert (on_ray.rendered, on_ray.anchors_rendered) == (4, 1)
    assert [p.key for p in on_ray.panels + on_ray.characters] == [p.key for p in local.panels + local.characters]
    for p in local.panels + local.characters:
        assert pixels(tmp_path / "ray" / p.job.file) == pixels(tmp_path / "local" / p.job.file), p.job.label
    assert len({pixels(tmp_path / "ray" / p.job.file) for p in on_ray.panels}) == 4
    # Both workers drew: the panels were spread over them (each loads the model once).
    assert len(two_workers.names) == 2


class Watched(BuildProgress):
    """Records which worker drew each job."""

    def __init__(self) -> None:
        self.workers: list[str] = []

    def drawing_on(self, job, worker) -> None:
        self.workers.append(worker)


def test_a_worker_killed_mid_panel_is_restarted_and_the_build_has_every_panel(eight_panel_story, tmp_path,
                                                                             two_workers):
    from small_renderers import WatchedRenderer

    started = tmp_path / "started.txt"
    started.touch()
    renderer = WatchedRenderer(str(started), delay=0.4)
    killed: list[int] = []

    def kill_the_first_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = started.read_text().splitlines()
            if lines:
                pid = int(lines[0].split()[0])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_first_worker)
    killer.start()
    progress = Watched()
    result = build(eight_panel_story, tmp_path / "out", renderer=renderer, workers=two_workers, progress=progress)
    killer.join()

    assert killed and killed[0] != os.getpid()
    assert (result.rendered, result.reused) == (8, 0)
    assert all((tmp_path / "out" / p.job.file).is_file() for p in result.panels)
    drawn_by = {int(line.split()[0]) for line in started.read_text().splitlines()}
    assert len(drawn_by) == 3  # the two workers, and the one Ray started in place of the killed one
    killed_job = next(line.split(" ", 1)[1] for line in started.read_text().splitlines()
                      if int(line.split()[0]) == killed[0])
    assert [line.split(" ", 1)[1] for line in started.read_text().splitlines()].count(killed_job) == 2
    assert set(progress.workers) == set(two_workers.names)


def test_a_batch_on_ray_draws_shared_panels_once(write_story, tmp_path, two_workers):
    from small_renderers import SmallRenderer

    log = tmp_path / "drawn.txt"
    shared = "  - prompt: the same lighthouse\n    seed: 7\n"
    one = write_story("title: One\nrender: {width: 64, height: 64}\npanels:\n" + shared + shared
                      + "  - prompt: a boat\n", "one.yaml")
    two = write_story("title: Two\nrender: {width: 64, height: 64}\npanels:\n" + shared
                      + "  - prompt: a gull\n", "two.yaml")

    batch = build_many([one, two], tmp_path / "out", renderer=SmallRenderer(log=str(log)), workers=two_workers)

    assert [s.error for s in batch.stories] == [None, None]
    assert sorted(log.read_text().split("\n")[:-1]) == ["1 7", "2 1235", "3 1236"]  # the lighthouse once
    assert (batch.drawn, batch.duplicates) == (3, 2)
    lighthouse = pixels(tmp_path / "out" / "one" / "panels" / "panel-01.png")
    assert pixels(tmp_path / "out" / "one" / "panels" / "panel-02.png") == lighthouse
    assert pixels(tmp_path / "out" / "two" / "panels" / "panel-01.png") == lighthouse


class Interrupting(BuildProgress):
    def __init__(self) -> None:
        self.done = 0

    def panel_done(self, job) -> None:
        self.done += 1
        if self.done == 2:
            raise KeyboardInterrupt


def test_ctrl_c_on_ray_stops_the_workers_leaves_no_temp_file_and_releases_the_lock(eight_panel_story, tmp_path,
                                                                                 two_workers):
    from small_renderers import SmallRenderer

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        build(eight_panel_story, out, renderer=SmallRenderer(delay=0.2), workers=two_workers,
              progress=Interrupting())

    assert two_workers.actors == []  # killed, so nothing draws on for a build that is gone
    assert [p.name for p in out.rglob("*.tmp")] == []
    assert len(list((out / "cache").glob("*.png"))) == 2
    with exclusive_lock(out, "check"):
        pass
    again = build(eight_panel_story, out, renderer=SmallRenderer(), workers=two_workers)
    assert (again.rendered, again.reused) == (6, 2)
