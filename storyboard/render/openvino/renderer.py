"""`--renderer openvino`: the diffusers renderer with its UNet and decoder exported to OpenVINO and compiled for the
CPU (see the package docstring)."""

from __future__ import annotations

import dataclasses
import gc
import importlib.metadata
import importlib.util
import json
from collections.abc import Sequence
from typing import Any

from storyboard.errors import RenderError
from storyboard.hub import quiet_libraries
from storyboard.render import Reference, Rendered, StepCallback
from storyboard.render.diffusers.device import cpu_has_bfloat16, resolve_dtype
from storyboard.render.diffusers.load import open_pipeline
from storyboard.render.diffusers.locate import locate, locate_config, pipeline_class_name
from storyboard.render.diffusers.loras import LoadedLoras
from storyboard.render.diffusers.renderer import DiffusersRenderer
from storyboard.render.openvino.ir import (
    DECODER,
    PARTS,
    UNET,
    export,
    export_folder,
    export_key,
    is_complete,
    read_unet_config,
)
from storyboard.resolve import PanelJob

INSTALL_HINT = "pip install 'storyboard[openvino]'"
#: The pipelines whose UNet and decoder are exported: Stable Diffusion 1.x/2.x, SDXL, and latent-consistency
#: (LCM) distillations of them. FLUX, SD3 and Kolors are not.
EXPORTABLE = frozenset({"StableDiffusionPipeline", "StableDiffusionXLPipeline", "LatentConsistencyModelPipeline"})


class OpenVinoRenderer(DiffusersRenderer):
    """Draws panels on the CPU with OpenVINO, through diffusers' pipeline and schedulers."""

    name = "openvino"
    # A compiled graph has no place for reference attention or an IP-Adapter: panels are drawn from their prompts
    # alone, and the build says so once.
    reads_references = False
    applies_loras = True  # fused into the export

    def __init__(self) -> None:
        if importlib.util.find_spec("openvino") is None:
            raise RenderError(f"the openvino renderer needs OpenVINO, which is not installed: {INSTALL_HINT}")
        super().__init__()
        self.exports = 0  # how many exports this renderer made; a model is exported once, then read from the cache
        self._core: Any = None

    def identity(self, job: PanelJob) -> dict[str, Any]:
        return {**super().identity(job), "device": "cpu", "dtype": precision(job),
                "openvino": importlib.metadata.version("openvino")}

    def _draw(self, pipe: Any, job: PanelJob, on_step: StepCallback | None,
              references: Sequence[Reference] = ()) -> Rendered:
        return super()._draw(self._load(job), job, on_step, references)

    def _load(self, job: PanelJob) -> Any:
        """The pipeline for `job`, its LoRAs fused: the one loaded already when it holds the same export."""
        identity = self.identity(job)
        parts = {part: export_key(identity, part) for part in PARTS}
        wanted = (json.dumps(parts, sort_keys=True), identity["dtype"], dict(job.options).get("safety_checker", True),
                  dict(job.options).get("vae_tiling", False))
        if self.pipeline is not None and self._loaded_for == wanted:
            return self.pipeline
        self.unload()
        _check_exportable(job)
        import openvino
        import torch

        from storyboard.render.diffusers.scheduler import Schedulers
        from storyboard.render.openvino.compiled import CompiledDecoder, CompiledUnet, Graph

        folders = {part: export_folder(key) for part, key in parts.items()}
        missing = {part: (parts[part], folder) for part, folder in folders.items() if not is_complete(folder)}
        # LoRAs are fused into the text encoders too, which takes the UNet they were made for: loaded even when its
        # export is there already.
        unneeded = ("unet",) if "unet" not in missing and not parts["unet"].get("loras") else ()
        pipe, _ = open_pipeline(_in_float32(job), locate(job.model), without=unneeded)
        _fuse_loras(pipe, job)
        if missing and export(pipe, job.model, missing):
            self.exports += 1
        if self._core is None:
            self._core = openvino.Core()
        unet, decoder = folders["unet"], folders["decoder"]
        pipe.unet = CompiledUnet(Graph(self._core, unet / UNET, identity["dtype"]), read_unet_config(unet))
        pipe.vae.decoder = CompiledDecoder(Graph(self._core, decoder / DECODER, identity["dtype"]))
        gc.collect()
        self.pipeline, self._loaded_for, self._device, self._adapter = pipe, wanted, torch.device("cpu"), None
        self._schedulers, self._loras = Schedulers(pipe), _FusedLoras()
        self.loads += 1
        return pipe


def precision(job: PanelJob) -> str:
    """The precision `job`'s `render.dtype` means here: `auto` is bfloat16 on a CPU that computes it natively, else
    float32; float16 is not offered, and bfloat16 only where the CPU has it (OpenVINO would draw float32)."""
    setting = dict(job.runtime).get("dtype", "auto")
    dtype = resolve_dtype(setting, "cpu")
    if dtype == "float16":
        raise RenderError("render.dtype float16: the openvino renderer draws in float32 or bfloat16 (auto picks "
                          "bfloat16 where the CPU computes it natively)")
    if dtype == "bfloat16" and not cpu_has_bfloat16():
        raise RenderError("render.dtype bfloat16: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX), so "
                          "OpenVINO would draw float32; set render.dtype to float32 or auto")
    return dtype


def _check_exportable(job: PanelJob) -> None:
    source = locate(job.model)
    config = dict(job.options).get("config")
    name = pipeline_class_name(locate_config(config) if config and source.kind == "file" else source)
    if name not in EXPORTABLE:
        raise RenderError(f"the openvino renderer draws Stable Diffusion 1.x/2.x and SDXL models; {job.model!r} is "
                          f"a {name or 'pipeline of an unknown class'}: draw it with --renderer diffusers")


def _in_float32(job: PanelJob) -> PanelJob:
    """`job` as loaded for export: float32 weights on the CPU (the precision is chosen when compiling)."""
    runtime = {**dict(job.runtime), "device": "cpu", "dtype": "float32", "cpu_offload": False}
    return dataclasses.replace(job, runtime=tuple(sorted(runtime.items())))


def _fuse_loras(pipe: Any, job: PanelJob) -> None:
    """Fuse `job`'s LoRAs, at their weights, into the UNet (before it is exported) and the text encoders."""
    loras = LoadedLoras(pipe)
    loras.use(job)
    if not loras.adapters:
        return
    with quiet_libraries():
        pipe.fuse_lora(adapter_names=list(loras.adapters.values()))
        pipe.unload_lora_weights()


class _FusedLoras:
    """The LoRAs of a loaded export: fused into it, so there is nothing to switch per panel (a panel with another
    LoRA set is drawn from another export: see `OpenVinoRenderer._load`)."""

    def use(self, job: PanelJob) -> None:
        pass
