"""What the comfyui renderer costs per panel on top of ComfyUI's own drawing.

Starts the test suite's fake ComfyUI on 127.0.0.1 (tests/comfyui_server.py: real HTTP and websocket, a graph
checked the way ComfyUI checks it, a picture "drawn" at once: one step, no delay) and times, in this process:

- `ComfyUIRenderer.render` over N panels with the built-in graph, per panel, after a first call that opened the
  websocket and read /system_stats and /object_info: fill and check the graph, POST /prompt, follow the websocket to
  the end, GET /history, GET /view, decode the PNG;
- the same wire calls made by the shortest client that does them (requests + websocket-client, one graph reused),
  so that what the renderer adds beyond the round trips shows;
- the first call alone (connecting included).

    python benchmarks/comfyui_overhead.py [--panels 40] [--size 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from comfyui_server import FakeComfyUI  # noqa: E402

from storyboard.render.comfyui import ComfyUIRenderer  # noqa: E402
from storyboard.resolve import resolve  # noqa: E402
from storyboard.story import Story  # noqa: E402

MODEL = "v1-5-pruned-emaonly.safetensors"


def jobs(count: int, size: int, first_seed: int) -> list:
    story = Story.model_validate({
        "title": "Benchmark", "render": {"width": size, "height": size, "steps": 1, "seed": first_seed},
        "panels": [{"prompt": f"panel {i}, a lighthouse at dusk"} for i in range(count)]})
    return [replace(job, model=MODEL) for job in resolve(story)]


def renderer_round(renderer: ComfyUIRenderer, count: int, size: int, seed: int) -> float:
    batch = jobs(count, size, seed)
    start = time.perf_counter()
    drawn = list(renderer.render(batch))
    elapsed = time.perf_counter() - start
    assert len(drawn) == count and drawn[0].image.size == (size, size)
    return elapsed / count


def bare_round(server: FakeComfyUI, count: int, size: int, seed: int) -> float:
    """The same requests, made by hand: POST /prompt, wait on the websocket, GET /history, GET /view."""
    import io

    import requests
    import websocket
    from PIL import Image

    from storyboard.render.comfyui.graph import BUILTIN

    client = uuid.uuid4().hex
    session = requests.Session()
    socket = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={client}")
    graph = json.loads(json.dumps(BUILTIN))
    graph["3"]["inputs"].update(steps=1, cfg=7.5, sampler_name="euler", scheduler="normal")
    graph["4"]["inputs"]["ckpt_name"] = MODEL
    graph["5"]["inputs"].update(width=size, height=size)
    graph["7"]["inputs"]["text"] = ""
    start = time.perf_counter()
    for i in range(count):
        graph["3"]["inputs"]["seed"] = seed + i
        graph["6"]["inputs"]["text"] = f"panel {i}, a lighthouse at dusk"
        graph["9"]["inputs"]["filename_prefix"] = f"bare/{seed + i}"
        prompt_id = session.post(f"{server.root}/prompt", json={"prompt": graph, "client_id": client}).json()[
            "prompt_id"]
        while True:
            message = json.loads(socket.recv())
            if message["type"] == "executing" and message["data"].get("node") is None \
                    and message["data"].get("prompt_id") == prompt_id:
                break
        entry = session.get(f"{server.root}/history/{prompt_id}").json()[prompt_id]
        picture = entry["outputs"]["9"]["images"][0]
        data = session.get(f"{server.root}/view", params=picture).content
        Image.open(io.BytesIO(data)).convert("RGB")
    elapsed = time.perf_counter() - start
    socket.close()
    return elapsed / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", type=int, default=40)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    server = FakeComfyUI().start()
    try:
        renderer = ComfyUIRenderer(base_url=server.root)
        start = time.perf_counter()
        list(renderer.render(jobs(1, options.size, 10**6)))
        first = time.perf_counter() - start
        rows = {"renderer": [], "bare client": []}
        seed = 0
        for _ in range(options.rounds):  # alternating, so that both see the same machine
            rows["renderer"].append(renderer_round(renderer, options.panels, options.size, seed))
            seed += options.panels
            rows["bare client"].append(bare_round(server, options.panels, options.size, seed))
            seed += options.panels
    finally:
        server.stop()
    print(f"{options.size}x{options.size}, {options.panels} panels a round, {options.rounds} rounds")
    print(f"first call (websocket, /system_stats, /object_info, one panel): {first * 1000:.1f} ms")
    print(f"{'per panel':12} {'median ms':>10} {'best ms':>8}")
    for what, values in rows.items():
        print(f"{what:12} {statistics.median(values) * 1000:10.1f} {min(values) * 1000:8.1f}")


if __name__ == "__main__":
    main()
