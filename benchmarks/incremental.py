"""Time a full build, a rebuild after editing one of eight prompts, and a rebuild with no change.

Each build is a separate `python -m storyboard build` process, as a user runs it, so the times include Python
start-up and imports; the bare interpreter start-up and `storyboard --help` are measured too, for comparison.
Each round starts from an empty output folder; the median over rounds is reported.

    python benchmarks/incremental.py                                   # draft renderer (no model)
    python benchmarks/incremental.py --renderer diffusers --model ./tiny-sd --size 64 --steps 2

It checks the summary lines as it goes: the edit must give `rendered 1, reused 7` and the no-change rebuild
`rendered 0, reused 8`.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STORY = """\
title: Benchmark
style:
  prefix: "storybook illustration, soft light"
  negative: "blurry, watermark"
render:
  width: {size}
  height: {size}
  steps: {steps}
  seed: 1234
layout:
  columns: 4
panels:
"""

PANEL = """\
  - prompt: "medium shot of a lighthouse keeper, scene {i}, waves and gulls"
    caption: "Scene {i}"
"""


def run(args: list[str], cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr}")
    return elapsed, done.stdout


def summary(stdout: str) -> tuple[int, int]:
    match = re.search(r"rendered (\d+), reused (\d+)", stdout)
    if not match:
        sys.exit(f"no summary line in:\n{stdout}")
    return int(match.group(1)), int(match.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renderer", default="draft")
    parser.add_argument("--model", default=None, help="passed to `storyboard build --model`")
    parser.add_argument("--size", type=int, default=512, help="panel width and height [512]")
    parser.add_argument("--steps", type=int, default=25, help="denoising steps [25]")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    build = [sys.executable, "-m", "storyboard", "build", "story.yaml", "--renderer", args.renderer]
    if args.model:
        build += ["--model", str(Path(args.model).resolve()) if Path(args.model).exists() else args.model]
    times: dict[str, list[float]] = {"python start-up": [], "storyboard --help": [], "full build": [],
                                     "one prompt edited": [], "no change": []}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            story = folder / "story.yaml"
            story.write_text(STORY.format(size=args.size, steps=args.steps)
                             + "".join(PANEL.format(i=i) for i in range(1, 9)), encoding="utf-8")
            times["python start-up"].append(run([sys.executable, "-c", "pass"], folder)[0])
            times["storyboard --help"].append(run([sys.executable, "-m", "storyboard", "--help"], folder)[0])

            elapsed, out = run(build, folder)
            assert summary(out) == (8, 0), out
            times["full build"].append(elapsed)

            edited = round_ % 8 + 1
            story.write_text(story.read_text().replace(f"scene {edited},", f"scene {edited} at night,"))
            elapsed, out = run(build, folder)
            assert summary(out) == (1, 7), out
            times["one prompt edited"].append(elapsed)

            elapsed, out = run(build, folder)
            assert summary(out) == (0, 8), out
            times["no change"].append(elapsed)

    median = {name: statistics.median(values) for name, values in times.items()}
    full = median["full build"]
    print(f"renderer {args.renderer}{f' ({args.model})' if args.model else ''}, 8 panels {args.size}x{args.size}, "
          f"{args.steps} steps, median of {args.rounds} rounds")
    print(f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print()
    print("| build | seconds | vs full build |")
    print("|---|---:|---:|")
    for name, seconds in median.items():
        print(f"| {name} | {seconds:.2f} | {seconds / full:.2f} |")


if __name__ == "__main__":
    main()
