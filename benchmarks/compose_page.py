"""Time each step of composing a page (layout, PNG, font subsets, PDF, HTML) for a story's draft panels.

Fonts are already loaded by the build that makes the panels, so the times are those of a warm process.

    python benchmarks/compose_page.py stories/little_prince.yaml
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from storyboard.building import build
from storyboard.compose.html import page_html
from storyboard.compose.page import story_page
from storyboard.compose.pdf import page_pdf
from storyboard.compose.png import page_png
from storyboard.render.draft import DraftRenderer
from storyboard.resolve import resolve
from storyboard.story import load_story


def main(story_path: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = build(story_path, Path(tmp), renderer="draft")
        from PIL import Image

        story = load_story(story_path)
        jobs = resolve(story)
        images = {j.index: Image.open(result.out_dir / j.file) for j in jobs}
        from storyboard.compose import fonts

        fonts._subset.cache_clear()  # the build above made them already; time them from scratch
        steps = []
        start = time.perf_counter()
        page = story_page(story, jobs, images, renderer="draft", version="bench", header=DraftRenderer.page_header,
                          names_model=DraftRenderer.names_model)
        steps.append(("typeset + layout", time.perf_counter() - start))
        for name, step in [("page.png", lambda: page_png(page)), ("font subsets", lambda: page.fonts),
                           ("page.pdf", lambda: page_pdf(page)), ("index.html", lambda: page_html(page)),
                           ("index.html --self-contained", lambda: page_html(page, self_contained=True))]:
            start = time.perf_counter()
            step()
            steps.append((name, time.perf_counter() - start))
        print(f"{story_path}: {len(jobs)} panels, page {page.layout.width}×{page.layout.height}")
        for name, seconds in steps:
            print(f"  {name:<28} {seconds * 1000:8.0f} ms")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "stories/little_prince.yaml")
