"""What `storyboard plan` costs on top of the model's own answer time.

Starts the test suite's chat server on 127.0.0.1 (it answers instantly) and times:
- `storyboard --help` in a fresh process (the CLI must stay quick to start),
- `storyboard plan` in a fresh process, per provider (SDK import, request, parse, YAML write-back),
- `plan_story` in process on stories/little_prince.yaml (8 panels), the steady-state cost.

    python benchmarks/plan_overhead.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from chat_server import ChatServer, Say  # noqa: E402

REPLY = json.dumps({"panels": [{"prompt": f"wide shot {i} of the desert at dusk", "caption": f"第{i}格",
                                "characters": ["pilot"]} for i in range(8)]}, ensure_ascii=False)


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main(runs: int = 5) -> None:
    server = ChatServer().start()
    work = Path(tempfile.mkdtemp())
    story = work / "little_prince.yaml"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASHSCOPE_API_KEY": "sk-benchmark-key",
           "OPENAI_API_KEY": "sk-benchmark-key", "DASHSCOPE_HTTP_BASE_URL": server.dashscope_url}
    python = [sys.executable, "-m", "storyboard"]
    rows = []
    rows.append(("storyboard --help (fresh process)",
                 [timed([*python, "--help"], env) for _ in range(runs)]))
    for name, extra in (("dashscope", []),
                        ("openai", ["--provider", "openai", "--model", "qwen-plus", "--base-url", server.openai_url])):
        times = []
        for _ in range(runs):
            shutil.copy(ROOT / "stories" / "little_prince.yaml", story)
            server.add(Say(REPLY))
            times.append(timed([*python, "plan", str(story), *extra], env))
        rows.append((f"storyboard plan, {name} (fresh process, 8 panels)", times))

    os.environ.update({k: env[k] for k in ("DASHSCOPE_API_KEY", "OPENAI_API_KEY")})
    import dashscope

    from storyboard.plan import plan_story

    dashscope.base_http_api_url = server.dashscope_url
    times = []
    for _ in range(runs * 4):
        shutil.copy(ROOT / "stories" / "little_prince.yaml", story)
        server.add(Say(REPLY))
        start = time.perf_counter()
        plan_story(story)
        times.append(time.perf_counter() - start)
    rows.append(("plan_story in process, dashscope (8 panels)", times[1:]))
    server.stop()
    shutil.rmtree(work)

    print(f"{'what':55} {'median s':>9} {'min s':>7}  runs")
    for what, values in rows:
        print(f"{what:55} {statistics.median(values):9.3f} {min(values):7.3f}  {len(values)}")


if __name__ == "__main__":
    main()
