"""What a build needs fetched before it keys its jobs (`DiffusersRenderer.prepare`), and what could not be.

Fetching everything a build's jobs name before keying them lets the keys name the commits the panels are drawn with
(so the next build reuses them), and leaves `identity()` a cheap, offline read of the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from storyboard.errors import ModelNotFound, RenderError
from storyboard.hub import hub_offline
from storyboard.render.diffusers.download import download, download_configs
from storyboard.render.diffusers.ip_adapter import adapter_download
from storyboard.render.diffusers.locate import locate, locate_config
from storyboard.render.diffusers.loras import lora_download, lora_name
from storyboard.render.diffusers.vae import job_vae, vae_download
from storyboard.resolve import PanelJob


class Downloads:
    """What the last `fetch` could not download, by the name the story gives it.

    `fetch` raises nothing for a model it cannot download: a build whose model is unreachable may still reuse the
    panels it drew before (see `storyboard.building.keys.Keying`), and it learns that from `identity()`, which
    raises the kept error (`raise_failed`) for the jobs that need that model.
    """

    def __init__(self) -> None:
        self.failed: dict[str, RenderError] = {}

    def fetch(self, jobs: Sequence[PanelJob]) -> None:
        """Download what `jobs` need and the cache lacks; nothing at all with HF_HUB_OFFLINE=1."""
        self.failed = {}
        if hub_offline():
            return
        done: set[str] = set()
        for job in jobs:
            for name, fetch in _missing(job):
                if name in done:
                    continue
                done.add(name)
                try:
                    fetch()
                except RenderError as exc:
                    self.failed[name] = exc

    def raise_failed(self, job: PanelJob) -> None:
        """Raise the error of the first download `job` needs that failed in the last `fetch`."""
        for name in _needs(job):
            if name in self.failed:
                raise self.failed[name]


def _needs(job: PanelJob) -> Iterator[str]:
    """The names of what drawing `job` reads: its model, config, LoRAs, IP-Adapter and autoencoder, as the story
    gives them."""
    options = dict(job.options)
    yield job.model
    if options.get("config"):
        yield options["config"]
    for spec in options.get("loras") or []:
        yield lora_name(spec)
    if options.get("consistency") == "ip_adapter" and options.get("ip_adapter"):
        yield options["ip_adapter"]
    if options.get("vae"):
        yield "vae:" + options["vae"]


def _missing(job: PanelJob) -> Iterator[tuple[str, Callable[[], Any]]]:
    """(name, how to fetch it) for each hub file `job` needs that is not in the cache. A name that points nowhere
    is left to `identity()`, which says so."""
    options = dict(job.options)
    try:
        source = locate(job.model)
        if source.kind == "hub" and source.path is None:
            yield job.model, lambda: download(job.model)
        config = options.get("config")
        if config and source.kind == "file":
            config_source = locate_config(config)
            if config_source.kind == "hub" and config_source.path is None:
                yield config, lambda: download_configs(config)
    except ModelNotFound:
        pass
    for spec in options.get("loras") or []:
        fetch = lora_download(spec)
        if fetch is not None:
            yield lora_name(spec), fetch
    if options.get("consistency") == "ip_adapter" and options.get("ip_adapter"):
        fetch = adapter_download(options["ip_adapter"])
        if fetch is not None:
            yield options["ip_adapter"], fetch
    try:  # after the model's own fetch above: `tiny` is chosen by the model's family
        vae = job_vae(job)
    except RenderError:
        vae = None
    fetch = vae_download(vae) if vae is not None else None
    if fetch is not None:
        yield "vae:" + options["vae"], fetch
