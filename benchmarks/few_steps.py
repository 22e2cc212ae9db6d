"""CPU time of a few-step build (render.preset: turbo or lcm) against a 25-step one: same prompts, seeds and size.

Each build is its own `python -m storyboard build` process from an empty output folder, so imports and the model
load count as they do for a user; CPU time is the child's user + system time (`os.wait4`), which a busy machine
disturbs less than wall time. The best of --runs is kept.

    python benchmarks/few_steps.py                                   # tiny random pipeline (tests/tiny_pipeline.py)
    python benchmarks/few_steps.py --model stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --fast-model stabilityai/sd-turbo --size 512                  # real weights: SD 1.5 at 25 steps vs SD-Turbo

    python benchmarks/few_steps.py --model stable-diffusion-v1-5/stable-diffusion-v1-5 --preset lcm \
        --lora latent-consistency/lcm-lora-sdv1-5 --size 512      # SD 1.5 at 25 steps vs SD 1.5 + LCM-LoRA

Options: --preset turbo|lcm (default turbo), --lora PATH (a LoRA for the few-step side), --panels N (8),
--size N (256), --runs N (1).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROMPTS = [
    "a little prince standing on a tiny planet", "a single red rose under a glass dome",
    "a fox sitting in a wheat field at sunset", "an aviator repairing a plane in the desert",
    "a lamplighter on a very small planet at dusk", "a king on a throne wearing an ermine robe",
    "a snake coiled on a rock under the moon", "a field of five thousand roses in a garden",
]


def story(render: str, panels: int, size: int) -> str:
    lines = [f"  - prompt: {PROMPTS[i % len(PROMPTS)]}\n" for i in range(panels)]
    return (f"title: Few steps\nstyle:\n  prefix: storybook illustration\n  negative: blurry, lowres\n"
            f"render:\n  width: {size}\n  height: {size}\n  seed: 1000\n{render}panels:\n" + "".join(lines))


def timed_build(path: Path, out: Path, model: str) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "storyboard", "build", str(path), "--out", str(out), "--model",
                              model], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    stdout, stderr = child.stdout.read().decode(), child.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0 or "rendered" not in stdout:
        sys.exit(f"build failed:\n{stdout}{stderr}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="the model drawn with 25 steps (default: the tiny random pipeline)")
    parser.add_argument("--fast-model", help="the few-step model (default: --model)")
    parser.add_argument("--preset", choices=("turbo", "lcm"), default="turbo")
    parser.add_argument("--lora", help="a LoRA for the few-step side, e.g. latent-consistency/lcm-lora-sdv1-5")
    parser.add_argument("--panels", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model
        if model is None:
            sys.path.insert(0, str(ROOT))
            from tests.tiny_pipeline import build_tiny_pipeline

            model = str(build_tiny_pipeline(root / "tiny-sd"))
        fast_model = args.fast_model or model
        fast = f"  preset: {args.preset}\n" + (f"  loras:\n    - path: {args.lora}\n" if args.lora else "")
        cases = [("25 steps", "  steps: 25\n", model), (f"preset: {args.preset}", fast, fast_model)]
        best: dict[str, tuple[float, float]] = {}
        for run in range(args.runs):
            for label, render, which in cases:
                path = root / f"{label.replace(' ', '_').replace(':', '')}.yaml"
                path.write_text(story(render, args.panels, args.size), encoding="utf-8")
                wall, cpu = timed_build(path, root / f"out-{run}-{path.stem}", which)
                print(f"run {run + 1}: {label:>14} ({which}): {wall:7.2f} s wall, {cpu:7.2f} s CPU", flush=True)
                if label not in best or cpu < best[label][1]:
                    best[label] = (wall, cpu)
        slow, fast = best[cases[0][0]], best[cases[1][0]]
        print(f"\n{args.panels} panels at {args.size}x{args.size}, best of {args.runs}:")
        for label, (wall, cpu) in best.items():
            print(f"  {label:>14}: {wall:7.2f} s wall, {cpu:7.2f} s CPU")
        print(f"  few-step / 25-step CPU time: {fast[1] / slow[1]:.2f}")


if __name__ == "__main__":
    main()
