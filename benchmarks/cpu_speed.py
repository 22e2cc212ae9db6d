"""Seconds per image on the CPU: diffusers in float32 (what `render.dtype: float32` draws), `auto` (bfloat16 on a
CPU that computes it natively), `auto` with the tiny autoencoder, the openvino renderer, and openvino with the tiny
autoencoder; at 4 steps and at 1 step (turbo-style), guidance 1, Euler.

The model is SD 1.5's architecture with random weights built from configs (offline: the compute is that of the real
model), or any diffusers folder (--model). A full-size random AutoencoderTiny (TAESD's architecture) stands in for
the tiny autoencoder. Each side draws through storyboard's own renderer in a process of its own: one warm-up image,
then --images timed ones, of which the best counts; the sides alternate, round after round (--rounds), and each
side's best over all rounds is kept. Peak memory is the child's max RSS (`os.wait4`), the load included. The
OpenVINO exports are made first, each in a process of its own, and their time, peak memory and size on disk shown.

    python benchmarks/cpu_speed.py                     # 512x512, 2 rounds, 3 images each
    python benchmarks/cpu_speed.py --size 256 --rounds 1 --images 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout this file is in, not whichever storyboard is installed

from storyboard.render.openvino.ir import folder_size  # noqa: E402

SIDES = {  # name: (renderer, render.dtype, tiny autoencoder)
    "diffusers float32": ("diffusers", "float32", False),
    "diffusers auto": ("diffusers", "auto", False),
    "diffusers auto + tiny VAE": ("diffusers", "auto", True),
    "openvino": ("openvino", "auto", False),
    "openvino + tiny VAE": ("openvino", "auto", True),
}

CHILD = """
import json, sys, time
from storyboard.render import get_renderer
from storyboard.resolve import resolve
from storyboard.story import load_story

story, model, renderer, mode, out = sys.argv[1:6]
jobs = resolve(load_story(story), model=model)
engine = get_renderer(renderer)
if mode == "export":
    started = time.perf_counter()
    engine._load(jobs[0])
    print(json.dumps({"seconds": time.perf_counter() - started, "exports": engine.exports}))
    sys.exit()
times, last = [], time.perf_counter()
for n, done in enumerate(engine.render(jobs)):
    now = time.perf_counter()
    times.append(now - last)
    last = now
    done.image.save(f"{out}/panel-{n + 1}.png")
print(json.dumps({"times": times}))
"""


def story(size: int, steps: int, images: int, dtype: str, vae: str | None) -> str:
    panels = "".join(f"  - prompt: a lighthouse on a cliff at dusk, picture {n}\n" for n in range(images + 1))
    return (f"title: CPU speed\nrender:\n  width: {size}\n  height: {size}\n  steps: {steps}\n  guidance: 1\n"
            f"  scheduler: euler\n  seed: 7\n  dtype: {dtype}\n  device: cpu\n"
            + (f"  vae: {vae}\n" if vae else "") + f"panels:\n{panels}")


def child(args: list[str], env: dict[str, str]) -> tuple[dict, float]:
    """The JSON a child printed, and its peak RSS in MiB."""
    process = subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    output, errors = "", ""
    _, status, usage = os.wait4(process.pid, 0)
    output, errors = process.stdout.read(), process.stderr.read()
    if status != 0:
        sys.exit(f"a child failed ({args[2]}):\n{errors[-3000:]}")
    return json.loads(output.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a diffusers folder [default: SD 1.5's architecture, random weights]")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 1])
    parser.add_argument("--images", type=int, default=3, help="timed images per side and round, after a warm-up")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sides", nargs="+", choices=list(SIDES), default=list(SIDES))
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from tests.tiny_pipeline import build_tiny_pipeline

    work = Path(tempfile.mkdtemp(prefix="cpu-speed-"))
    started = time.perf_counter()
    model = Path(args.model) if args.model else build_tiny_pipeline(work / "sd15-random", real_size_unet=True)
    taesd = work / "taesd-random"
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny().save_pretrained(taesd)
    print(f"model {model} and a random TAESD ready in {time.perf_counter() - started:.0f} s; files in {work}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "STORYBOARD_CACHE_DIR": str(work / "cache")}

    stories: dict[tuple[str, int], Path] = {}
    for name in args.sides:
        _, dtype, tiny = SIDES[name]
        for steps in args.steps:
            path = work / f"{name.replace(' ', '-').replace('+', 'and')}-{steps}.yaml"
            path.write_text(story(args.size, steps, args.images, dtype, str(taesd) if tiny else None), "utf-8")
            stories[name, steps] = path

    for name in (n for n in args.sides if SIDES[n][0] == "openvino"):
        before = set((work / "cache" / "openvino").glob("*")) if (work / "cache" / "openvino").exists() else set()
        result, rss = child([str(stories[name, args.steps[0]]), str(model), "openvino", "export", str(work)], env)
        made = set((work / "cache" / "openvino").glob("*")) - before
        disk = sum(folder_size(path) for path in made)
        print(f"export for {name!r}: {result['seconds']:.0f} s, peak RSS {rss / 1024:.1f} GiB, "
              f"{disk / 2**20:.0f} MiB on disk")

    best: dict[tuple[str, int], float] = {}
    peak: dict[str, float] = {}
    for round_ in range(args.rounds):
        for steps in args.steps:
            for name in args.sides:
                out = work / "images" / f"{name.replace(' ', '-').replace('+', 'and')}-{steps}"
                out.mkdir(parents=True, exist_ok=True)
                result, rss = child([str(stories[name, steps]), str(model), SIDES[name][0], "draw", str(out)], env)
                timed = result["times"][1:]
                best[name, steps] = min([best.get((name, steps), float("inf")), *timed])
                peak[name] = max(peak.get(name, 0.0), rss)
                print(f"round {round_ + 1}, {steps} steps, {name}: " + ", ".join(f"{t:.2f}" for t in timed)
                      + f" s/image, peak RSS {rss / 1024:.1f} GiB", flush=True)

    reference = "diffusers float32"
    print(f"\n{args.size}x{args.size}, guidance 1, Euler, best of {args.images} x {args.rounds} rounds")
    header = "".join(f" | {steps} step{'s' if steps > 1 else ''} s/image (ratio)" for steps in args.steps)
    print(f"| side{header} | peak RSS | max diff (mean), levels, at {args.steps[0]} steps |")
    for name in args.sides:
        cells = ""
        for steps in args.steps:
            ratio = f" ({best[name, steps] / best[reference, steps]:.2f}x)" if (reference, steps) in best else ""
            cells += f" | {best[name, steps]:.2f}{ratio}"
        # The random autoencoders draw unrelated pictures: a tiny-VAE side is compared with diffusers' tiny-VAE one.
        against = "diffusers auto + tiny VAE" if SIDES[name][2] and name != "diffusers auto + tiny VAE" else reference
        print(f"| {name}{cells} | {peak[name] / 1024:.1f} GiB | {difference(work, name, against, args.steps[0])} "
              f"from {against} |")


def difference(work: Path, name: str, reference: str, steps: int) -> str:
    import numpy as np
    from PIL import Image

    def image(side: str) -> np.ndarray:
        path = work / "images" / f"{side.replace(' ', '-').replace('+', 'and')}-{steps}" / "panel-2.png"
        return np.asarray(Image.open(path).convert("RGB")).astype(int)

    try:
        delta = np.abs(image(name) - image(reference))
    except FileNotFoundError:
        return "-"
    return f"{delta.max()} (mean {delta.mean():.2f})"


if __name__ == "__main__":
    main()
