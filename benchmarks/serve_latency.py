"""Edit-to-page latency of `storyboard serve` against a cold `storyboard build`, and the server's memory over edits.

One prompt of an eight-panel story is edited; the clock runs from the moment the file is saved to the moment the
new image of that panel has loaded in the live page in headless Chromium (the page's own `load` event, stamped with
the same wall clock). Next to it, in the same run: the bare drawing time of that panel (the renderer alone, model
already loaded), and a cold `storyboard build` of the same edit (a new process: imports, model load, drawing,
composing). Then 100 more edits without the browser, reading the server's RSS after the first and the last.

    python benchmarks/serve_latency.py                  # tiny random pipeline, 128x128, 4 steps
    python benchmarks/serve_latency.py --edits 10 --leak-edits 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PANEL = 3

LOADS = f"""
window.loads = [];
document.addEventListener("load", e => {{
  if (e.target.tagName === "IMG" && e.target.closest("#panel-{PANEL}"))
    window.loads.push([Date.now(), e.target.getAttribute("src")]);
}}, true);
true
"""


def story_text(size: int, steps: int, word: str) -> str:
    panels = "".join(f"  - prompt: scene {i}, a lighthouse on a cliff at dusk\n    caption: Panel {i}\n"
                     for i in range(1, 9))
    text = textwrap.dedent(f"""\
        title: Latency
        render:
          width: {size}
          height: {size}
          steps: {steps}
          seed: 500
          scheduler: euler
        panels:
        """) + panels
    return text.replace(f"scene {PANEL}, a lighthouse", f"scene {PANEL}, a {word} lighthouse")


def save(path: Path, text: str) -> float:
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
    return time.time()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def manifest_prompt(out: Path) -> str:
    try:
        return json.loads((out / "manifest.json").read_text())["panels"][PANEL - 1]["prompt"]
    except (OSError, ValueError, KeyError):
        return ""


def wait(condition, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError


def bare_drawing(model: Path, size: int, steps: int, runs: int) -> float:
    """Median seconds to draw panel 3 alone with the renderer's pipeline already loaded."""
    from storyboard.render.diffusers import DiffusersRenderer
    from storyboard.resolve import resolve
    from storyboard.story import story_from_yaml

    renderer = DiffusersRenderer()
    times = []
    for run in range(runs + 1):
        job = resolve(story_from_yaml(story_text(size, steps, f"bare{run}")), model=str(model))[PANEL - 1]
        started = time.perf_counter()
        list(renderer.render([job]))
        if run:  # the first run loads the model
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--leak-edits", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()

    from browser import Chromium, find_chromium
    from serve_process import ServeProcess
    from tiny_pipeline import build_tiny_pipeline

    work = Path(tempfile.mkdtemp(prefix="storyboard-serve-bench-"))
    model = build_tiny_pipeline(work / "tiny-sd")
    story = work / "story.yaml"
    story.write_text(story_text(args.size, args.steps, "plain"))
    out = work / "out"

    bare = bare_drawing(model, args.size, args.steps, args.edits)

    server = ServeProcess(story, out, "--model", str(model), wait=300)
    executable = find_chromium()
    if executable is None:
        sys.exit("needs chromium (apt-get install chromium)")
    browser = Chromium(executable)
    latencies = []
    try:
        tab = browser.open(server.url, 1280)
        tab.evaluate(LOADS)
        for edit in range(args.edits):
            word = f"edit{edit}"
            seen = tab.evaluate("window.loads.length")
            saved = save(story, story_text(args.size, args.steps, word))
            wait(lambda: word in manifest_prompt(out))  # noqa: B023 - waited on in this iteration
            key = json.loads((out / "manifest.json").read_text())["panels"][PANEL - 1]["key"]
            loaded = wait(lambda: [t for t, src in tab.evaluate(f"window.loads.slice({seen})")  # noqa: B023
                                   if key in src])  # noqa: B023 - waited on in this iteration
            latencies.append(loaded[0] / 1000 - saved)
        tab.close()

        cold_times = []
        for run in range(3):
            story.write_text(story_text(args.size, args.steps, f"cold{run}"))
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "storyboard", "build", str(story), "--model", str(model),
                                   "--out", str(work / "cold")], capture_output=True, text=True, cwd=ROOT,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            cold_times.append(time.perf_counter() - started)
            if done.returncode or (run and not done.stdout.startswith("rendered 1, reused 7")):
                sys.exit(f"cold build: {done.stdout}{done.stderr}")
        cold = statistics.median(cold_times[1:])  # the first cold build draws all eight panels

        rss = []
        for edit in range(args.leak_edits):
            word = f"leak{edit}"
            save(story, story_text(args.size, args.steps, word))
            wait(lambda: word in manifest_prompt(out))  # noqa: B023 - waited on in this iteration
            time.sleep(0.05)
            if edit == 0 or edit == args.leak_edits - 1:
                rss.append(rss_mib(server.process.pid))
        server.interrupt()
    finally:
        browser.close()
        server.close()

    median = statistics.median(latencies)
    print(f"edit to page, warm server, median of {len(latencies)}: {median:.3f} s "
          f"(min {min(latencies):.3f}, max {max(latencies):.3f})")
    print(f"bare drawing of the panel, model loaded, median: {bare:.3f} s; overhead {median - bare:.3f} s")
    print(f"cold `storyboard build` of one edited panel, median of 2: {cold:.2f} s; ratio {cold / median:.1f}x")
    print(f"server RSS after edit 1: {rss[0]:.0f} MiB, after edit {args.leak_edits}: {rss[1]:.0f} MiB "
          f"({100 * (rss[1] - rss[0]) / rss[0]:+.1f} %)")


if __name__ == "__main__":
    main()
