"""What `storyboard check` costs with a CLIP the size of the default one.

Builds a CLIP with ViT-B/32's shape (transformers' default `CLIPConfig`: the architecture of
openai/clip-vit-base-patch32) and random weights into a temporary folder, builds stories/little_prince.yaml with the
draft renderer (eight 512x512 panels), then times `storyboard check` in a fresh process (imports, model load,
scoring, table) and, in this process, the model load and the scoring apart.

    python benchmarks/check_clip.py [--runs N]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def vit_b32_shaped_clip(out: Path) -> Path:
    import torch
    from tiny_pipeline import MAX_TOKENS, write_tokenizer_files
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    write_tokenizer_files(out / "words")
    tokenizer = CLIPTokenizer.from_pretrained(out / "words", model_max_length=MAX_TOKENS)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig()).save_pretrained(out / "clip")  # vocabulary 49408, as the real one
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(out / "clip")
    return out / "clip"


def main() -> None:
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
    from storyboard.building import build
    from storyboard.check import Embedder, check

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = vit_b32_shaped_clip(tmp)
        story = ROOT / "stories" / "little_prince.yaml"
        build(story, tmp / "page", renderer="draft")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "storyboard", "check", str(story), "--out", str(tmp / "page"),
                   "--model", str(model)]
        walls, cpus = [], []
        for _ in range(runs):
            start, used = time.perf_counter(), _children_cpu()
            subprocess.run(command, check=True, capture_output=True, env=env)
            walls.append(time.perf_counter() - start)
            cpus.append(_children_cpu() - used)
        loads, scores = [], []
        for _ in range(runs):
            start, used = time.perf_counter(), time.process_time()
            embedder = Embedder(str(model))
            loads.append((time.perf_counter() - start, time.process_time() - used))
            start, used = time.perf_counter(), time.process_time()
            check(story, tmp / "page", embedder=embedder)
            scores.append((time.perf_counter() - start, time.process_time() - used))
    print(f"storyboard check, fresh process, best of {runs}: {min(walls):.2f} s wall, {min(cpus):.2f} s CPU")
    print(f"in process, best of {runs}: model load {min(w for w, _ in loads):.2f} s wall, "
          f"{min(c for _, c in loads):.2f} s CPU; scoring 8 panels (images and prompts) "
          f"{min(w for w, _ in scores):.2f} s wall, {min(c for _, c in scores):.2f} s CPU")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
