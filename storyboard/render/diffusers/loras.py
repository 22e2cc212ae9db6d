"""LoRAs: the story's (`render.loras`) and the characters' (`characters.<name>.lora`), each a local file, a folder
holding the weights file, or a hub repo (with `weight_name`). Found on disk or in the hub cache without torch;
loaded once per pipeline as named adapters and switched on, at their weights, for exactly the panels that list them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storyboard.errors import ModelNotFound, RenderError
from storyboard.hub import cached_file, first_line, hub_cache_dir, hub_offline, looks_local, quiet_libraries
from storyboard.render.diffusers.download import download_lora
from storyboard.render.diffusers.locate import CHECKPOINT_SUFFIXES
from storyboard.resolve import PanelJob

DEFAULT_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


def lora_name(spec: dict[str, Any]) -> str:
    """A LoRA as the story names it, for messages."""
    return spec["path"] + (f" ({spec['weight_name']})" if spec.get("weight_name") else "")


def _local(spec: dict[str, Any]) -> Path | None:
    """The LoRA's file when it is on this machine; `ModelNotFound` when the name can only be a missing local path;
    None for a hub repo."""
    name, weight_name = spec["path"], spec.get("weight_name")
    path = Path(name).expanduser()
    if path.is_dir():
        path = path / (weight_name or DEFAULT_WEIGHT_NAME)
    if path.is_file():
        return path.resolve()
    if name.lower().endswith(CHECKPOINT_SUFFIXES) or looks_local(name) or "/" not in name:
        raise ModelNotFound(f"LoRA {lora_name(spec)!r} not found: no such file ({path.resolve()})")
    return None


def _cached(spec: dict[str, Any]) -> Path | None:
    found = cached_file(spec["path"], spec.get("weight_name") or DEFAULT_WEIGHT_NAME)
    return found[0] if found is not None and found[0].is_file() else None


def lora_file(spec: dict[str, Any]) -> Path:
    """The local file of a LoRA: the file named, the weights file in a folder, or the hub file in the cache. Reads
    the disk only: a hub LoRA is fetched by `prepare` (see `lora_download`)."""
    found = _local(spec) or _cached(spec)
    if found is not None:
        return found
    offline = " and HF_HUB_OFFLINE=1 forbids downloading it" if hub_offline() else ""
    raise ModelNotFound(f"LoRA {lora_name(spec)!r} is not in the Hugging Face cache ({hub_cache_dir()}){offline}; "
                        f"download it with `hf download {spec['path']}` or give a local .safetensors file")


def lora_download(spec: dict[str, Any]) -> Callable[[], Path] | None:
    """How to fetch a hub LoRA the cache lacks; None when there is nothing to fetch (a local file, one in the
    cache, or a local path that is missing, which `lora_file` reports)."""
    try:
        if _local(spec) is not None or _cached(spec) is not None:
            return None
    except ModelNotFound:
        return None
    return lambda: download_lora(spec["path"], spec.get("weight_name") or DEFAULT_WEIGHT_NAME, lora_name(spec))


class LoadedLoras:
    """The LoRA files loaded into one pipeline, each once, as a named adapter."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.adapters: dict[Path, str] = {}  # LoRA file -> adapter name in the pipeline

    def use(self, job: PanelJob) -> None:
        """Activate exactly the LoRAs `job` lists, at its weights."""
        weights: dict[str, float] = {}
        for spec in dict(job.options).get("loras", []):
            path = lora_file(spec)
            if path not in self.adapters:
                self.adapters[path] = self._load(path, spec, job.model)
            name = self.adapters[path]
            weights[name] = weights.get(name, 0.0) + float(spec["weight"])
        if not self.adapters:
            return
        with quiet_libraries():
            if weights:
                self.pipe.enable_lora()
                self.pipe.set_adapters(list(weights), list(weights.values()))
            else:
                self.pipe.disable_lora()

    def _load(self, path: Path, spec: dict[str, Any], model: str) -> str:
        pipe, shown = self.pipe, lora_name(spec)
        if not hasattr(pipe, "load_lora_weights"):
            raise RenderError(f"LoRA {shown!r}: {type(pipe).__name__} ({model!r}) cannot load LoRAs")
        if importlib.util.find_spec("peft") is None:
            raise RenderError("LoRAs need the peft package: pip install peft")
        name = f"lora{len(self.adapters) + 1}"
        try:
            with quiet_libraries():
                pipe.load_lora_weights(str(path), adapter_name=name)
        except Exception as exc:
            if "size mismatch" in str(exc):
                raise RenderError(f"LoRA {shown!r} does not fit {model!r}: its layers have other sizes than the "
                                  f"model's (a LoRA for another model family?)") from None
            raise RenderError(f"LoRA {shown!r} does not fit {model!r} ({type(exc).__name__}: "
                              f"{first_line(exc)[:300]})") from None
        loaded = {n for names in pipe.get_list_adapters().values() for n in names}
        if name not in loaded:
            raise RenderError(f"LoRA {shown!r} does not fit {model!r}: none of its weights names a layer of "
                              f"{type(pipe).__name__} (a LoRA for another model family?)")
        return name
