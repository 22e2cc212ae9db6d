"""The cost of reading character anchors: time per panel and peak memory, `consistency: reference` against `none`.

One process loads the model, draws the anchors and one panel of each side to warm up, then times drawing the same N
panels (each listing the characters) with the renderer, the two sides alternating, and keeps each side's best run;
the page is not composed. Peak memory is measured with each side alone in its own process: the child's maximum RSS
(and, on CUDA, torch's peak allocated memory).

    python benchmarks/bench_consistency.py                   # tiny random pipeline, 128x128, 4 steps (CPU is fine)
    python benchmarks/bench_consistency.py --real-size       # SD 1.5's UNet config, random weights (GPU)
    python benchmarks/bench_consistency.py --model PATH      # any diffusers folder you have, e.g. SD 1.5

Options: --runs N (default 3), --panels N (default 6), --steps N, --size N, --characters K (per panel, default 1).

With --scores it also builds the story both ways and scores each with `storyboard check` (CLIP-I between panels of
the same character and against its anchor, CLIP-T against the prompts), with a tiny random CLIP unless --clip names
a real one (e.g. openai/clip-vit-base-patch32 from the Hugging Face cache).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from storyboard.render import Reference
from storyboard.render.diffusers import DiffusersRenderer
from storyboard.resolve import resolve, resolve_anchors
from storyboard.story import load_story

modes, runs = sys.argv[1].split(","), int(sys.argv[2])
stories = {{mode: load_story(path) for mode, path in zip(modes, sys.argv[3:])}}
renderer = DiffusersRenderer()
anchor_jobs = resolve_anchors(stories[modes[-1]])
# Draw the anchors (and load the model) once, outside the timing.
drawn = {{job.character: Reference(job, r.image) for job, r in zip(anchor_jobs, renderer.render(anchor_jobs))}}
jobs = {{mode: resolve(story) for mode, story in stories.items()}}
for mode in modes:
    list(renderer.render(jobs[mode][:1], references=drawn))  # warm-up
best = {{}}
for _ in range(runs):  # the modes alternate, so both see the same machine
    for mode in modes:
        start = time.perf_counter()
        for done in renderer.render(jobs[mode], references=drawn):
            pass
        best[mode] = min(best.get(mode, 1e9), (time.perf_counter() - start) / len(jobs[mode]))
peak_gpu = None
try:
    import torch
    if torch.cuda.is_available():
        peak_gpu = torch.cuda.max_memory_allocated() / 2**20
except Exception:
    pass
print(json.dumps({{"per_panel": best, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "gpu_mib": peak_gpu}}))
"""

NAMES = ["fox", "prince", "rose", "pilot"]


def story_text(model: str, mode: str, panels: int, size: int, steps: int, characters: int) -> str:
    cast = NAMES[:characters]
    sheet = "\n".join(f"  {name}: a {name} in a storybook illustration" for name in cast)
    body = "\n".join(f"  - prompt: scene {i}, a wheat field at sunset\n    characters: [{', '.join(cast)}]"
                     for i in range(1, panels + 1))
    return textwrap.dedent(f"""\
        title: Consistency benchmark
        characters:
        {{sheet}}
        render:
          model: {model}
          width: {size}
          height: {size}
          steps: {steps}
          seed: 1000
          consistency: {mode}
        panels:
        {{body}}
        """).format(sheet=sheet, body=body)


def run(modes: list[str], stories: list[Path], runs: int) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), ",".join(modes), str(runs),
                           *map(str, stories)], capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        sys.exit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--real-size", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--panels", type=int, default=6)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--characters", type=int, default=1, choices=range(1, len(NAMES) + 1))
    parser.add_argument("--scores", action="store_true", help="also score both builds with storyboard check")
    parser.add_argument("--clip", help="the CLIP model --scores uses (default: a tiny random one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="storyboard-bench-consistency-"))
    model = args.model
    if model is None:
        sys.path.insert(0, str(ROOT))
        from tests.tiny_pipeline import build_tiny_pipeline

        model = str(build_tiny_pipeline(work / "model", real_size_unet=args.real_size))
    size = args.size or (512 if args.real_size or args.model else 128)
    steps = args.steps or (20 if args.real_size or args.model else 4)
    stories = []
    for mode in ("none", "reference"):
        stories.append(work / f"{mode}.yaml")
        stories[-1].write_text(story_text(model, mode, args.panels, size, steps, args.characters), encoding="utf-8")
    # Time per panel: both modes in one process, alternating, best of --runs. Memory: each mode alone.
    timing = run(["none", "reference"], stories, args.runs)["per_panel"]
    memory = {mode: run([mode], [story], 1) for mode, story in zip(("none", "reference"), stories)}
    print(f"{args.panels} panels, {size}x{size}, {steps} steps, {args.characters} character(s) per panel, "
          f"best of {args.runs}:")
    for mode in ("none", "reference"):
        gpu = memory[mode]["gpu_mib"]
        print(f"  {mode:9}  {timing[mode]:.3f} s/panel   max RSS {memory[mode]['rss_mib']:.0f} MiB"
              + (f"   GPU peak {gpu:.0f} MiB" if gpu else ""))
    print(f"  ratio      {timing['reference'] / timing['none']:.2f}x time, "
          f"{memory['reference']['rss_mib'] / memory['none']['rss_mib']:.2f}x RSS")
    if args.scores:
        scores(work, args.clip)


def scores(work: Path, clip: str | None) -> None:
    """Build both stories (the page too) and score them with `storyboard check`."""
    sys.path.insert(0, str(ROOT))
    from storyboard.building import build
    from storyboard.check import check

    if clip is None:
        from tests.tiny_clip import build_tiny_clip

        clip = str(build_tiny_clip(work / "clip"))
    print(f"\nstoryboard check with {clip}:")
    for mode in ("none", "reference"):
        story = work / f"{mode}.yaml"
        build(story, work / f"page-{mode}")
        report = check(story, work / f"page-{mode}", model=clip)
        for c in report.characters:
            anchor = f", vs anchor {c.anchor_mean:.3f}" if c.anchor_mean is not None else ""
            print(f"  {mode:9} {c.name}: CLIP-I between its panels {c.pair_mean:.3f} (min {c.pair_min:.3f}, "
                  f"{c.pairs} pairs){anchor}")
        texts = [p.clip_t for p in report.panels if p.clip_t is not None]
        if texts:
            print(f"  {mode:9} CLIP-T mean {sum(texts) / len(texts):.3f}")


if __name__ == "__main__":
    main()
