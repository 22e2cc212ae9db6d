"""Ray against a local build, and how the Ray scheduler scales.

1. Overhead: the same 8-panel story on the tiny pipeline (tests/tiny_pipeline.py), built locally and on Ray with one
   worker; the pixels must match. Ray's start-up (starting the local instance and the worker) is reported apart.
   Each side is timed twice: the first build (the model is loaded: in this process, or in the worker, which also
   imports torch) and a second one with `force` (every panel drawn again by the warm renderer), which is what the
   ratio compares.
2. Scaling: 64 panels drawn by a renderer that only waits a fixed time per panel, over 1, 2, 4 and 8 workers; the
   time is the drawing phase (from the first job handed out to the last image stored by the driver), so the page
   composition, the same whatever the workers, is left out.

    python benchmarks/ray_workers.py [--size 128] [--steps 4] [--wait 0.25] [--panels 64] [--skip-overhead]
                                     [--skip-scaling]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def story(panels: int, size: int, steps: int) -> str:
    lines = "".join(f"  - prompt: scene number {i}, a lighthouse at dusk\n" for i in range(1, panels + 1))
    return (f"title: Ray benchmark\nrender:\n  width: {size}\n  height: {size}\n  steps: {steps}\n  seed: 1234\n"
            f"layout:\n  columns: 8\npanels:\n{lines}")


class DrawingClock:
    """Times the drawing phase: from `start` to the last `panel_done`."""

    def __init__(self) -> None:
        from storyboard.building import BuildProgress

        class Clock(BuildProgress):
            def start(inner, jobs, to_render, renderer):
                self.began, self.ended = time.perf_counter(), None

            def panel_done(inner, job):
                self.ended = time.perf_counter()

        self.progress = Clock()
        self.began = self.ended = 0.0

    @property
    def seconds(self) -> float:
        return self.ended - self.began


def pixels(out: Path) -> list[bytes]:
    from PIL import Image

    return [Image.open(p).convert("RGB").tobytes() for p in sorted((out / "panels").glob("*.png"))]


def overhead(work: Path, size: int, steps: int) -> None:
    import ray
    from tiny_pipeline import build_tiny_pipeline

    from storyboard.building import build
    from storyboard.render.diffusers import DiffusersRenderer
    from storyboard.workers.ray_cluster import RayWorkers

    model = build_tiny_pipeline(work / "tiny-sd")
    path = work / "eight.yaml"
    path.write_text(story(8, size, steps))
    import torch  # noqa: F401  (the local side's imports are not what is compared)

    local = DiffusersRenderer()
    began = time.perf_counter()
    build(path, work / "local", renderer=local, model=str(model))
    local_first = time.perf_counter() - began
    began = time.perf_counter()
    build(path, work / "local", renderer=local, model=str(model), force=True)
    local_warm = time.perf_counter() - began

    workers = RayWorkers(count=1)
    engine = DiffusersRenderer()
    workers.start(engine)
    began = time.perf_counter()
    build(path, work / "ray", renderer=engine, model=str(model), workers=workers)
    ray_first = time.perf_counter() - began
    began = time.perf_counter()
    build(path, work / "ray", renderer=engine, model=str(model), workers=workers, force=True)
    ray_warm = time.perf_counter() - began
    workers.close()
    same = pixels(work / "local") == pixels(work / "ray")
    print(f"8 panels, tiny pipeline, {size}x{size}, {steps} steps")
    print(f"  Ray start-up (local instance + 1 worker): {workers.startup_seconds:.2f} s")
    print(f"  first build: local {local_first:.2f} s, ray {ray_first:.2f} s (the worker imports torch, loads)")
    print(f"  warm rebuild (force): local {local_warm:.2f} s, ray {ray_warm:.2f} s, "
          f"ratio {ray_warm / local_warm:.3f}; same pixels: {same}")
    ray.shutdown()


def scaling(work: Path, panels: int, wait: float) -> None:
    import ray
    from small_renderers import WaitingRenderer

    from storyboard.building import build
    from storyboard.workers.ray_cluster import RayWorkers

    ray.init(num_cpus=8, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}})
    path = work / "many.yaml"
    path.write_text(story(panels, 64, 1))
    ideal_one = panels * wait
    print(f"{panels} panels, {wait} s wait each")
    for count in (1, 2, 4, 8):
        workers = RayWorkers(count=count)
        engine = WaitingRenderer(wait)
        workers.start(engine)
        clock = DrawingClock()
        build(path, work / f"wait-{count}", renderer=engine, workers=workers, progress=clock.progress)
        workers.close()
        ideal = ideal_one / count
        print(f"  {count} worker{'s' if count > 1 else ' '}: {clock.seconds:6.2f} s (ideal {ideal:5.2f} s), "
              f"{ideal / clock.seconds:.3f} of linear; start-up {workers.startup_seconds:.2f} s")
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--wait", type=float, default=0.25)
    parser.add_argument("--panels", type=int, default=64)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_overhead:
            overhead(Path(tmp), args.size, args.steps)
        if not args.skip_scaling:
            scaling(Path(tmp), args.panels, args.wait)


if __name__ == "__main__":
    main()
