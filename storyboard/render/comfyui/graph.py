"""ComfyUI graphs in API format: the user's file read and checked, the built-in txt2img graph, and a job's values
filled in. Pure: no network.

A graph is what ComfyUI's "Save (API)" writes: ``{"<node id>": {"class_type": ..., "inputs": {...}}, ...}``, where
an input is a value or a link ``["<node id>", <output index>]``. A job's values reach it in one of two ways:

- placeholders in input values: ``%prompt%``, ``%negative%``, ``%seed%``, ``%width%``, ``%height%``, ``%steps%``,
  ``%cfg%``, ``%sampler%``, ``%scheduler%``, ``%model%`` and ``%reference%`` (``%reference2%``... for a panel's
  second character...). A value that is a placeholder and nothing else takes the value itself, so ``"%seed%"``
  becomes a number; one inside a longer text (``"masterpiece, %prompt%"``) is replaced as text.
- in a graph without any placeholder, the standard nodes, found by type: the KSampler's seed, steps, cfg, sampler
  and scheduler; the text of the CLIPTextEncode nodes wired to its positive and negative inputs; the size of the
  empty latent image it starts from; the ckpt_name of the CheckpointLoaderSimple its model comes from.

The picture is the output of the graph's SaveImage node (or, without one, its PreviewImage node); its
filename_prefix is set for each panel.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from storyboard.errors import RendererRequestError, StoryError
from storyboard.files import read_regular_file
from storyboard.render.comfyui.samplers import comfy_sampler
from storyboard.resolve import PanelJob

Graph = dict[str, dict[str, Any]]

MAX_GRAPH_BYTES = 16 * 1024 * 1024
PLACEHOLDER = re.compile(r"%(prompt|negative|seed|width|height|steps|cfg|sampler|scheduler|model|reference(\d*))%")
NUMBERS: dict[str, Callable[[Any], Any]] = {"seed": int, "width": int, "height": int, "steps": int, "cfg": float}
SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")
SEED_INPUTS = ("seed", "noise_seed")  # KSampler's, KSamplerAdvanced's
PREFIX = "storyboard"  # the output's filename_prefix in a graph as keyed; each run gets one of its own

#: ComfyUI's default graph (checkpoint, two text encoders, empty latent, KSampler, VAE decode, save), with the
#: placeholders in it: what draws a panel when the story names no graph, and the characters' anchors.
BUILTIN: Graph = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": "%seed%", "steps": "%steps%", "cfg": "%cfg%", "sampler_name": "%sampler%",
        "scheduler": "%scheduler%", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
        "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "%model%"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": "%width%", "height": "%height%", "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "%prompt%", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "%negative%", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": PREFIX, "images": ["8", 0]}},
}
BUILTIN_NAME = "the built-in txt2img graph"


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int


def canonical_hash(nodes: Graph) -> str:
    """The sha256 of a graph's canonical JSON: its nodes' types and inputs (titles and other UI data left out)."""
    bare = {node_id: {"class_type": node["class_type"], "inputs": node["inputs"]} for node_id, node in nodes.items()}
    blob = json.dumps(bare, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def node_name(nodes: Graph, node_id: str) -> str:
    return f"node {node_id} ({nodes[node_id]['class_type']})"


@dataclass(frozen=True)
class Filled:
    """A graph with a job's values in it, as ComfyUI takes it, and what the renderer still has to do to it.

    `model_inputs` hold the model's name as the story gives it (the renderer puts the server's spelling there);
    `reference_inputs` name the anchor picture each reads, by the panel's character; the nodes of `unread` read
    an anchor the panel does not have (a ``%reference2%`` for a panel of one character): they are bypassed.
    """

    nodes: Graph
    output: str
    model_inputs: tuple[tuple[str, str], ...] = ()
    reference_inputs: dict[tuple[str, str], str] = field(default_factory=dict)
    unread: frozenset[str] = frozenset()

    def digest(self) -> str:
        return canonical_hash(self.nodes)


@dataclass(frozen=True)
class Workflow:
    """A graph ready to be filled: its nodes with placeholders (the standard nodes' inputs given ones when the file
    had none), the node whose images are the picture, and the sha256 of the graph as written."""

    name: str  # how error lines name it: the file, or the built-in graph
    nodes: Graph
    sha256: str
    output: str
    references: int  # how many anchors it reads: the highest %referenceN% (0: none)
    fills_sampler: bool  # whether %sampler% or %scheduler% is in it: render.scheduler decides them

    def fill(self, job: PanelJob, anchors: Sequence[str]) -> Filled:
        """The graph for `job`; `anchors` are the names of the pictures of the characters it lists, in order."""
        chosen = comfy_sampler(dict(job.options).get("scheduler", "default")) if self.fills_sampler else None
        values: dict[str, Any] = {
            "prompt": job.prompt, "negative": job.negative_prompt, "seed": job.seed, "width": job.width,
            "height": job.height, "steps": job.steps, "cfg": job.guidance, "model": job.model,
            "sampler": chosen.sampler if chosen else "", "scheduler": chosen.scheduler if chosen else ""}
        nodes = copy.deepcopy(self.nodes)
        models: list[tuple[str, str]] = []
        references: dict[tuple[str, str], str] = {}
        unread: set[str] = set()
        for node_id, name, value in _texts(nodes):
            whole = PLACEHOLDER.fullmatch(value)
            if whole is None:
                nodes[node_id]["inputs"][name] = PLACEHOLDER.sub(lambda m: str(values[m[1]]), value)
                continue
            kind = whole[1]
            if kind.startswith("reference"):
                number = int(whole[2] or 1)
                if number <= len(anchors):
                    nodes[node_id]["inputs"][name] = anchors[number - 1]
                    references[node_id, name] = anchors[number - 1]
                else:
                    unread.add(node_id)
                continue
            nodes[node_id]["inputs"][name] = NUMBERS.get(kind, str)(values[kind])
            if kind == "model":
                models.append((node_id, name))
        return Filled(nodes, self.output, tuple(models), references, frozenset(unread))


def _texts(nodes: Graph) -> Iterator[tuple[str, str, str]]:
    for node_id, node in nodes.items():
        for name, value in list(node["inputs"].items()):
            if isinstance(value, str):
                yield node_id, name, value


def read_workflow(path: str, shown: str, field_name: str) -> Workflow:
    """The graph in the file at `path` (shown as `shown` in errors, which name the story's `field_name`)."""
    def refuse(problem: str) -> StoryError:
        return StoryError(problem, field=field_name)

    try:
        data = read_regular_file(path, MAX_GRAPH_BYTES)
    except ValueError as exc:
        raise refuse(f"cannot read the ComfyUI graph {shown}: {exc}") from None
    try:
        graph = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise refuse(f"{shown} is not JSON; export the graph from ComfyUI with \"Save (API)\"") from None
    try:
        return workflow_of(graph, shown)
    except ValueError as exc:
        raise refuse(str(exc)) from None


def workflow_of(graph: Any, name: str) -> Workflow:
    """`graph` (API format) checked and ready to fill; `ValueError` saying in one line what is wrong with it."""
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise ValueError(f"{name} is a ComfyUI workflow in the UI format (it has \"nodes\" and \"links\"); "
                         "storyboard needs the API format: in ComfyUI, export it with \"Save (API)\" "
                         "(Workflow > Export (API))")
    if not isinstance(graph, dict) or not graph:
        raise ValueError(f"{name} is not a ComfyUI graph in the API format (an object of nodes, each with "
                         "class_type and inputs); export it from ComfyUI with \"Save (API)\"")
    nodes: Graph = {}
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) \
                or not isinstance(node.get("inputs", {}), dict):
            raise ValueError(f"{name} is not a ComfyUI graph in the API format: its node {node_id} has no "
                             "class_type and inputs; export it from ComfyUI with \"Save (API)\"")
        nodes[node_id] = {**node, "inputs": dict(node.get("inputs", {}))}
    for node_id, node in nodes.items():
        for input_name, value in node["inputs"].items():
            if is_link(value) and value[0] not in nodes:
                raise ValueError(f"{name}: the input {input_name} of {node_name(nodes, node_id)} is wired to node "
                                 f"{value[0]}, which the graph does not have")
    sha256 = canonical_hash(nodes)
    output = _output(nodes, name)
    if "filename_prefix" in nodes[output]["inputs"]:
        nodes[output]["inputs"]["filename_prefix"] = PREFIX
    if not any(PLACEHOLDER.search(value) for _, _, value in _texts(nodes)):
        _standard_placeholders(nodes, name)
    references = 0
    for node_id, input_name, value in _texts(nodes):
        for found in PLACEHOLDER.finditer(value):
            if found[1].startswith("reference"):
                if found[0] != value:
                    raise ValueError(f"{name}: {found[0]} must be the whole value of the input {input_name} of "
                                     f"{node_name(nodes, node_id)} (the name of a picture, as LoadImage takes it)")
                number = int(found[2] or 1)
                if number < 1:
                    raise ValueError(f"{name}: {found[0]} in {node_name(nodes, node_id)}: anchors are counted "
                                     "from 1 (%reference% is %reference1%)")
                references = max(references, number)
    fills_sampler = any("%sampler%" in value or "%scheduler%" in value for _, _, value in _texts(nodes))
    return Workflow(name, nodes, sha256, output, references, fills_sampler)


def _output(nodes: Graph, name: str) -> str:
    """The node whose images are the picture: the graph's one SaveImage node, or else its one PreviewImage."""
    for kind in ("SaveImage", "PreviewImage"):
        found = [node_id for node_id, node in nodes.items() if node["class_type"] == kind]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ValueError(f"{name} has {len(found)} {kind} nodes ({', '.join(found)}); keep the one whose "
                             "picture is the panel")
    raise ValueError(f"{name} has no output image: add a SaveImage node for the panel's picture")


def _standard_placeholders(nodes: Graph, name: str) -> None:
    """Put placeholders into the inputs of the standard nodes of a graph that has none."""
    samplers = [node_id for node_id, node in nodes.items() if node["class_type"] in SAMPLER_NODES]
    if not samplers:
        raise ValueError(f"{name} has no placeholders and no KSampler: mark the inputs storyboard fills with "
                         "%prompt%, %seed%, %width%... (see the README's ComfyUI section)")
    if len(samplers) > 1:
        raise ValueError(f"{name} has no placeholders and {len(samplers)} KSampler nodes ({', '.join(samplers)}): "
                         "mark the inputs storyboard fills with %prompt%, %seed%, %steps%...")
    sampler = nodes[samplers[0]]["inputs"]
    for wanted, placeholder in ((SEED_INPUTS, "%seed%"), (("steps",), "%steps%"), (("cfg",), "%cfg%"),
                                (("sampler_name",), "%sampler%"), (("scheduler",), "%scheduler%")):
        for input_name in wanted:
            if input_name in sampler and not is_link(sampler[input_name]):
                sampler[input_name] = placeholder
    positive = _upstream(nodes, sampler.get("positive"), "positive", "CLIPTextEncode")
    if positive is None:
        raise ValueError(f"{name}: no CLIPTextEncode is wired to the positive input of "
                         f"{node_name(nodes, samplers[0])}; mark the prompt's input with %prompt%")
    negative = _upstream(nodes, sampler.get("negative"), "negative", "CLIPTextEncode")
    if negative == positive:
        raise ValueError(f"{name}: {node_name(nodes, positive)} feeds both the positive and the negative input of "
                         f"{node_name(nodes, samplers[0])}; mark the prompt's input with %prompt%")
    nodes[positive]["inputs"]["text"] = "%prompt%"
    if negative is not None:
        nodes[negative]["inputs"]["text"] = "%negative%"
    latent = _upstream(nodes, sampler.get("latent_image"), "samples", None)
    if latent is not None and {"width", "height"} <= set(nodes[latent]["inputs"]):
        nodes[latent]["inputs"].update(width="%width%", height="%height%")
    checkpoint = _upstream(nodes, sampler.get("model"), "model", "CheckpointLoaderSimple")
    if checkpoint is not None:
        nodes[checkpoint]["inputs"]["ckpt_name"] = "%model%"


