"""Draft builds of long stories: 8, 64 and 256 panels on pages of 4 × 2, with the draft renderer.

Each build is a separate `python -m storyboard build --renderer draft` process into an empty folder, as a user runs
it; wall time and the child's peak RSS (`os.wait4`) are reported, with the size of the PDF (page.pdf for one page,
book.pdf for more) and of the `--self-contained` index.html (a second build into the same folder: panels and page
PNGs are reused, the PDF and HTML written again).

    python benchmarks/book_pages.py                  # 8, 64, 256 panels at 512×512
    python benchmarks/book_pages.py --counts 8 64 --size 256
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def story(count: int, size: int) -> str:
    lines = ["title: Benchmark book", "style: {prefix: 'storybook illustration, soft light'}",
             f"render: {{width: {size}, height: {size}, seed: 1234}}", "layout: {columns: 4, rows: 2}",
             "panels:"]
    for i in range(1, count + 1):
        lines.append(f"  - prompt: medium shot of scene {i}, a lighthouse keeper at dusk\n"
                     f"    caption: The keeper climbs the stairs for the {i}th time.")
        if i % 64 == 1:
            lines.append(f"    chapter: Chapter {i // 64 + 1}")
    return "\n".join(lines) + "\n"


def run(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one storyboard process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "storyboard", *args], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status:
        raise SystemExit(f"build failed: {process.stderr.read().decode()}")
    return wall, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, {args.size}×{args.size} "
          "panels, draft renderer")
    print("| panels | pages | build wall | per panel | peak RSS | PDF | self-contained HTML |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="storyboard-bench-") as tmp:
        for count in args.counts:
            path = Path(tmp) / f"book{count}.yaml"
            path.write_text(story(count, args.size), encoding="utf-8")
            out = Path(tmp) / f"out{count}"
            wall, rss = run(["build", str(path), "--out", str(out), "--renderer", "draft"])
            pdf = out / "book.pdf" if (out / "book.pdf").exists() else out / "page.pdf"
            pages = len(list((out / "pages").glob("page-*.png"))) or 1
            pdf_size = pdf.stat().st_size
            run(["build", str(path), "--out", str(out), "--renderer", "draft", "--self-contained"])
            html = (out / "index.html").stat().st_size
            print(f"| {count} | {pages} | {wall:.2f} s | {1000 * wall / count:.0f} ms | {rss / 1024:.0f} MiB | "
                  f"{pdf_size / 2**20:.1f} MiB | {html / 2**20:.1f} MiB |", flush=True)


if __name__ == "__main__":
    main()
