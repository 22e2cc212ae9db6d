"""The comfyui renderer: each panel drawn by the user's own ComfyUI graph, on their ComfyUI server.

For each call to `render`: the server's version (``GET /system_stats``, once) and node types (``GET /object_info``,
read once, and again only when a graph names something they lack) check every graph of the call before anything
is queued; one websocket (``/ws?clientId=<the renderer's client id>``) carries the messages of the renderer's
prompts; the anchors the panels read are uploaded once each (``POST /upload/image``, named by their key). Each
panel is one ``POST /prompt`` with that client id and a ``filename_prefix`` of its own; its ``progress`` messages
drive the panel's progress, ``execution_success`` (or ``executing`` with no node) ends it, and its picture is read
from ``/history/<prompt_id>`` and fetched with ``/view``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

from PIL import Image

from storyboard.errors import RendererRequestError, RenderError, RendererUnavailable, StoryboardError
from storyboard.http import describe, reason, shown_url
from storyboard.render import Reference, Rendered, StepCallback
from storyboard.render.comfyui.graph import (
    BUILTIN_WORKFLOW,
    Graph,
    Workflow,
    canonical_hash,
    node_name,
    read_workflow,
    without_unread,
)
from storyboard.render.comfyui.nodetypes import NodeTypes, check_graph, server_name
from storyboard.render.comfyui.samplers import comfy_sampler
from storyboard.render.comfyui.wire import DEFAULT_URL, DROPPED, URL_ENV, Messages, Wire, server_url
from storyboard.render.remote import DEFAULT_TIMEOUT, REQUEST_TIMEOUT, RemoteRenderer, fitted, open_image
from storyboard.resolve import PanelJob, story_file
from storyboard.retry import Deadline
from storyboard.story import Story

VERSION = "1"
POLL_ENV = "STORYBOARD_POLL_SECONDS"
TICK = 0.5  # seconds: while ComfyUI says nothing, a panel's step is said again this often (a cancel raises there)
LOOK_AFTER = 10.0  # seconds of silence on the websocket after which a prompt's history is looked at
STOP_TIMEOUT = 5.0  # seconds for each request that stops a prompt


@dataclass
class Plan:
    """A job's graph as it is queued (checked, its anchors' pictures named as uploaded), and where its picture is."""

    graph: Graph
    digest: str
    output: str
    anchor_inputs: dict[tuple[str, str], str]  # (node, input) -> the upload name of the anchor it reads

    def with_prefix(self, prefix: str) -> Graph:
        graph = copy.deepcopy(self.graph)
        if "filename_prefix" in graph[self.output]["inputs"]:
            graph[self.output]["inputs"]["filename_prefix"] = prefix
        return graph


class ComfyUIRenderer(RemoteRenderer):
    name: ClassVar[str] = "comfyui"
    version: ClassVar[str] = VERSION
    service: ClassVar[str] = "comfyui"
    reads_references: ClassVar[bool] = True  # with a graph that has a %reference% input: see `anchors_unread`

    def __init__(self, *, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT, retries: int = 3,
                 notify: Callable[[str], None] | None = None, poll: float | None = None) -> None:
        super().__init__(base_url=server_url(base_url or os.environ.get(URL_ENV, "").strip() or DEFAULT_URL),
                         timeout=timeout, retries=retries, notify=notify)
        if poll is None:
            try:
                poll = float(os.environ.get(POLL_ENV) or 0.5)
            except ValueError:
                poll = 0.5
        self.poll = max(0.001, poll)  # seconds between looks at a prompt's history when there is no websocket
        self.client_id = uuid.uuid4().hex
        self._workflows: dict[str, tuple[tuple[int, int, int] | None, Workflow]] = {}
        self._wire: Wire | None = None
        self._messages: Messages | None = None
        self._types: NodeTypes | None = None
        self._server_version: str | None = None
        self._uploaded: dict[str, str] = {}  # upload name -> the name the server keeps the picture under
        self._said_no_websocket = False

    def __getstate__(self) -> dict[str, Any]:
        """A copy for another process (a Ray worker) opens its own connection."""
        return {**self.__dict__, "_wire": None, "_messages": None}

    def _where(self) -> str:
        return f"the ComfyUI server at {shown_url(self.base_url or '')}"

    # ------------------------------------------------------------------ the graphs (no network)

    def anchors_unread(self, story: Story, story_dir: Path) -> str:
        """Nothing when the story's graph has a ``%reference%`` input; else why its panels are drawn without anchors.
        Reads the story's graphs, so that a graph storyboard cannot use stops the build before anything is done."""
        render = story.render
        if render.anchor_workflow:
            self._read(story_file(story_dir, render.anchor_workflow), "render.anchor_workflow")
        if not render.workflow:
            return ("the comfyui renderer's built-in graph cannot read character anchors (render.workflow can name "
                    "a graph with a \"%reference%\" input)")
        workflow = self._read(story_file(story_dir, render.workflow), "render.workflow")
        if workflow.references:
            return ""
        return f"the ComfyUI graph {workflow.name} has no \"%reference%\" input, so it cannot read character anchors"

    def identity(self, job: PanelJob) -> dict[str, Any]:
        """The service and model, the graph's hash as written (``workflow``) and as filled in for this job
        (``graph``: every value but the server's address, the client id and the picture's file name prefix);
        the anchors it reads stand in it by character, their keys being in the panel's key already."""
        workflow = self._workflow(job)
        filled = workflow.fill(job, [f"anchor of {name}" for name in job.references])
        identity = {**super().identity(job), "workflow": workflow.sha256, "graph": filled.digest()}
        if workflow.fills_sampler:
            identity["sampler"] = comfy_sampler(dict(job.options).get("scheduler", "default")).label
        return identity

    def _workflow(self, job: PanelJob) -> Workflow:
        if not job.workflow:
            return BUILTIN_WORKFLOW
        return self._read(job.workflow, "render.anchor_workflow" if job.is_anchor else "render.workflow")

    def _read(self, path: str, field: str) -> Workflow:
        """The graph in `path`, read again only when the file changed."""
        try:
            info = os.stat(path)
            stamp: tuple[int, int, int] | None = (info.st_mtime_ns, info.st_size, info.st_ino)
        except (OSError, ValueError):  # not there, or a NUL in its name: reading it says which
            stamp = None
        cached = self._workflows.get(path)
        if cached is not None and stamp is not None and cached[0] == stamp:
            return cached[1]
        workflow = read_workflow(path, _shown_path(path), field)
        self._workflows[path] = (stamp, workflow)
        return workflow

    # ------------------------------------------------------------------ drawing

    def render(self, jobs: Sequence[PanelJob], on_step: StepCallback | None = None,
               references: Mapping[str, Reference] | None = None) -> Iterator[Rendered]:
        if not jobs:
            return
        anchors = dict(references or {})
        setup = Deadline(self.timeout)
        self._connect(jobs[0], setup)
        plans = self._plans(jobs, anchors, setup)
        self._upload(jobs, plans, anchors, setup)
        for job, plan in zip(jobs, plans):
            image, info = self._draw_plan(job, plan, Deadline(self.timeout), on_step)
            yield Rendered(job, fitted(image, job, info), info)

    def _connect(self, job: PanelJob, deadline: Deadline) -> None:
        """The server's version (asked once), and its websocket for the renderer's client id."""
        if self._wire is None:
            self._wire = Wire(self.base_url or DEFAULT_URL, self._where())
        if self._server_version is None:
            stats = self._request(job, "with its version", lambda s: self._call("GET", "/system_stats", s),
                                  deadline, REQUEST_TIMEOUT)
            system = stats.get("system") if isinstance(stats, dict) else None
            version = system.get("comfyui_version") if isinstance(system, dict) else None
            self._server_version = str(version) if version else "unknown"
        if self._messages is None or not self._messages.open:
            import websocket

            try:
                self._messages = Messages(self.base_url or DEFAULT_URL, self.client_id,
                                          min(REQUEST_TIMEOUT, max(0.1, deadline.left())))
            except (websocket.WebSocketException, OSError) as exc:
                self._messages = None
                if not self._said_no_websocket:
                    self._said_no_websocket = True
                    self.notify(f"{self._where()} opened no websocket ({reason(exc)}); following each panel "
                                "through its history instead")

    def _call(self, method: str, path: str, seconds: float, **options: Any) -> Any:
        assert self._wire is not None
        return self._wire.call(method, path, seconds, **options)

    def _node_types(self, job: PanelJob, deadline: Deadline) -> NodeTypes:
        info = self._request(job, "with its node types", lambda s: self._call("GET", "/object_info", s), deadline,
                             REQUEST_TIMEOUT)
        return NodeTypes(info, self._where())

    def _plans(self, jobs: Sequence[PanelJob], anchors: Mapping[str, Reference], deadline: Deadline) -> list[Plan]:
        """Every job's graph, checked against the server's node types; they are read again once if a graph names
        what they lack (a model added since, a custom node installed)."""
        fresh = self._types is None
        if self._types is None:
            self._types = self._node_types(jobs[0], deadline)
        try:
            return [self._plan(job, anchors) for job in jobs]
        except RendererRequestError:
            if fresh:
                raise
        self._types = self._node_types(jobs[0], deadline)
        return [self._plan(job, anchors) for job in jobs]

    def _plan(self, job: PanelJob, anchors: Mapping[str, Reference]) -> Plan:
        types = self._types
        assert types is not None
        workflow = self._workflow(job)
        missing = [name for name in job.references if name not in anchors]
        if missing:
            raise RenderError(f"{job.label} reads the anchor of {missing[0]!r}, which the build did not hand over")
        filled = workflow.fill(job, [upload_name(anchors[name]) for name in job.references])
        for node_id, input_name in filled.model_inputs:
            options = types.options(filled.nodes[node_id]["class_type"], input_name)
            if options:
                inputs = filled.nodes[node_id]["inputs"]
                inputs[input_name] = server_name(inputs[input_name], options)
        nodes = filled.nodes
        if filled.unread:
            nodes = without_unread(filled, types.outputs, types.inputs, workflow.name, job.label)
        check_graph(nodes, types, self._where(), workflow.name, skip=filled.reference_inputs,
                    model_inputs=filled.model_inputs)
        reading = {spot: name for spot, name in filled.reference_inputs.items() if spot[0] in nodes}
        return Plan(nodes, canonical_hash(nodes), workflow.output, reading)

    def _upload(self, jobs: Sequence[PanelJob], plans: list[Plan], anchors: Mapping[str, Reference],
                deadline: Deadline) -> None:
        """Send the server each anchor picture the plans read, once, and name it in the plans as the server keeps
        it. A picture is named by its key: one the server lists for LoadImage already is not sent again (and a
        re-upload of the same name and bytes keeps the file it has)."""
        pictures = {upload_name(anchors[name]): (job, anchors[name]) for job in jobs for name in job.references}
        assert self._types is not None
        listed = set(self._types.options("LoadImage", "image") or ())
        for plan in plans:
            for spot, name in plan.anchor_inputs.items():
                if name not in self._uploaded and name in listed:
                    self._uploaded[name] = name
                elif name not in self._uploaded:
                    job, reference = pictures[name]
                    files = {"image": (name, png_bytes(reference.image), "image/png")}
                    reply = self._request(job, f"when sent the anchor of {reference.job.character!r}",
                                          lambda s, files=files: self._call("POST", "/upload/image", s, files=files),
                                          deadline, REQUEST_TIMEOUT)
                    kept = reply.get("name") if isinstance(reply, dict) else None
                    folder = reply.get("subfolder") if isinstance(reply, dict) else None
                    self._uploaded[name] = f"{folder}/{kept}" if kept and folder else str(kept or name)
                plan.graph[spot[0]]["inputs"][spot[1]] = self._uploaded[name]

    def _draw_plan(self, job: PanelJob, plan: Plan, deadline: Deadline,
                   on_step: StepCallback | None) -> tuple[Image.Image, dict[str, Any]]:
        prefix = f"storyboard/{plan.digest[:20]}"
        prompt_id = self._run(job, plan.with_prefix(prefix), deadline, on_step)
        pictures = self._pictures(job, prompt_id, plan.output, deadline)
        if not pictures:
            # An older ComfyUI answers a graph it ran last from its cache and then keeps no outputs for it in the
            # history. A prefix of its own makes it save the picture again: only the save node runs, the pixels
            # are the same.
            prompt_id = self._run(job, plan.with_prefix(f"{prefix}-{uuid.uuid4().hex[:8]}"), deadline, on_step)
            pictures = self._pictures(job, prompt_id, plan.output, deadline)
        if not pictures:
            raise RendererRequestError(f"{self._where()} ran the graph for {job.label} but its history holds no "
                                       f"picture of {node_name(plan.graph, plan.output)}")
        picture = pictures[0]
        query = urlencode({"filename": picture["filename"], "subfolder": picture.get("subfolder") or "",
                           "type": picture.get("type") or "output"})
        data = self._request(job, "with the picture", lambda s: self._call("GET", f"/view?{query}", s, raw=True),
                             deadline, REQUEST_TIMEOUT)
        info = {"comfyui_version": self._server_version, "prompt_id": prompt_id}
        return open_image(data, self._where(), job), info

    def _run(self, job: PanelJob, graph: Graph, deadline: Deadline, on_step: StepCallback | None) -> str:
        """Queue `graph` for `job` and wait until ComfyUI is done with it; its prompt id. Stopped on our side
        (the deadline, a cancel raised from `on_step`, Ctrl-C), the prompt is stopped on the server too."""
        body = {"prompt": graph, "client_id": self.client_id}
        reply = self._request(job, "when asked to draw",
                              lambda s: self._call("POST", "/prompt", s, body=body, label=job.label), deadline,
                              REQUEST_TIMEOUT)
        prompt_id = reply.get("prompt_id") if isinstance(reply, dict) else None
        if not isinstance(prompt_id, str) or not prompt_id:
            raise RendererRequestError(f"{self._where()} queued {job.label} without a prompt id; is it a ComfyUI "
                                       "server?")
        try:
            self._wait(job, prompt_id, deadline, on_step)
        except RenderError:
            raise
        except BaseException:
            self._stop(prompt_id)
            raise
        return prompt_id

    def _wait(self, job: PanelJob, prompt_id: str, deadline: Deadline, on_step: StepCallback | None) -> None:
        step, total, started = 0, job.steps, False
        heard = time.monotonic()

        def tell() -> None:
            if on_step:
                on_step(job, step, total)

        tell()
        while True:
            left = deadline.left()
            if left <= 0:
                self._stop(prompt_id)
                raise RendererUnavailable(f"{self._where()} had not finished {job.label} within "
                                          f"{deadline.seconds:g} s, so it was asked to stop it; try a longer "
                                          "--timeout")
            if self._messages is None:
                if self._entry(job, prompt_id, deadline) is not None:
                    return
                time.sleep(min(self.poll, deadline.left()))
                tell()
                continue
            message = self._messages.get(min(TICK, left))
            if message is None:
                tell()
                if time.monotonic() - heard >= LOOK_AFTER:
                    heard = time.monotonic()
                    if self._entry(job, prompt_id, deadline) is not None:
                        return
                continue
            if message is DROPPED:
                self._messages = None
                self.notify(f"the websocket of {self._where()} closed; following {job.label} through its history")
                continue
            heard = time.monotonic()
            kind, data = message
            said = data.get("prompt_id")
            if said is None and not (started and kind == "progress") or said not in (None, prompt_id):
                continue  # another prompt's (or, from an older server, one that cannot be told apart)
            if kind == "execution_start":
                started = True
            elif kind == "progress":
                try:
                    step, total = int(data["value"]), int(data["max"])
                except (KeyError, TypeError, ValueError):
                    continue
                tell()
            elif kind == "execution_error":
                raise self._failure(job, data)
            elif kind == "execution_interrupted":
                raise self._interrupted(job)
            elif kind == "execution_success" or kind == "executing" and "node" in data and data["node"] is None:
                return

    def _entry(self, job: PanelJob, prompt_id: str, deadline: Deadline) -> dict[str, Any] | None:
        """The prompt's history once ComfyUI has finished it (None before); a failed prompt raises its error."""
        reply = self._request(job, "with the prompt's history",
                              lambda s: self._call("GET", f"/history/{prompt_id}", s), deadline, REQUEST_TIMEOUT)
        entry = reply.get(prompt_id) if isinstance(reply, dict) else None
        if not isinstance(entry, dict):
            return None
        status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
        if status.get("status_str") == "error":
            for message in status.get("messages") or []:
                if isinstance(message, list) and len(message) == 2 and isinstance(message[1], dict):
                    if message[0] == "execution_error":
                        raise self._failure(job, message[1])
                    if message[0] == "execution_interrupted":
                        raise self._interrupted(job)
            raise RendererRequestError(f"{self._where()} could not draw {job.label} (its history says it failed)")
        return entry

    def _pictures(self, job: PanelJob, prompt_id: str, output: str, deadline: Deadline) -> list[dict[str, Any]]:
        """The pictures the prompt's history lists for the node `output`."""
        pause = 0.005
        while (entry := self._entry(job, prompt_id, deadline)) is None:
            # ComfyUI says a prompt succeeded a moment before it writes the prompt into its history.
            if pause >= deadline.left():
                raise RendererUnavailable(f"{self._where()} had not recorded {job.label} in its history within "
                                          f"{deadline.seconds:g} s; try a longer --timeout")
            time.sleep(pause)
            pause = min(pause * 2, self.poll)
        outputs = entry.get("outputs") if isinstance(entry.get("outputs"), dict) else {}
        node = outputs.get(output) if isinstance(outputs.get(output), dict) else {}
        return [picture for picture in node.get("images") or []
                if isinstance(picture, dict) and isinstance(picture.get("filename"), str)]

    def _stop(self, prompt_id: str) -> None:
        """Take the prompt off the server's queue, or interrupt it if it is running (and only then: an older
        ComfyUI interrupts whatever runs). Best effort: a server that does not answer has stopped anyway."""
        import requests

        try:
            queue = self._call("GET", "/queue", STOP_TIMEOUT)
        except (StoryboardError, requests.RequestException):
            queue = None
        try:
            if queue is None or prompt_id in _queued(queue, "queue_pending"):
                self._call("POST", "/queue", STOP_TIMEOUT, body={"delete": [prompt_id]}, raw=True)
            if queue is None or prompt_id in _queued(queue, "queue_running"):
                self._call("POST", "/interrupt", STOP_TIMEOUT, body={"prompt_id": prompt_id}, raw=True)
        except (StoryboardError, requests.RequestException):
            pass

    def _failure(self, job: PanelJob, data: dict[str, Any]) -> RendererRequestError:
        kind = str(data.get("exception_type") or "").rsplit(".", 1)[-1]
        message = str(data.get("exception_message") or "").strip()
        said = f"{kind}: {message}" if kind and message else kind or message or "no reason given"
        return RendererRequestError(f"{self._where()} could not draw {job.label}: {data.get('node_type') or 'a node'}"
                                    f" (node {data.get('node_id')}) failed: {describe(said, 300)}")

    def _interrupted(self, job: PanelJob) -> RendererRequestError:
        return RendererRequestError(f"{self._where()} stopped {job.label} before it was done (interrupted in "
                                    "ComfyUI?)")


def _queued(queue: Any, which: str) -> set[str]:
    """The prompt ids in one list of ``GET /queue``'s reply (each item is [number, prompt id, graph, ...])."""
    items = queue.get(which) if isinstance(queue, dict) else None
    return {str(item[1]) for item in items or [] if isinstance(item, list) and len(item) > 1}


def upload_name(reference: Reference) -> str:
    """The file name an anchor's picture is uploaded under: its key, so that the same picture has the same name."""
    key = reference.key or hashlib.sha256(png_bytes(reference.image)).hexdigest()
    return f"storyboard-{key[:32]}.png"


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _shown_path(path: str) -> str:
    """`path` as the user can find it: relative to the working folder when it lies below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative
