"""What a ComfyUI server says about its node types (``GET /object_info``): what each takes and gives, and the values
a list input takes (the server's checkpoints, LoRAs, samplers...).

A graph is checked against it before anything is queued, so that a node type the server lacks, or a model name it
does not have, is one line naming the node, the value and the close names it does have, instead of ComfyUI's
"Value not in list" after the first panels were drawn.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from typing import Any

from storyboard.errors import RendererRequestError
from storyboard.render.comfyui.graph import Graph, is_link, node_name


class NodeTypes:
    """A server's node types, read from its ``/object_info`` reply."""

    def __init__(self, info: Any, where: str) -> None:
        if not isinstance(info, dict):
            raise RendererRequestError(f"{where} described its node types in something that is not a JSON object; "
                                       "is it a ComfyUI server?")
        self.info = info

    def _entry(self, class_type: str) -> dict[str, Any] | None:
        entry = self.info.get(class_type)
        return entry if isinstance(entry, dict) else None

    def knows(self, class_type: str) -> bool:
        return self._entry(class_type) is not None

    def inputs(self, class_type: str) -> list[tuple[str, str]] | None:
        """(type, name) of each input, required ones first, in the order the server gives."""
        return [(_spec_type(spec), name) for name, spec in self._specs(class_type)] \
            if self.knows(class_type) else None

    def outputs(self, class_type: str) -> list[tuple[str, str]] | None:
        """(type, name) of each output."""
        entry = self._entry(class_type)
        if entry is None or not isinstance(entry.get("output"), list):
            return None
        kinds = [str(kind) for kind in entry["output"]]
        names = entry.get("output_name")
        names = [str(n) for n in names] if isinstance(names, list) and len(names) == len(kinds) else kinds
        return list(zip(kinds, names))

    def options(self, class_type: str, input_name: str) -> list[str] | None:
        """The values a list input takes (e.g. a CheckpointLoaderSimple's ckpt_name); None for any other input."""
        for name, spec in self._specs(class_type):
            if name == input_name:
                return _spec_options(spec)
        return None

    def _specs(self, class_type: str) -> list[tuple[str, Any]]:
        entry = self._entry(class_type) or {}
        sections = entry.get("input") if isinstance(entry.get("input"), dict) else {}
        specs: list[tuple[str, Any]] = []
        for section in ("required", "optional"):
            found = sections.get(section)
            if isinstance(found, dict):
                specs.extend(found.items())
        return specs


def _spec_type(spec: Any) -> str:
    first = spec[0] if isinstance(spec, list) and spec else None
    if isinstance(first, list):
        return "COMBO"
    return first if isinstance(first, str) else "*"


def _spec_options(spec: Any) -> list[str] | None:
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], list):
        return [str(option) for option in spec[0]]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict) and isinstance(spec[1].get("options"), list):
        return [str(option) for option in spec[1]["options"]]
    return None


def server_name(value: str, options: list[str]) -> str:
    """The server's own spelling of a model `value`: itself, or the one file it names without its folder or its
    extension (``v1-5-pruned-emaonly`` for ``SD1.5/v1-5-pruned-emaonly.safetensors``); `value` when none is."""
    if value in options:
        return value
    found = [option for option in options
             if value in (_base(option), _base(option).rsplit(".", 1)[0])]
    return found[0] if len(found) == 1 else value


def _base(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def offer(value: str, options: list[str]) -> str:
    """The names a server has that `value` may have meant, as the end of an error line."""
    if not options:
        return "it has none"
    # Compared without folders and extensions: every checkpoint ends in .safetensors, which would make them all
    # look alike.
    stems = [_stem(option) for option in options]
    close = [options[stems.index(stem)] for stem in difflib.get_close_matches(_stem(value), stems, n=3, cutoff=0.6)]
    if close:
        return f"close names it has: {', '.join(close)}"
    shown = sorted(options)[:5]
    more = f", … ({len(options)} in all)" if len(options) > len(shown) else ""
    return f"it has: {', '.join(shown)}{more}"


def _stem(name: str) -> str:
    base = _base(name).lower()
    return base.rsplit(".", 1)[0] if "." in base else base


def check_graph(nodes: Graph, types: NodeTypes, where: str, graph: str, *,
                skip: Collection[tuple[str, str]] = (), model_inputs: Collection[tuple[str, str]] = ()) -> None:
    """Raise one line for the first node of `nodes` whose type the server lacks, or whose list input holds a value
    the server does not list; the inputs of `skip` (pictures uploaded later) are not looked at."""
    for node_id, node in nodes.items():
        kind = node["class_type"]
        if not types.knows(kind):
            close = difflib.get_close_matches(kind, list(types.info), n=3, cutoff=0.6)
            hint = f" (close names it has: {', '.join(close)})" if close else ""
            raise RendererRequestError(
                f"{where} has no node type {kind!r} (node {node_id} of {graph}); install the custom nodes that "
                f"provide it, or change the graph{hint}")
        for input_name, value in node["inputs"].items():
            if is_link(value) or (node_id, input_name) in skip:
                continue
            options = types.options(kind, input_name)
            if options is None or str(value) in options:
                continue
            hint = "set render.model (or --model) to one of them; " \
                if (node_id, input_name) in model_inputs else ""
            raise RendererRequestError(
                f"{where} has no {input_name} {value!r} for {node_name(nodes, node_id)} of {graph}; "
                f"{hint}{offer(str(value), options)}")
