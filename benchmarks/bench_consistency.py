"""The cost of reading character anchors: time per panel and peak memory, `consistency: reference` against `none`.

Each side is its own process that loads the model, draws one panel to warm up, then times drawing the same N panels
(each listing one character) with the renderer, anchors already drawn; the page is not composed. Peak memory is the
child's maximum RSS (and, on CUDA, torch's peak allocated memory). The sides alternate and the best run is kept.

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

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from storyboard.render import Reference
from storyboard.render.diffusers import DiffusersRenderer
from storyboard.resolve import resolve, resolve_anchors
from storyboard.story import load_story

story_path, out = sys.argv[1], Path(sys.argv[2])
story = load_story(story_path)
renderer = DiffusersRenderer()
anchor_jobs = resolve_anchors(story)
# Draw the anchors (and load the model) once, outside the timing.
drawn = {{job.character: Reference(job, r.image) for job, r in zip(anchor_jobs, renderer.render(anchor_jobs))}}
jobs = resolve(story)
list(renderer.render(jobs[:1], references=drawn))  # warm-up
start = time.perf_counter()
for done in renderer.render(jobs, references=drawn):
    pass
elapsed = time.perf_counter() - start
peak_gpu = None
try:
    import torch
    if torch.cuda.is_available():
        peak_gpu = torch.cuda.max_memory_allocated() / 2**20
except Exception:
    pass
print(json.dumps({{"seconds": elapsed, "per_panel": elapsed / len(jobs),
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "gpu_mib": peak_gpu}}))
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


def run(story: Path, out: Path) -> dict[str, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), str(story), str(out)],
                          capture_output=True, text=True, env=env, check=False)
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
    best: dict[str, dict[str, float]] = {}
    for run_number in range(args.runs):
        for mode in ("none", "reference"):
            story = work / f"{mode}.yaml"
            story.write_text(story_text(model, mode, args.panels, size, steps, args.characters), encoding="utf-8")
            result = run(story, work / f"out-{mode}-{run_number}")
            if mode not in best or result["seconds"] < best[mode]["seconds"]:
                best[mode] = result
            print(f"run {run_number + 1} {mode:9} {result['per_panel']:.3f} s/panel, max RSS "
                  f"{result['rss_mib']:.0f} MiB" + (f", GPU peak {result['gpu_mib']:.0f} MiB"
                                                   if result["gpu_mib"] else ""), flush=True)
    none, ref = best["none"], best["reference"]
    print(f"\n{args.panels} panels, {size}x{size}, {steps} steps, {args.characters} character(s) per panel, "
          f"best of {args.runs}:")
    print(f"  none       {none['per_panel']:.3f} s/panel   max RSS {none['rss_mib']:.0f} MiB")
    print(f"  reference  {ref['per_panel']:.3f} s/panel   max RSS {ref['rss_mib']:.0f} MiB")
    print(f"  ratio      {ref['per_panel'] / none['per_panel']:.2f}x time, "
          f"{ref['rss_mib'] / none['rss_mib']:.2f}x RSS" +
          (f", GPU peak {ref['gpu_mib']:.0f} / {none['gpu_mib']:.0f} MiB" if none["gpu_mib"] else ""))
    if args.scores:
        scores(work, args.clip)


def scores(work: Path, clip: str | None) -> None:
    """Build both stories (the page too) and score them with `storyboard check`."""
    sys.path.insert(0, str(ROOT))
    from storyboard.build import build
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
