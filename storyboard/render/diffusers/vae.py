"""The autoencoder a panel is decoded with (`render.vae`): the model's own (unset), `tiny` (the tiny autoencoder
made for the model's family: TAESD for SD 1.x/2.x, TAESDXL for SDXL and Kolors, TAESD3, TAEF1), or a hub id or
local folder holding a diffusers autoencoder (`AutoencoderTiny` or `AutoencoderKL`, as its config.json names it).

A tiny autoencoder decodes a 512×512 latent in a fraction of a second where the model's own takes seconds on a CPU,
at the cost of fine detail: for fast drafts. Found on disk or in the hub cache without torch, like the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.errors import ModelNotFound, RenderError
from storyboard.hub import cached_snapshot, first_line, hub_cache_dir, hub_offline, looks_local, quiet_libraries
from storyboard.render.diffusers.download import download_vae
from storyboard.render.diffusers.families import Family, family_for
from storyboard.render.diffusers.locate import (
    folder_fingerprint,
    locate,
    locate_config,
    model_stamp,
    pipeline_class_name,
)
from storyboard.render.diffusers.locate import not_cached as model_missing
from storyboard.resolve import PanelJob

CONFIG = "config.json"
CLASSES = ("AutoencoderTiny", "AutoencoderKL")


@dataclass(frozen=True)
class VaeSource:
    """The autoencoder `render.vae` names for one model family."""

    setting: str  # as the story gives it: "tiny", a hub id or a folder
    name: str  # the hub id or folder it means
    kind: str  # "hub" or "folder"
    path: Path | None = None  # the folder, or the cached snapshot
    revision: str | None = None


def job_vae(job: PanelJob) -> VaeSource | None:
    """The autoencoder `job` is decoded with, None for the model's own."""
    options = dict(job.options)
    return vae_source(options["vae"], job.model, options.get("config")) if options.get("vae") else None


def vae_source(setting: str, model: str, config: str | None = None) -> VaeSource:
    """Where the autoencoder `setting` names for `model` is. `tiny` is chosen by the pipeline class the model (or,
    for a checkpoint file, its render.config) names, so the model must be on disk."""
    source = locate(model)
    if source.kind == "hub" and source.path is None:
        raise model_missing(source.name)
    pipeline = pipeline_class_name(locate_config(config) if config and source.kind == "file" else source)
    if setting == "tiny" and not pipeline:
        raise RenderError(f"render.vae: tiny picks the tiny autoencoder made for the model's family, which "
                          f"{model!r} does not name; set render.config to its diffusers configs, or render.vae "
                          f"to the autoencoder itself (madebyollin/taesd for SD 1.x/2.x, madebyollin/taesdxl for "
                          f"SDXL)")
    return locate_vae(setting, family_for(pipeline))


def vae_stamp(job: PanelJob) -> tuple[Any, ...]:
    """What changes when the autoencoder `job` names changes on disk, read cheaply (see `identity_memo`)."""
    try:
        source = job_vae(job)
    except RenderError as exc:
        return ("missing", str(exc))
    if source is None:
        return ()
    if source.kind == "folder":
        return (source.name, model_stamp(str(source.path)))
    return (source.name, source.revision)


def vae_name(setting: str, family: Family) -> str:
    """The hub id or folder `setting` means for `family`: `tiny` is the family's tiny autoencoder."""
    return family.tiny_vae if setting == "tiny" else setting


def locate_vae(setting: str, family: Family) -> VaeSource:
    """Where the autoencoder is, from disk alone; `path` is None for a hub id the cache lacks."""
    name = vae_name(setting, family)
    path = Path(name).expanduser()
    if path.is_dir():
        return VaeSource(setting, name, "folder", path.resolve())
    if looks_local(name) or "/" not in name:
        raise ModelNotFound(f"render.vae {setting!r} not found: no such folder ({path.resolve()}); use tiny, a hub "
                            f"id such as madebyollin/taesd, or a local folder holding an autoencoder's {CONFIG}")
    cached = cached_snapshot(name, CONFIG)
    return VaeSource(setting, name, "hub", *(cached or (None, None)))


def vae_identity(source: VaeSource) -> dict[str, Any]:
    """What of the autoencoder decides the pixels: its hub commit, or its folder's fingerprint. Raises
    `ModelNotFound` for one that is not on disk (fetching is `prepare`'s or `storyboard download`'s)."""
    if source.kind == "folder":
        return {"model": source.name, "folder_sha256": folder_fingerprint(source.path)}
    if source.path is None:
        raise not_cached(source)
    return {"model": source.name, "revision": source.revision}


def not_cached(source: VaeSource) -> ModelNotFound:
    what = f"the tiny autoencoder {source.name!r} (render.vae: tiny)" if source.setting == "tiny" else \
        f"render.vae {source.name!r}"
    offline = " and HF_HUB_OFFLINE=1 forbids downloading it" if hub_offline() else ""
    return ModelNotFound(f"{what} is not in the Hugging Face cache ({hub_cache_dir()}){offline}; download it with "
                         f"`storyboard download STORY.yaml` or `hf download {source.name}`, or remove render.vae")


def vae_download(source: VaeSource) -> Callable[[], Path] | None:
    """How to fetch a hub autoencoder the cache lacks; None when there is nothing to fetch."""
    if source.kind != "hub" or source.path is not None:
        return None
    name = source.name
    return lambda: download_vae(name)


def download_story_models(model: str, vae: str | None, config: str | None = None) -> list[tuple[str, Path]]:
    """Download a story's model (a hub id) and the autoencoder its render.vae names into the hub cache; return each
    hub id with its snapshot folder (`storyboard download STORY.yaml`). A local model is left alone when there is
    an autoencoder to fetch."""
    from storyboard.render.diffusers.download import download

    fetched = []
    if vae is None or locate(model).kind == "hub":
        fetched.append((model, download(model)))
    if vae is not None:
        source = vae_source(vae, model, config)
        if source.kind != "hub":
            if not fetched:
                raise ModelNotFound(f"model {model!r} and render.vae {vae!r} are local folders; there is nothing "
                                    f"to download")
        else:
            fetched.append((source.name, download_vae(source.name)))
    return fetched


def load_vae(source: VaeSource, dtype: Any) -> Any:
    """The autoencoder, loaded with the class its config.json names, in `dtype`."""
    import diffusers

    if source.path is None:
        raise not_cached(source)
    try:
        class_name = json.loads((source.path / CONFIG).read_text(encoding="utf-8")).get("_class_name", "")
    except (OSError, ValueError, AttributeError) as exc:
        raise RenderError(f"cannot load render.vae {source.name!r}: its {CONFIG} cannot be read "
                          f"({type(exc).__name__}: {first_line(exc)})") from None
    if class_name not in CLASSES:
        raise RenderError(f"render.vae {source.name!r} is a {class_name or 'folder without a class name'}, not an "
                          f"autoencoder ({' or '.join(CLASSES)})")
    try:
        with quiet_libraries():
            return getattr(diffusers, class_name).from_pretrained(str(source.path), torch_dtype=dtype,
                                                                  local_files_only=True)
    except Exception as exc:
        raise RenderError(f"cannot load render.vae {source.name!r} ({type(exc).__name__}: {first_line(exc)})") \
            from None