def _upstream(nodes: Graph, link: Any, through: str, kind: str | None) -> str | None:
    """The first node of type `kind` up the wire `link`, following each node's input named `through` (or one
    holding "conditioning"); for `kind` None, the node at the end of the wire whose inputs are values."""
    seen: set[str] = set()
    while is_link(link) and link[0] not in seen:
        node_id = link[0]
        seen.add(node_id)
        node = nodes[node_id]
        if node["class_type"] == kind or kind is None and not any(is_link(v) for v in node["inputs"].values()):
            return node_id
        inputs = node["inputs"]
        link = inputs.get(through) if is_link(inputs.get(through)) else next(
            (v for k, v in inputs.items() if "conditioning" in k and is_link(v)), None)
    return None


BUILTIN_WORKFLOW = workflow_of(BUILTIN, BUILTIN_NAME)


def without_unread(filled: Filled, outputs_of: Callable[[str], list[tuple[str, str]] | None],
                   inputs_of: Callable[[str], list[tuple[str, str]] | None], name: str, label: str) -> Graph:
    """`filled`'s graph without the nodes that read an anchor the job does not have, bypassed the way ComfyUI
    bypasses a node: a wire from a removed node's output comes instead from that node's input of the same type
    (of the same name, if it has several), and a node left with a wire that has no such source goes too.

    `outputs_of(class_type)` gives a node type's outputs and `inputs_of(class_type)` its inputs, each as
    (type, name) pairs in order; None for a type the server does not know.
    """
    nodes = copy.deepcopy(filled.nodes)
    removed = set(filled.unread)
    changed = True
    while changed:
        changed = False
        for node_id, node in nodes.items():
            if node_id in removed:
                continue
            for input_name, value in node["inputs"].items():
                if not is_link(value) or value[0] not in removed:
                    continue
                source = _bypass(nodes, value, removed, outputs_of, inputs_of)
                if source is None:
                    removed.add(node_id)
                else:
                    node["inputs"][input_name] = source
                changed = True
                break
    if filled.output in removed:
        raise RendererRequestError(
            f"{name} cannot draw {label} without an anchor for every %reference% input: removing the nodes that "
            f"read the missing ones leaves no path to {node_name(nodes, filled.output)}")
    return {node_id: node for node_id, node in nodes.items() if node_id not in removed}


def _bypass(nodes: Graph, link: list[Any], removed: set[str], outputs_of: Callable[[str], Any],
            inputs_of: Callable[[str], Any]) -> list[Any] | None:
    """Where the wire `link` comes from once the removed nodes it passes through are bypassed; None if nowhere."""
    seen: set[str] = set()
    while link[0] in removed:
        if link[0] in seen:
            return None
        seen.add(link[0])
        node = nodes[link[0]]
        outputs, inputs = outputs_of(node["class_type"]), inputs_of(node["class_type"])
        if not outputs or not inputs or not 0 <= link[1] < len(outputs):
            return None
        kind, output_name = outputs[link[1]]
        wired = [(input_name, node["inputs"][input_name]) for input_type, input_name in inputs
                 if input_type in (kind, "*") and is_link(node["inputs"].get(input_name))]
        if not wired:
            return None
        same = [value for input_name, value in wired if input_name.lower() == str(output_name).lower()]
        link = same[0] if same else wired[0][1]
    return list(link)
