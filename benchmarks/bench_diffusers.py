"""Whole `storyboard build` against a bare diffusers loop: same model, prompts, seeds, size and steps.

Each run is its own process (imports and model load included, as a user pays them), nothing is cached between
runs, the runs alternate, and the best wall time of each side is kept. Peak memory is the child's max RSS.

    python benchmarks/bench_diffusers.py                 # tiny random pipeline, 128x128, 4 steps (CPU is fine)
    python benchmarks/bench_diffusers.py --real-size     # SD 1.5's UNet config, random weights, 512x512 (GPU)
    python benchmarks/bench_diffusers.py --model PATH    # any diffusers folder you have

Options: --runs N (default 3), --steps N, --size N, --device cpu|cuda|mps (default: storyboard's auto choice).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROMPTS = [
    "a little prince standing on a tiny planet, storybook illustration",
    "a single red rose under a glass dome",
    "a fox sitting in a wheat field at sunset",
    "an aviator repairing a plane in the desert",
    "a lamplighter on a very small planet at dusk",
    "a king on a throne wearing an ermine robe",
    "a snake coiled on a rock under the moon",
    "a field of five thousand roses in a garden",
]
NEGATIVE = "blurry, lowres"
SEED = 1000
GUIDANCE = 7.5

BARE_LOOP = """
import sys, torch
from diffusers import DiffusionPipeline

model, out, width, height, steps, device = sys.argv[1:7]
device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
dtype = torch.float16 if device != "cpu" else torch.float32
pipe = DiffusionPipeline.from_pretrained(model, torch_dtype=dtype, local_files_only=True).to(device)
pipe.set_progress_bar_config(disable=True)
prompts = {prompts!r}
for i, prompt in enumerate(prompts):
    generator = torch.Generator(device=device).manual_seed({seed} + i)
    image = pipe(prompt, negative_prompt={negative!r}, width=int(width), height=int(height),
                 num_inference_steps=int(steps), guidance_scale={guidance}, generator=generator).images[0]
    image.save(f"{{out}}/panel-{{i + 1:02d}}.png")
"""


def loop_dtype(device: str) -> str:
    """The dtype the bare loop draws in (float16 on a GPU, float32 on the CPU), for the story to name too:
    storyboard's `auto` would draw in bfloat16 on a CPU that computes it natively, and so other pixels."""
    from storyboard.render.diffusers.device import probe_device

    return "float32" if probe_device(device) == "cpu" else "float16"


def story_text(size: int, steps: int, device: str) -> str:
    panels = "\n".join(f"  - prompt: {p!r}" for p in PROMPTS)
    return textwrap.dedent(f"""\
        title: Benchmark
        style:
          negative: {NEGATIVE!r}
        render:
          width: {size}
          height: {size}
          steps: {steps}
          guidance: {GUIDANCE}
          seed: {SEED}
          scheduler: default
          device: {device}
          dtype: {loop_dtype(device)}
        panels:
        """) + panels + "\n"


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one child process."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{errors.read().decode(errors='replace')}")
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return seconds, usage.ru_utime + usage.ru_stime, peak


def same_pixels(a: Path, b: Path) -> bool:
    from PIL import Image

    for i in range(1, len(PROMPTS) + 1):
        with Image.open(a / f"panel-{i:02d}.png") as x, Image.open(b / f"panel-{i:02d}.png") as y:
            if x.convert("RGB").tobytes() != y.convert("RGB").tobytes():
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a diffusers folder (default: build a tiny random pipeline)")
    parser.add_argument("--real-size", action="store_true", help="random-weight pipeline with SD 1.5's UNet")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    size = args.size or (512 if args.real_size else 128)
    steps = args.steps or (20 if args.real_size else 4)

    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="storyboard-bench-"))
    model = Path(args.model) if args.model else None
    if model is None:
        from tests.tiny_pipeline import build_tiny_pipeline

        model = build_tiny_pipeline(work / "model", real_size_unet=args.real_size)
    story = work / "bench.yaml"
    story.write_text(story_text(size, steps, args.device), encoding="utf-8")
    bare = work / "bare_loop.py"
    bare.write_text(BARE_LOOP.format(prompts=PROMPTS, seed=SEED, negative=NEGATIVE, guidance=GUIDANCE))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "STORYBOARD_CACHE_DIR": str(work / "user-cache")}

    results: dict[str, list[tuple[float, float, float]]] = {"storyboard build": [], "bare diffusers loop": []}
    for n in range(args.runs):
        out = work / f"build-{n}"
        results["storyboard build"].append(run(
            [sys.executable, "-m", "storyboard", "build", str(story), "--out", str(out), "--model", str(model)], env))
        loop_out = work / f"loop-{n}"
        loop_out.mkdir()
        results["bare diffusers loop"].append(run(
            [sys.executable, str(bare), str(model), str(loop_out), str(size), str(size), str(steps), args.device],
            env))

    best = {name: min(runs) for name, runs in results.items()}  # the run with the best wall time
    print(f"{len(PROMPTS)} panels, {size}x{size}, {steps} steps, model {model}, best of {args.runs}")
    print(f"{'':22} {'best wall s':>11} {'its CPU s':>9} {'max RSS MiB':>11}   all runs (wall s)")
    for name, runs in results.items():
        times = ", ".join(f"{t:.2f}" for t, _, _ in runs)
        print(f"{name:22} {best[name][0]:11.2f} {best[name][1]:9.2f} {max(m for _, _, m in runs):11.0f}   {times}")
    ratio = best["storyboard build"][0] / best["bare diffusers loop"][0]
    cpu_ratio = (min(c for _, c, _ in results["storyboard build"])
                 / min(c for _, c, _ in results["bare diffusers loop"]))
    print(f"ratio build / bare loop: {ratio:.3f} wall, {cpu_ratio:.3f} CPU (best of each)")
    print(f"identical pixels: {same_pixels(work / 'build-0' / 'panels', work / 'loop-0')}")
    print(f"(files in {work})")


if __name__ == "__main__":
    main()
