"""Exporting a loaded pipeline's UNet and decoder to OpenVINO IR, once per model, LoRA set and library versions.

An export holds float32 weights whatever precision the panels are drawn in (the precision is a compile setting), so
a story drawn in bfloat16 and one in float32 share it. It is written to a temporary folder and renamed into place
with its `export.json` last: a folder with that file is complete, and an interrupted export leaves none. One export
runs at a time in a cache (holding its lock), so what a killed one left is known for what it is and removed by the
next.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from storyboard.errors import RenderError
from storyboard.files import exclusive_lock, user_cache_dir
from storyboard.hub import first_line, quiet_libraries

log = logging.getLogger("storyboard")

#: Changes whenever an export made by another version of this module would differ.
EXPORT_VERSION = "1"
#: The exported parts, each in a folder of its own: a story that changes only its autoencoder (`render.vae: tiny`)
#: exports only a decoder, one that changes its LoRAs only a UNet.
PARTS = ("unet", "decoder")
#: What of a panel's identity decides the weights of each part: the model's fingerprint, the LoRAs fused into the
#: UNet, the autoencoder the decoder comes from. Not the scheduler, the seed, the size or the precision.
MODEL = ("model", "sha256", "folder_sha256", "revision", "config")
LIBRARIES = ("openvino", "torch", "diffusers")
#: The files of a complete export; `export.json` is written last.
UNET, DECODER, UNET_CONFIG, DONE = "unet.xml", "decoder.xml", "unet_config.json", "export.json"
#: Latent sizes the graphs are traced at: odd, so that the UNet's upsampling follows its skip connections' sizes
#: (as it does for any size that is not a multiple of its overall scale) and the graph fits every panel size.
TRACED_SIZE = (9, 7)
_PART_NAMES = {"unet": "UNet", "decoder": "decoder"}
#: The scratch folder an export is written to: `.<part>-<digest>.<pid>`.
_SCRATCH = re.compile(r"^\.(?:unet|decoder)-[0-9a-f]{20}\.\d+$")


def export_key(identity: dict[str, Any], part: str) -> dict[str, Any]:
    """What the export of `part` is named by: the part of a panel's identity that decides its weights, and the
    library versions."""
    if part == "unet":
        fields = (*MODEL, "loras")
    else:  # the decoder: of the autoencoder `render.vae` names, else of the model's own
        fields = ("vae",) if "vae" in identity else MODEL
    key = {"part": part, **{name: identity[name] for name in fields if name in identity}, "export": EXPORT_VERSION}
    for library in LIBRARIES:
        try:
            key[library] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            key[library] = None
    return key


def export_folder(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return user_cache_dir() / "openvino" / f"{key['part']}-{digest}"


def is_complete(folder: Path) -> bool:
    return (folder / DONE).is_file()


def export(pipe: Any, model: str, parts: dict[str, tuple[dict[str, Any], Path]]) -> bool:
    """Write `pipe`'s `parts` (LoRAs fused already), each under its key into its folder, as OpenVINO IR; saying so
    before (it takes minutes and GBs for a real model) and after; `RenderError` when the disk lacks the room.

    One export at a time in a cache: a build that finds another one exporting waits for it, then exports only what
    is still missing. Whether it exported anything."""
    cache = next(iter(parts.values()))[1].parent
    with exclusive_lock(cache, "OpenVINO export", wait=True) as locked:
        if locked:
            remove_unfinished(cache)
        parts = {part: (key, folder) for part, (key, folder) in parts.items() if not is_complete(folder)}
        if not parts:
            return False
        _export(pipe, model, parts, cache)
        return True


def _export(pipe: Any, model: str, parts: dict[str, tuple[dict[str, Any], Path]], cache: Path) -> None:
    modules = {"unet": lambda: pipe.unet, "decoder": lambda: pipe.vae.decoder}
    needed = sum(_weight_bytes(modules[part]()) for part in parts)
    older = [(key, *found) for key, _ in parts.values() for found in superseded(key, cache)]
    free = shutil.disk_usage(cache).free
    if free < needed * 1.2:
        hint = (f"; {_count(len(older), 'earlier export')} of it for other library versions "
                f"{'take' if len(older) > 1 else 'takes'} {_gb(sum(found[-1] for found in older))} there"
                if older else "")
        raise RenderError(f"not enough free disk for the OpenVINO export of {model!r}: it needs about "
                          f"{_gb(needed)} in {cache}, which has {_gb(free)} free{hint}; free some space or set "
                          f"STORYBOARD_CACHE_DIR to a disk with room")
    loras = parts.get("unet", ({}, None))[0].get("loras")
    with_loras = f" with LoRAs {', '.join(str(lora.get('sha256', ''))[:10] for lora in loras)}" if loras else ""
    names = " and ".join(f"its {_PART_NAMES[part]}" for part in parts)
    log.warning("exporting %s of %r%s to OpenVINO once, into %s: for a full-size model this takes minutes, memory "
                "about twice its size and %s of disk", names, model, with_loras, cache, _gb(needed))
    started = time.perf_counter()
    for part, (key, folder) in parts.items():
        _export_part(pipe, part, key, folder, model)
    log.warning("exported to OpenVINO in %.0f s", time.perf_counter() - started)
    for key, folder, other, size in older:
        made_for = " and ".join(f"{name} {other.get(name)}" if name != "export" else "an older export format"
                                for name in (*LIBRARIES, "export") if other.get(name) != key.get(name))
        log.warning("an earlier export of the %s of %r, made for %s, is still in %s (%s): delete that folder when "
                    "no other installation of storyboard uses it", _PART_NAMES[key["part"]], model, made_for, folder,
                    _gb(size))


def remove_unfinished(cache: Path) -> None:
    """Remove the scratch folders that exports killed outright left (one that fails or is interrupted removes its
    own), saying how much that frees. Only while holding the cache's lock: then no export is running."""
    found = [path for path in cache.iterdir() if _SCRATCH.match(path.name) and path.is_dir()]
    if found:
        freed = sum(folder_size(path) for path in found)
        for path in found:
            shutil.rmtree(path, ignore_errors=True)
        log.warning("removed %s that a stopped build left in %s (%s)", _count(len(found), "unfinished OpenVINO export"),
                    cache, _gb(freed))


