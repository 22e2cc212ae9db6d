"""The longest text a story allows, laid out: a one-panel draft build whose speech bubble holds 1000 characters of
Latin words, of CJK, or of one unbroken word, each in a fresh output folder (so the page is composed every time).
All in one process: the first build also pays for loading fonts (≈ 0.3 s here); run with `--chars 10` to see the
cost of a build around the text.

    python benchmarks/long_text.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout this file is in, not whichever storyboard is installed

import storyboard  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=1000)
    args = parser.parse_args()
    texts = {"latin": ("word " * (args.chars // 5)).strip(), "cjk": "汉" * args.chars, "one word": "w" * args.chars}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, text in texts.items():
            story = Path(tmp) / "bubble.yaml"
            story.write_text("title: x\nlanguage: zh\nrender: {width: 512, height: 512}\n"
                             f"panels:\n  - {{prompt: a, dialogue: [{{speaker: a, text: '{text}'}}]}}\n",
                             encoding="utf-8")
            started = time.perf_counter()
            storyboard.build(story, Path(tmp) / kind.replace(" ", "-"), renderer="draft")
            print(f"{kind:9} {len(text):5} characters: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
