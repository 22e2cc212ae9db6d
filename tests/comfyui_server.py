"""A fake ComfyUI on 127.0.0.1, scripted per test: ComfyUI's HTTP routes and its websocket, served by a real server
(starlette on uvicorn, with a real websocket route), so that a test fails if the wire format is wrong.

Routes: ``GET /object_info``, ``GET /system_stats``, ``POST /prompt``, ``GET /history/{prompt_id}``, ``GET /view``,
``POST /upload/image``, ``GET /queue``, ``POST /queue``, ``POST /interrupt``, and the websocket
``/ws?clientId=``. ``POST /prompt`` checks a graph the way ComfyUI does (node types, required inputs, the types of
wires, list values, numbers, pictures that LoadImage reads) and answers 400 with ComfyUI's ``node_errors``. A
queued prompt runs on the server's loop, one at a time, sending its client what ComfyUI sends: execution_start,
execution_cached (the nodes whose inputs are those of the last run), executing and one ``progress`` per KSampler
step for the others, executed for the save node, execution_success, then, once the history holds it, executing
with node null. The picture saved is `expected_colour(the positive prompt, the seed)` at the latent's size.

Scripts: `add(route, *steps)` plays `Fail` or `Hang` on the next requests of an HTTP route ("prompt", "history",
"view", "upload", "object_info", "system_stats", "queue"); `add("run", *steps)` changes the next runs: `Crash` (an
execution_error), `Stall` (a run that never ends until ``/interrupt``), `DropSocket` (the websocket closed as the
run starts). `old_cache=True` plays the servers before 2026, which keep no outputs in the history of a prompt
answered wholly from their cache.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from image_server import expected_colour
from loopback import Fail, Hang
from PIL import Image

CHECKPOINTS = ["v1-5-pruned-emaonly.safetensors", "SDXL/sd_xl_base_1.0.safetensors", "dreamshaper_8.safetensors"]
LORAS = ["ghibli_style.safetensors"]
SAMPLERS = ["euler", "euler_cfg_pp", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_sde",
            "dpmpp_2m", "dpmpp_2m_sde", "ddpm", "lcm", "deis", "ddim", "uni_pc", "uni_pc_bh2"]
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal"]
VERSION = "0.3.60"
INT = ["INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}]
FLOAT = ["FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.1}]


def _type(required: dict[str, Any], outputs: list[str], *, names: list[str] | None = None,
          optional: dict[str, Any] | None = None, output_node: bool = False, category: str = "sampling") -> dict:
    return {"input": {"required": required, **({"optional": optional} if optional else {})},
            "input_order": {"required": list(required), **({"optional": list(optional)} if optional else {})},
            "output": outputs, "output_is_list": [False] * len(outputs), "output_name": names or outputs,
            "description": "", "python_module": "nodes", "category": category, "output_node": output_node}


def node_types() -> dict[str, dict[str, Any]]:
    """ComfyUI's own nodes of a txt2img graph, a LoRA loader, and the IPAdapter custom nodes."""
    types = {
        "CheckpointLoaderSimple": _type({"ckpt_name": [CHECKPOINTS, {"tooltip": "The checkpoint to load."}]},
                                        ["MODEL", "CLIP", "VAE"]),
        "LoraLoader": _type({"model": ["MODEL"], "clip": ["CLIP"], "lora_name": [LORAS], "strength_model": FLOAT,
                             "strength_clip": FLOAT}, ["MODEL", "CLIP"]),
        "CLIPTextEncode": _type({"text": ["STRING", {"multiline": True, "dynamicPrompts": True}], "clip": ["CLIP"]},
                                ["CONDITIONING"]),
        "EmptyLatentImage": _type({"width": INT, "height": INT, "batch_size": INT}, ["LATENT"]),
        "KSampler": _type({"model": ["MODEL"], "seed": INT, "steps": INT, "cfg": FLOAT,
                           "sampler_name": [SAMPLERS, {}], "scheduler": ["COMBO", {"options": SCHEDULERS}],
                           "positive": ["CONDITIONING"], "negative": ["CONDITIONING"], "latent_image": ["LATENT"],
                           "denoise": FLOAT}, ["LATENT"]),
        "VAEDecode": _type({"samples": ["LATENT"], "vae": ["VAE"]}, ["IMAGE"]),
        "SaveImage": _type({"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}, [],
                           output_node=True),
        "PreviewImage": _type({"images": ["IMAGE"]}, [], output_node=True),
        "LoadImage": _type({"image": [[], {"image_upload": True}]}, ["IMAGE", "MASK"]),
        "IPAdapterUnifiedLoader": _type({"model": ["MODEL"], "preset": [["LIGHT - SD1.5 only (low strength)",
                                                                         "STANDARD (medium strength)",
                                                                         "PLUS (high strength)"]]},
                                        ["MODEL", "IPADAPTER"], names=["model", "ipadapter"],
                                        optional={"ipadapter": ["IPADAPTER"]}),
        "IPAdapterAdvanced": _type({"model": ["MODEL"], "ipadapter": ["IPADAPTER"], "image": ["IMAGE"],
                                    "weight": FLOAT, "start_at": FLOAT, "end_at": FLOAT,
                                    "weight_type": ["COMBO", {"options": ["linear", "style transfer"]}]}, ["MODEL"]),
    }
    for name, entry in types.items():
        entry.update(name=name, display_name=name)
    return types


@dataclass
class Crash:
    """The run fails in a node of this type, the way ComfyUI reports an exception (e.g. out of GPU memory)."""

    node_type: str = "KSampler"
    exception_type: str = "torch.OutOfMemoryError"
    message: str = "Allocation on device 0 would exceed allowed memory. (out of memory)"


@dataclass
class Stall:
    """The run never ends: it stops only when ``/interrupt`` is posted (or the server stops)."""


@dataclass
class DropSocket:
    """The websocket of the run's client is closed as the run starts; the run goes on."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any  # JSON, or for an upload {"name": ..., "data": ...}


@dataclass
class Run:
    number: int
    prompt_id: str
    graph: dict[str, Any]
    client_id: str | None
    outputs: list[str]
    messages: list[list[Any]] = field(default_factory=list)


class FakeComfyUI:
    def __init__(self, *, old_cache: bool = False, version: str = VERSION) -> None:
        self.old_cache = old_cache
        self.version = version
        self.object_info = node_types()
        self.requests: list[Request] = []
        self.sockets: list[str] = []  # the client id of each websocket opened, in order
        self.prompts: list[dict[str, Any]] = []  # the body of each POST /prompt the server accepted
        self.prompt_ids: list[str] = []  # and the prompt id it gave each
        self.uploads: dict[str, bytes] = {}  # the input folder
        self.files: dict[tuple[str, str, str], bytes] = {}  # (type, subfolder, filename) -> PNG
        self.history: dict[str, dict[str, Any]] = {}
        self.interrupts: list[Any] = []
        self.scripts: dict[str, deque[Any]] = defaultdict(deque)
        self.step_delay = 0.0  # seconds per KSampler step
        self.websockets = True  # False: refuse every websocket (a proxy that does not pass them on)
        self._open: dict[str, Any] = {}  # client id -> its websocket
        self._pending: deque[Run] = deque()
        self._running: Run | None = None
        self._interrupted = False
        self._cached: dict[str, Any] = {}  # signatures of the last run's nodes -> their UI outputs
        self._counters: dict[str, int] = defaultdict(int)
        self._number = 0
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._stopping = threading.Event()
        # IPPROTO_TCP named, so that asyncio turns Nagle's algorithm off on each connection (it does so only for
        # sockets that say they are TCP): otherwise every keep-alive request waits 40 ms for a delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeComfyUI:
        import uvicorn

        config = uvicorn.Config(self._app(), log_level="critical", lifespan="off", ws="wsproto",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake ComfyUI did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None
        self._socket.close()

    def add(self, route: str, *steps: Any) -> FakeComfyUI:
        self.scripts[route].extend(steps)
        return self

    # ------------------------------------------------------------------ what a test looks at

    def queued(self) -> list[dict[str, Any]]:
        """The graphs of the prompts accepted, in order."""
        return [body["prompt"] for body in self.prompts]

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    # ------------------------------------------------------------------ the app

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route, WebSocketRoute

        return Starlette(routes=[
            Route("/object_info", self._object_info),
            Route("/system_stats", self._system_stats),
            Route("/prompt", self._prompt, methods=["POST"]),
            Route("/history/{prompt_id}", self._history),
            Route("/view", self._view),
            Route("/upload/image", self._upload, methods=["POST"]),
            Route("/queue", self._queue, methods=["GET", "POST"]),
            Route("/interrupt", self._interrupt, methods=["POST"]),
            WebSocketRoute("/ws", self._websocket),
        ])

    async def _record(self, request: Any, route: str, body: Any = None) -> Any:
        self.requests.append(Request(request.method, request.url.path, dict(request.query_params), body))
        script = self.scripts[route]
        if not script:
            return None
        from starlette.responses import PlainTextResponse, Response

        step = script.popleft()
        if isinstance(step, Fail):
            text = step.message or ("500 Internal Server Error\n\nServer got itself in trouble"
                                    if step.status == 500 else f"{step.status}")
            return PlainTextResponse(text, step.status, headers=step.headers)
        if isinstance(step, Hang):
            await self._sleep(step.seconds)
            return Response(status_code=500)
        raise TypeError(f"unknown script step {step!r}")

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._stopping.is_set():
            await asyncio.sleep(0.02)

    async def _json_body(self, request: Any) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")

    async def _object_info(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if (answer := await self._record(request, "object_info")) is not None:
            return answer
        info = copy.deepcopy(self.object_info)
        if "LoadImage" in info:
            info["LoadImage"]["input"]["required"]["image"][0] = sorted(self.uploads)
        return JSONResponse(info)

    async def _system_stats(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if (answer := await self._record(request, "system_stats")) is not None:
            return answer
        return JSONResponse({
            "system": {"os": "posix", "ram_total": 2**35, "ram_free": 2**34, "comfyui_version": self.version,
                       "python_version": "3.12.3", "pytorch_version": "2.8.0+cu128", "embedded_python": False,
                       "argv": ["main.py"]},
            "devices": [{"name": "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync", "type": "cuda", "index": 0,
                         "vram_total": 2**34, "vram_free": 2**33, "torch_vram_total": 0, "torch_vram_free": 0}]})

    async def _history(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if (answer := await self._record(request, "history")) is not None:
            return answer
        prompt_id = request.path_params["prompt_id"]
        entry = self.history.get(prompt_id)
        return JSONResponse({prompt_id: entry} if entry is not None else {})

    async def _view(self, request: Any) -> Any:
        from starlette.responses import Response

        if (answer := await self._record(request, "view")) is not None:
            return answer
        query = request.query_params
        data = self.files.get((query.get("type", "output"), query.get("subfolder", ""), query.get("filename", "")))
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type="image/png")

    async def _upload(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, Response

        raw = await request.body()
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode() + raw)
        parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        image = parts.get("image")
        if image is None or not image.get_filename():
            await self._record(request, "upload", None)
            return Response(status_code=400)
        name, data = image.get_filename(), image.get_payload(decode=True)
        if (answer := await self._record(request, "upload", {"name": name, "data": data})) is not None:
            return answer
        stem, dot, extension = name.rpartition(".")
        kept, n = name, 1
        while kept in self.uploads and self.uploads[kept] != data:  # ComfyUI keeps a same-named other picture
            kept, n = f"{stem} ({n}){dot}{extension}", n + 1
        self.uploads[kept] = data
        return JSONResponse({"name": kept, "subfolder": "", "type": "input"})

    async def _queue(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, Response

        body = await self._json_body(request) if request.method == "POST" else None
        if (answer := await self._record(request, "queue", body)) is not None:
            return answer
        if request.method == "POST":
            doomed = set(body.get("delete") or []) if isinstance(body, dict) else set()
            self._pending = deque(run for run in self._pending if run.prompt_id not in doomed)
            return Response(status_code=200)

        def item(run: Run) -> list[Any]:
            return [run.number, run.prompt_id, run.graph, {"client_id": run.client_id}, run.outputs]

        return JSONResponse({"queue_running": [item(self._running)] if self._running else [],
                             "queue_pending": [item(run) for run in self._pending]})

    async def _interrupt(self, request: Any) -> Any:
        from starlette.responses import Response

        body = await self._json_body(request)
        await self._record(request, "interrupt", body)
        self.interrupts.append(body)
        wanted = body.get("prompt_id") if isinstance(body, dict) else None
        if self._running is not None and wanted in (None, self._running.prompt_id):
            self._interrupted = True
        return Response(status_code=200)

    async def _websocket(self, websocket: Any) -> None:
        from starlette.websockets import WebSocketDisconnect

        client_id = websocket.query_params.get("clientId") or uuid.uuid4().hex
        if not self.websockets:
            await websocket.close()
            return
        await websocket.accept()
        self.sockets.append(client_id)
        self._open[client_id] = websocket
        try:
            await websocket.send_json({"type": "status", "data": {
                "status": {"exec_info": {"queue_remaining": len(self._pending)}}, "sid": client_id}})
            while True:
                await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if self._open.get(client_id) is websocket:
                del self._open[client_id]

    # ------------------------------------------------------------------ queueing a prompt

    async def _prompt(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        body = await self._json_body(request)
        if (answer := await self._record(request, "prompt", body)) is not None:
            return answer
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), dict):
            return JSONResponse({"error": {"type": "no_prompt", "message": "No prompt provided", "details": "",
                                           "extra_info": {}}, "node_errors": {}}, 400)
        graph = body["prompt"]
        error, node_errors, outputs = self._validate(graph)
        if error is not None:
            return JSONResponse({"error": error, "node_errors": node_errors}, 400)
        self.prompts.append(body)
        self._number += 1
        run = Run(self._number, str(uuid.uuid4()), graph, body.get("client_id"), outputs)
        self.prompt_ids.append(run.prompt_id)
        self._pending.append(run)
        if self._worker is None:
            self._wake = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._work())
        self._wake.set()
        return JSONResponse({"prompt_id": run.prompt_id, "number": run.number, "node_errors": {}})

    def _validate(self, graph: dict[str, Any]) -> tuple[dict | None, dict, list[str]]:
        """ComfyUI's checks of a graph: (error, node_errors, output node ids)."""
        for node_id, node in graph.items():
            if not isinstance(node, dict) or node.get("class_type") not in self.object_info:
                kind = node.get("class_type") if isinstance(node, dict) else None
                return ({"type": "missing_node_type", "message": f"Node '{kind}' not found. The custom node may "
                         "not be installed.", "details": f"Node ID '#{node_id}'", "extra_info": {}}, {}, [])
        outputs = [node_id for node_id, node in graph.items() if self.object_info[node["class_type"]]["output_node"]]
        if not outputs:
            return {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                    "extra_info": {}}, {}, []
        node_errors: dict[str, Any] = {}
        for node_id in self._needed(graph, outputs):
            problems = self._node_problems(graph, node_id)
            if problems:
                node_errors[node_id] = {"errors": problems, "dependent_outputs": outputs,
                                        "class_type": graph[node_id]["class_type"]}
        if node_errors:
            return ({"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                     "details": "", "extra_info": {}}, node_errors, [])
        return None, {}, outputs

    def _needed(self, graph: dict[str, Any], outputs: list[str]) -> list[str]:
        order: list[str] = []

        def visit(node_id: str) -> None:
            if node_id in order:
                return
            for value in graph[node_id].get("inputs", {}).values():
                if _is_link(value) and value[0] in graph:
                    visit(value[0])
            order.append(node_id)

        for output in outputs:
            visit(output)
        return order

    def _node_problems(self, graph: dict[str, Any], node_id: str) -> list[dict[str, Any]]:
        node = graph[node_id]
        spec = self.object_info[node["class_type"]]["input"]
        inputs = node.get("inputs", {})
        problems = []
        for name, wanted in {**spec.get("optional", {}), **spec["required"]}.items():
            if name not in inputs:
                if name in spec["required"]:
                    problems.append(_problem("required_input_missing", "Required input is missing", name))
                continue
            value = inputs[name]
            if _is_link(value):
                source = graph.get(value[0])
                if source is None:
                    problems.append(_problem("bad_linked_input", "Bad linked input", name))
                    continue
                given = self.object_info[source["class_type"]]["output"]
                kind = given[value[1]] if value[1] < len(given) else None
                if kind != wanted[0] and wanted[0] != "*":
                    problems.append(_problem("return_type_mismatch", "Return type mismatch between linked nodes",
                                             f"{name}, received_type({kind}) mismatch input_type({wanted[0]})"))
                continue
            options = wanted[0] if isinstance(wanted[0], list) else (
                wanted[1].get("options") if wanted[0] == "COMBO" else None)
            if node["class_type"] == "LoadImage" and name == "image":
                options = list(self.uploads)
            if options is not None and value not in options:
                problems.append(_problem("value_not_in_list", "Value not in list",
                                         f"{name}: '{value}' not in {options}"))
            elif wanted[0] in ("INT", "FLOAT"):
                try:
                    (int if wanted[0] == "INT" else float)(value)
                except (TypeError, ValueError):
                    problems.append(_problem("invalid_input_type",
                                             f"Failed to convert an input value to a {wanted[0]} value", name))
        return problems

    # ------------------------------------------------------------------ running a prompt

    async def _send(self, run: Run, kind: str, data: dict[str, Any], record: bool = False) -> None:
        if record:
            run.messages.append([kind, data])
        websocket = self._open.get(run.client_id or "")
        if websocket is None:
            return
        from starlette.websockets import WebSocketDisconnect

        try:
            await websocket.send_json({"type": kind, "data": data})
        except (WebSocketDisconnect, RuntimeError, OSError):  # a client that went away hears nothing
            self._open.pop(run.client_id or "", None)

    async def _work(self) -> None:
        while not self._stopping.is_set():
            if not self._pending:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 0.1)
                except TimeoutError:
                    pass
                continue
            run = self._pending.popleft()
            self._running, self._interrupted = run, False
            try:
                await self._execute(run)
            finally:
                self._running = None

    async def _execute(self, run: Run) -> None:
        step = self.scripts["run"].popleft() if self.scripts["run"] else None
        graph, pid = run.graph, run.prompt_id
        await self._send(run, "execution_start", {"prompt_id": pid, "timestamp": _now()}, record=True)
        if isinstance(step, DropSocket) and run.client_id in self._open:
            await self._open.pop(run.client_id).close()
        needed = self._needed(graph, run.outputs)
        signatures = {node_id: _signature(graph, node_id) for node_id in needed}
        cached = [node_id for node_id in needed if signatures[node_id] in self._cached]
        await self._send(run, "execution_cached", {"nodes": cached, "prompt_id": pid, "timestamp": _now()},
                         record=True)
        outputs: dict[str, Any] = {}
        for node_id in needed:
            if node_id in cached:
                if not self.old_cache and self._cached[signatures[node_id]]:
                    outputs[node_id] = self._cached[signatures[node_id]]
                continue
            kind = graph[node_id]["class_type"]
            await self._send(run, "executing", {"node": node_id, "display_node": node_id, "prompt_id": pid})
            if isinstance(step, Crash) and kind == step.node_type:
                data = {"prompt_id": pid, "node_id": node_id, "node_type": kind, "executed": [],
                        "exception_message": step.message, "exception_type": step.exception_type,
                        "traceback": ["  File \"execution.py\", line 496, in execute\n"], "current_inputs": {},
                        "current_outputs": {}, "timestamp": _now()}
                await self._send(run, "execution_error", data, record=True)
                return await self._finish(run, {}, "error")
            if kind == "KSampler":
                while isinstance(step, Stall) and not self._interrupted and not self._stopping.is_set():
                    await asyncio.sleep(0.01)
                steps = int(graph[node_id]["inputs"]["steps"])
                for value in range(1, steps + 1):
                    if self._interrupted:
                        await self._send(run, "execution_interrupted", {
                            "prompt_id": pid, "node_id": node_id, "node_type": kind, "executed": [],
                            "timestamp": _now()}, record=True)
                        return await self._finish(run, {}, "error")
                    if self.step_delay:
                        await asyncio.sleep(self.step_delay)
                    await self._send(run, "progress", {"value": value, "max": steps, "prompt_id": pid,
                                                       "node": node_id})
            ui = self._output(graph, node_id)
            if ui is not None:
                outputs[node_id] = ui
                await self._send(run, "executed", {"node": node_id, "display_node": node_id, "output": ui,
                                                   "prompt_id": pid})
        self._cached = {signatures[node_id]: outputs.get(node_id) for node_id in needed}
        await self._send(run, "execution_success", {"prompt_id": pid, "timestamp": _now()}, record=True)
        await asyncio.sleep(0.005)  # ComfyUI writes the history a moment after it says the prompt succeeded
        await self._finish(run, outputs, "success")

    async def _finish(self, run: Run, outputs: dict[str, Any], status: str) -> None:
        self.history[run.prompt_id] = {
            "prompt": [run.number, run.prompt_id, run.graph, {"client_id": run.client_id}, run.outputs],
            "outputs": outputs,
            "status": {"status_str": status, "completed": status == "success", "messages": run.messages},
            "meta": {node_id: {"node_id": node_id, "display_node": node_id} for node_id in outputs}}
        await self._send(run, "executing", {"node": None, "prompt_id": run.prompt_id})

    def _output(self, graph: dict[str, Any], node_id: str) -> dict[str, Any] | None:
        """What a save or preview node shows: the picture it wrote."""
        node = graph[node_id]
        if node["class_type"] not in ("SaveImage", "PreviewImage"):
            return None
        colour, size = self._picture(graph, node["inputs"]["images"])
        out = io.BytesIO()
        Image.new("RGB", size, colour).save(out, "PNG")
        if node["class_type"] == "SaveImage":
            kind, prefix = "output", node["inputs"]["filename_prefix"]
        else:
            kind, prefix = "temp", "ComfyUI_temp_" + uuid.uuid4().hex[:5]
        subfolder, _, stem = prefix.rpartition("/")
        self._counters[prefix] += 1
        filename = f"{stem}_{self._counters[prefix]:05d}_.png"
        self.files[kind, subfolder, filename] = out.getvalue()
        return {"images": [{"filename": filename, "subfolder": subfolder, "type": kind}]}

    def _picture(self, graph: dict[str, Any], link: list[Any]) -> tuple[tuple[int, int, int], tuple[int, int]]:
        decode = graph[link[0]]
        sampler = graph[decode["inputs"]["samples"][0]]["inputs"]
        text = _text(graph, sampler["positive"])
        latent = graph[sampler["latent_image"][0]]["inputs"]
        return expected_colour(text, int(sampler["seed"])), (int(latent["width"]), int(latent["height"]))


def _text(graph: dict[str, Any], link: list[Any]) -> str:
    node = graph[link[0]]
    if node["class_type"] == "CLIPTextEncode":
        return node["inputs"]["text"]
    return _text(graph, next(v for v in node["inputs"].values() if _is_link(v)))


def _signature(graph: dict[str, Any], node_id: str) -> str:
    node = graph[node_id]
    inputs = {name: _signature(graph, value[0]) + f"#{value[1]}" if _is_link(value) else value
              for name, value in node["inputs"].items()}
    return json.dumps({"class_type": node["class_type"], "inputs": inputs}, sort_keys=True)


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _problem(kind: str, message: str, details: str) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def _now() -> int:
    return int(time.time() * 1000)