def superseded(key: dict[str, Any], cache: Path) -> list[tuple[Path, dict[str, Any], int]]:
    """The complete exports in `cache` of what `key` names, made for other library versions (or by an older
    version of this module), with their keys and sizes: of no use to this installation, though maybe to another."""
    def same(other: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in other.items() if name not in (*LIBRARIES, "export")}

    found = []
    for folder in sorted(cache.glob(f"{key['part']}-*")):
        try:
            other = json.loads((folder / DONE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(other, dict) and other != key and same(other) == same(key):
            found.append((folder, other, folder_size(folder)))
    return found


def folder_size(folder: Path) -> int:
    size = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):  # removed meanwhile
            size += path.stat().st_size if path.is_file() else 0
    return size


def _export_part(pipe: Any, part: str, key: dict[str, Any], folder: Path, model: str) -> None:
    scratch = folder.with_name(f".{folder.name}.{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        if part == "unet":
            _save(_converted_unet(pipe), scratch / UNET)
            (scratch / UNET_CONFIG).write_text(json.dumps(unet_config(pipe.unet), indent=1), encoding="utf-8")
        else:
            _save(_converted_decoder(pipe.vae), scratch / DECODER)
        (scratch / DONE).write_text(json.dumps(key, sort_keys=True, indent=1), encoding="utf-8")
        try:
            scratch.rename(folder)
        except OSError:
            if not is_complete(folder):  # not another build's finished export of the same key
                raise
    except Exception as exc:
        if isinstance(exc, RenderError):
            raise
        raise RenderError(f"cannot export {model!r} to OpenVINO ({type(exc).__name__}: "
                          f"{first_line(exc)[:300]})") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _gb(size: float) -> str:
    return f"{size / 2**30:.1f} GB" if size >= 2**30 / 10 else f"{size / 2**20:.0f} MB"


def _weight_bytes(module: Any) -> int:
    return sum(p.numel() * 4 for p in module.parameters())


def _save(model: Any, path: Path) -> None:
    import openvino

    openvino.save_model(model, str(path), compress_to_fp16=False)


@contextlib.contextmanager
def _tracing() -> Any:
    """Tracing warns about every Python branch on a shape; those of diffusers' models are known and fit."""
    with quiet_libraries(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def unet_config(unet: Any) -> dict[str, Any]:
    """What the pipeline reads of its UNet, besides calling it: its config, and the size of SDXL's added
    embedding's input (checked against the time ids it makes). Kept beside the export, so that drawing from it
    loads no UNet at all."""
    config = dict(unet.config)
    embedding = getattr(unet, "add_embedding", None)
    if embedding is not None:
        config["add_embedding_in_features"] = embedding.linear_1.in_features
    return config


def read_unet_config(folder: Path) -> dict[str, Any]:
    return json.loads((folder / UNET_CONFIG).read_text(encoding="utf-8"))


def unet_inputs(config: Any) -> dict[str, list[int]]:
    """The UNet graph's inputs and their shapes (-1 where they vary): those its config says the pipeline passes."""
    inputs = {"sample": [-1, int(config.in_channels), -1, -1], "timestep": [],
              "encoder_hidden_states": [-1, -1, int(config.cross_attention_dim)]}
    if config.get("addition_embed_type") == "text_time":
        inputs["text_embeds"] = [-1, int(config.projection_class_embeddings_input_dim)
                                 - 6 * int(config.addition_time_embed_dim)]
        inputs["time_ids"] = [-1, 6]
    if config.get("time_cond_proj_dim"):
        inputs["timestep_cond"] = [-1, int(config.time_cond_proj_dim)]
    return inputs


def _converted_unet(pipe: Any) -> Any:
    import torch

    unet = pipe.unet
    inputs = unet_inputs(unet.config)
    example = {name: torch.randn(_example_shape(shape)) if shape else torch.tensor(999.0)
               for name, shape in inputs.items()}

    class Traced(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, sample: Any, timestep: Any, encoder_hidden_states: Any, text_embeds: Any = None,
                    time_ids: Any = None, timestep_cond: Any = None) -> Any:
            added = {"text_embeds": text_embeds, "time_ids": time_ids} if text_embeds is not None else None
            return self.unet(sample, timestep, encoder_hidden_states, timestep_cond=timestep_cond,
                             added_cond_kwargs=added, return_dict=False)[0]

    return _convert(Traced().eval(), example, inputs)


def _converted_decoder(vae: Any) -> Any:
    import torch

    channels = int(vae.config.latent_channels)
    decoder = vae.decoder

    class Traced(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = decoder

        def forward(self, latents: Any) -> Any:
            return self.decoder(latents)

    return _convert(Traced().eval(), {"latents": torch.randn(1, channels, *TRACED_SIZE)},
                    {"latents": [-1, channels, -1, -1]})


def _convert(module: Any, example: dict[str, Any], inputs: dict[str, list[int]]) -> Any:
    """`module` traced at `example` and converted, its inputs named and shaped as `inputs` says. The trace is not
    run a second time to check it (torch's default, most of the tracing time): the tests compare the converted
    graphs' pictures with diffusers' own."""
    import openvino
    import torch
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    with _tracing(), torch.no_grad():
        traced = TorchScriptPythonDecoder(module, example_input=example, trace_kwargs={"check_trace": False})
        return openvino.convert_model(traced, example_input=example,
                                      input={name: openvino.PartialShape(shape) for name, shape in inputs.items()})


def _example_shape(shape: list[int]) -> list[int]:
    """A traced example of an input: batch 2, the odd latent size, 77 tokens."""
    if len(shape) == 4:
        return [2, shape[1], *TRACED_SIZE]
    if len(shape) == 3:
        return [2, 77, shape[2]]
    return [2, shape[1]]
