"""Loading a pipeline: from a diffusers folder or cached hub snapshot (`from_pretrained`), or from a single checkpoint
file with the configs of a diffusers pipeline (`from_single_file`). Everything it reads is on disk already
(`prepare` fetched it): loading never downloads.

The pipeline class comes from the model itself, its model_index.json (or, for a checkpoint file, that of its
configs): SD 1.x/2.x, SDXL, Kolors, FLUX, SD3... A model that is not there is `ModelNotFound`; anything else that
fails while loading is a `RenderError` that names the exception, since it is not the user's missing model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.util
import inspect
from collections.abc import Iterator
from typing import Any

from storyboard.errors import ModelNotFound, RenderError
from storyboard.hub import causes, first_line, hub_offline, quiet_libraries
from storyboard.render.diffusers.device import resolve_dtype, torch_device
from storyboard.render.diffusers.download import download_configs
from storyboard.render.diffusers.locate import (
    ModelSource,
    check_model_index,
    fix_hint,
    locate_config,
    read_model_index,
)
from storyboard.render.diffusers.vae import job_vae, load_vae
from storyboard.resolve import PanelJob

LOW_VRAM_HINT = ("set cpu_offload: true, attention_slicing: true and vae_tiling: true under render: in the story "
                 "(or lower width/height)")
#: What the libraries raise when a file of the model is not where it should be.
MISSING_FILE_ERRORS = {"FileNotFoundError", "EntryNotFoundError", "LocalEntryNotFoundError"}
MISSING_FILE_WORDS = ("no file named", "does not appear to have a file named")


def open_pipeline(job: PanelJob, source: ModelSource, without: tuple[str, ...] = ()) -> tuple[Any, Any]:
    """Load the pipeline `job` is drawn with onto its device, with the memory settings it asks for; return it and
    the torch device. The components named in `without` are not loaded (left None), for a caller that brings its
    own."""
    with collector_paused():
        return _open_pipeline(job, source, without)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with Python's cyclic garbage collector paused.

    Importing torch and diffusers and loading a pipeline the first time makes hundreds of thousands of objects,
    nearly all of them kept. The collector runs after every 700 new objects and, as the heap grows, walks all of
    it every so often: several times over while torch and diffusers are imported, about a second of a CPU, for
    little garbage. Paused, it finds that garbage the next time it runs.
    """
    if not gc.isenabled():  # someone else's pause: theirs to end
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _open_pipeline(job: PanelJob, source: ModelSource, without: tuple[str, ...]) -> tuple[Any, Any]:
    options, runtime = dict(job.options), dict(job.runtime)
    if runtime.get("cpu_offload") and importlib.util.find_spec("accelerate") is None:
        raise RenderError("cpu_offload needs the accelerate package: pip install accelerate")
    import torch

    device = torch_device(runtime.get("device", "auto"))
    dtype = getattr(torch, resolve_dtype(runtime.get("dtype", "auto"), device.type))
    safety_checker = options.get("safety_checker", True)
    vae = job_vae(job)
    components: dict[str, Any] = {"vae": load_vae(vae, dtype)} if vae is not None else {}
    components.update(dict.fromkeys(without))
    with quiet_libraries():
        if source.kind == "file":
            pipe = load_single_file(source, options.get("config"), dtype, safety_checker, components)
        else:
            pipe = load_pretrained(source, dtype, safety_checker, components)
        if runtime.get("cpu_offload") and device.type != "cpu":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
    if options.get("attention_slicing"):
        pipe.enable_attention_slicing()
    vae = getattr(pipe, "vae", None)
    if options.get("vae_tiling") and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    if runtime.get("vae_slicing") and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()
    pipe.set_progress_bar_config(disable=True)
    return pipe, device


def load_pretrained(source: ModelSource, dtype: Any, safety_checker: bool,
                    components: dict[str, Any] | None = None) -> Any:
    """A diffusers folder or cached hub snapshot (`source.path`), loaded with the class its model_index.json names;
    `components` (e.g. another autoencoder) take the place of the model's own."""
    import diffusers

    index = check_model_index(source)
    cls = pipeline_class(diffusers, index)
    try:
        return cls.from_pretrained(str(source.path), torch_dtype=dtype, local_files_only=True,
                                   **pipeline_kwargs(cls, index, safety_checker), **(components or {}))
    except Exception as exc:
        raise load_error(source, exc) from None


