"""A long story on the draft renderer: a fresh `storyboard build` of N panels (default 500) in its own process, as a
user runs it, then a rebuild with nothing changed. Reports wall time and the child's peak RSS against the targets
(a 500-panel draft build within 10 s and 1 GiB on a 2-core machine).

    python benchmarks/big_story.py                 # 500 panels, 3 rounds, best of each
    python benchmarks/big_story.py --panels 1000 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS, TARGET_MIB = 10.0, 1024


def story_text(panels: int) -> str:
    lines = ["title: A long road", "characters:", "  walker: a tall walker in a grey coat",
             "layout: {columns: 4, rows: 3}", "panels:"]
    for i in range(1, panels + 1):
        who = ", characters: [walker]" if i % 7 == 0 else ""
        lines.append(f"  - {{prompt: 'mile {i} of the long road, dusk', caption: 'Mile {i}. The road goes on.'{who},"
                     f" dialogue: [{{speaker: walker, text: 'Still walking, mile {i}.'}}]}}")
    return "\n".join(lines) + "\n"


def run(story: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `storyboard build` process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "storyboard", "build", str(story), "--out", str(out),
                           "--renderer", "draft"], capture_output=True, text=True, env=env,
                          cwd=ROOT)  # `-m` puts the working folder first: run the checkout this file is in
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"build failed: {done.stderr.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--panels", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        story = Path(tmp) / "long_road.yaml"
        story.write_text(story_text(args.panels), encoding="utf-8")
        fresh, again = [], []
        for n in range(args.rounds):
            out = Path(tmp) / f"out-{n}"
            fresh.append(run(story, out))
            again.append(run(story, out))
    best_fresh, best_again = min(w for w, _ in fresh), min(w for w, _ in again)
    peak = max(m for _, m in fresh + again)  # RUSAGE_CHILDREN keeps the largest child so far
    print(f"{args.panels} panels, draft renderer, best of {args.rounds}")
    print(f"fresh build: {best_fresh:.2f} s   (all: {', '.join(f'{w:.2f}' for w, _ in fresh)})")
    print(f"no-change rebuild: {best_again:.2f} s   (all: {', '.join(f'{w:.2f}' for w, _ in again)})")
    print(f"peak RSS of a build process: {peak:.0f} MiB")
    ok = best_fresh <= TARGET_SECONDS and peak <= TARGET_MIB
    print(f"target (fresh build <= {TARGET_SECONDS:g} s, <= {TARGET_MIB} MiB): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
