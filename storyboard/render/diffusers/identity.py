"""What decides a diffusers panel's pixels beyond its job: the renderer's version, the libraries', the model's
fingerprint (hub commit, folder configs and stamps, checkpoint sha256), the scheduler, device class and dtype, the
LoRA and IP-Adapter files, and the autoencoder `render.vae` names. Read from disk alone: no torch, no diffusers, no
network (see `prepare`)."""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

from storyboard.render.diffusers.device import probe_device, resolve_dtype
from storyboard.render.diffusers.families import family_for
from storyboard.render.diffusers.ip_adapter import adapter_identity
from storyboard.render.diffusers.locate import (
    file_sha256,
    locate,
    locate_config,
    model_identity,
    model_stamp,
    not_cached,
    pipeline_class_name,
)
from storyboard.render.diffusers.loras import lora_file
from storyboard.render.diffusers.scheduler import effective_scheduler, sampler_label
from storyboard.render.diffusers.vae import job_vae, vae_identity, vae_stamp
from storyboard.resolve import PanelJob

VERSION = "1"


def identity_of(job: PanelJob, renderer: str) -> dict[str, Any]:
    """The identity of `job`'s pixels (see the module docstring). A model that cannot be found cannot be
    identified: this raises, so that the build reuses the panels it drew from it before (their keys are in the last
    manifest) and reports it only if one must be drawn."""
    options, runtime = dict(job.options), dict(job.runtime)
    config = options.get("config")
    device = probe_device(runtime.get("device", "auto"))
    source = locate(job.model)
    if source.kind == "hub" and source.path is None:
        raise not_cached(source.name)
    config_source = locate_config(config) if config and source.kind == "file" else None
    scheduler = effective_scheduler(job, family_for(pipeline_class_name(config_source or source)))
    identity: dict[str, Any] = {
        "renderer": renderer,
        "version": VERSION,
        "diffusers": _package_version("diffusers"),
        "torch": _package_version("torch"),
        **model_identity(source),
        "scheduler": scheduler,
        "sampler": sampler_label(scheduler, source),
        "device": device,
        "dtype": resolve_dtype(runtime.get("dtype", "auto"), device),
    }
    if config_source is not None:
        identity["config"] = model_identity(config_source)
    if options.get("loras"):
        identity["loras"] = [{"sha256": file_sha256(lora_file(spec)), "weight": spec["weight"]}
                             for spec in options["loras"]]
    if options.get("consistency") == "ip_adapter":
        identity["ip_adapter"] = adapter_identity(options["ip_adapter"])
    vae = job_vae(job)
    if vae is not None:
        identity["vae"] = vae_identity(vae)
    return identity


def identity_memo(job: PanelJob) -> tuple[Any, ...]:
    """When `identity_of(job)` may be remembered: for the job's settings and its files as they are now. A folder
    saved again, a new hub snapshot, another checkpoint, LoRA, IP-Adapter file or autoencoder under the same name
    gives a new one, in a session that keeps the renderer for hours."""
    options = dict(job.options)
    config = options.get("config")
    extra_files = [spec["path"] for spec in options.get("loras") or []] + [options.get("ip_adapter") or ""]
    return (job.model, json.dumps(job.options, sort_keys=True, default=str), job.runtime,
            model_stamp(job.model), config and model_stamp(config),
            tuple(model_stamp(name) for name in extra_files if name), vae_stamp(job))


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