def load_single_file(source: ModelSource, config: str | None, dtype: Any, safety_checker: bool,
                     components: dict[str, Any] | None = None) -> Any:
    """A checkpoint file, with the configs of `config` (render.config), or of the pipeline diffusers recognises
    from the checkpoint's keys."""
    import diffusers

    example = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    if config is None:
        config = example = _guessed_config(source)
    config_source = locate_config(config)
    if config_source.path is None:
        if hub_offline():
            raise ModelNotFound(
                f"checkpoint {source.name!r} needs the configs of {config!r}, which are not in the Hugging Face "
                f"cache and HF_HUB_OFFLINE=1 forbids downloading them; set render.config in the story to a local "
                f"diffusers folder or a cached hub id (e.g. after `hf download {example} --include '*.json' "
                f"'*.txt'`), or use --renderer draft")
        config_source = dataclasses.replace(config_source, path=download_configs(config))
    index = read_model_index(config_source.path)
    if not index.get("_class_name"):
        raise ModelNotFound(f"render.config {config!r} has no model_index.json naming a pipeline class, so it is "
                            f"not a diffusers pipeline; set it to a diffusers folder or hub id")
    cls = pipeline_class(diffusers, index)
    if not hasattr(cls, "from_single_file"):
        raise RenderError(f"{cls.__name__} (from {config!r}) cannot load single-file checkpoints; "
                          f"use a diffusers folder or hub id as render.model")
    try:
        return cls.from_single_file(str(source.path), config=str(config_source.path), torch_dtype=dtype,
                                    local_files_only=True, **pipeline_kwargs(cls, index, safety_checker),
                                    **(components or {}))
    except Exception as exc:
        raise load_error(source, exc) from None


def _guessed_config(source: ModelSource) -> str:
    """The hub id of the pipeline whose configs diffusers would load the checkpoint with, from its keys."""
    from diffusers.loaders.single_file_utils import fetch_diffusers_config, load_single_file_checkpoint

    try:
        return str(fetch_diffusers_config(load_single_file_checkpoint(str(source.path)))
                   ["pretrained_model_name_or_path"])
    except Exception as exc:
        raise RenderError(f"cannot read checkpoint {source.name!r}: {first_line(exc)}") from None


def pipeline_class(diffusers: Any, index: dict[str, Any]) -> Any:
    return getattr(diffusers, str(index.get("_class_name", "")), None) or diffusers.DiffusionPipeline


def pipeline_kwargs(cls: Any, index: dict[str, Any], safety_checker: bool) -> dict[str, Any]:
    """Turn off a shipped safety checker only if the pipeline class has one to turn off."""
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    if not safety_checker and "safety_checker" in params and (index.get("safety_checker") or [None])[0]:
        kwargs["safety_checker"] = None
        kwargs["feature_extractor"] = None
        if "requires_safety_checker" in params:
            kwargs["requires_safety_checker"] = False
    return kwargs


def is_out_of_memory(exc: BaseException) -> bool:
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def load_error(source: ModelSource, exc: BaseException) -> RenderError:
    """What went wrong while loading, as one line: a model (or a file of it) that is not there is `ModelNotFound`
    with what to do; anything else is reported as the exception it is."""
    if is_out_of_memory(exc):
        return RenderError(f"out of GPU memory while loading {source.name!r}; {LOW_VRAM_HINT}")
    names, _ = causes(exc)
    if names & MISSING_FILE_ERRORS or isinstance(exc, OSError) and any(w in str(exc) for w in MISSING_FILE_WORDS):
        return ModelNotFound(f"cannot load model {source.name!r} ({type(exc).__name__}: {first_line(exc)}); "
                             f"{fix_hint(source.name if source.kind == 'hub' else None)}")
    return RenderError(f"cannot load model {source.name!r} ({type(exc).__name__}: {first_line(exc)})")
