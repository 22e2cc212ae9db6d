"""IP-Adapter consistency: a panel takes its characters' anchor portraits as image prompts.

`render.ip_adapter` names the weights: a hub path ``owner/repo/subfolder/file.safetensors`` (as h94/IP-Adapter lays
them out, with the CLIP image encoder in ``<subfolder>/image_encoder``) or a local weights file with an
``image_encoder`` folder beside it. They are loaded once per pipeline with diffusers' `load_ip_adapter`; panels that
read no anchor are drawn with the adapter detached, so they keep exactly the pixels they have without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.errors import ModelNotFound, RenderError
from storyboard.hub import HUB_ID, cached_file, first_line, hub_cache_dir, hub_offline, quiet_libraries
from storyboard.render.diffusers.download import download_adapter
from storyboard.render.diffusers.locate import file_sha256

ENCODER_FOLDER = "image_encoder"


@dataclass(frozen=True)
class AdapterSource:
    spec: str  # as the story names it
    root: str  # a local folder or a hub repo id
    subfolder: str
    weight_name: str
    local: Path | None  # the weights file, when it is on disk (a local file or a cached hub file)
    revision: str | None = None  # hub: the commit of the cached snapshot


def locate_adapter(spec: str) -> AdapterSource:
    """Find the IP-Adapter weights `spec` names, without the network; raise `ModelNotFound` with the fix."""
    source = _source(spec)
    if source.local is None:
        repo, rest = source.root, spec.split("/", 2)[2]
        include = f"{source.subfolder}/{ENCODER_FOLDER}/*" if source.subfolder else f"{ENCODER_FOLDER}/*"
        offline = " and HF_HUB_OFFLINE=1 forbids downloading it" if hub_offline() else ""
        raise ModelNotFound(f"IP-Adapter {spec!r} is not in the Hugging Face cache ({hub_cache_dir()}){offline}; "
                            f"download it with `hf download {repo} {rest} --include '{include}'`, or set "
                            f"render.consistency: reference")
    return source


def adapter_download(spec: str) -> Callable[[], Path] | None:
    """How to fetch hub IP-Adapter weights (and their image encoder) the cache lacks; None when there is nothing
    to fetch (a local file, weights in the cache, or a name that points nowhere, which `locate_adapter` reports)."""
    try:
        source = _source(spec)
    except ModelNotFound:
        return None
    if source.local is not None:
        return None
    encoder = f"{source.subfolder}/{ENCODER_FOLDER}" if source.subfolder else ENCODER_FOLDER
    weights = f"{source.subfolder}/{source.weight_name}" if source.subfolder else source.weight_name
    return lambda: download_adapter(source.root, [weights, f"{encoder}/*.json", f"{encoder}/*.safetensors"], spec)


def _source(spec: str) -> AdapterSource:
    """Where `spec` is: on disk, in the hub cache (`local` set), or a hub path not in the cache (`local` None)."""
    path = Path(spec).expanduser()
    if path.is_file():
        if not (path.parent / ENCODER_FOLDER).is_dir():
            raise ModelNotFound(f"render.ip_adapter {spec!r} has no {ENCODER_FOLDER}/ folder beside it; put the "
                                f"CLIP image encoder the adapter was trained with there (for h94/IP-Adapter: its "
                                f"models/image_encoder)")
        return AdapterSource(spec, str(path.parent), "", path.name, path.resolve())
    parts = spec.split("/")
    if len(parts) < 3 or not HUB_ID.match("/".join(parts[:2])) or spec.startswith((".", "/", "~")):
        raise ModelNotFound(f"render.ip_adapter {spec!r}: no such file; name a local .safetensors file or a hub "
                            f"path such as h94/IP-Adapter/models/ip-adapter_sd15.safetensors")
    repo, subfolder, weight = "/".join(parts[:2]), "/".join(parts[2:-1]), parts[-1]
    found = cached_file(repo, "/".join(parts[2:]))
    if found is None or not (found[0].parent / ENCODER_FOLDER).is_dir():
        return AdapterSource(spec, repo, subfolder, weight, None)
    return AdapterSource(spec, repo, subfolder, weight, found[0], found[1])


def adapter_identity(spec: str) -> dict[str, Any]:
    """What decides the adapter's effect on pixels: the weights file's sha256, or the hub commit."""
    source = locate_adapter(spec)
    if source.revision is None and source.local is not None:
        return {"ip_adapter": spec, "sha256": file_sha256(source.local)}
    return {"ip_adapter": spec, "revision": source.revision}


class LoadedAdapter:
    """IP-Adapter weights loaded into one pipeline."""

    def __init__(self, pipe: Any, spec: str) -> None:
        if not hasattr(pipe, "load_ip_adapter") or getattr(pipe, "unet", None) is None:
            raise RenderError(f"{type(pipe).__name__} cannot load an IP-Adapter; set render.consistency to "
                              f"reference or none")
        source = locate_adapter(spec)
        self.pipe, self.spec = pipe, spec
        try:
            with quiet_libraries():
                pipe.load_ip_adapter(source.root, subfolder=source.subfolder, weight_name=source.weight_name,
                                     image_encoder_folder=ENCODER_FOLDER, local_files_only=True)
        except Exception as exc:
            raise RenderError(f"IP-Adapter {spec!r} does not fit {type(pipe).__name__} ({type(exc).__name__}: "
                              f"{first_line(exc)}); use the adapter made for this model family") from None
        unet = pipe.unet
        self._attached = (unet.encoder_hid_proj, unet.config.encoder_hid_dim_type, dict(unet.attn_processors))

    def reading(self, images: Sequence[Any], strength: float) -> tuple[contextlib.AbstractContextManager[None],
                                                                         dict[str, Any]]:
        """The pipeline arguments that show the panel its anchors, at `strength`."""
        self.pipe.set_ip_adapter_scale(strength)
        return contextlib.nullcontext(), {"ip_adapter_image": [list(images)]}

    @contextlib.contextmanager
    def detached(self) -> Iterator[None]:
        """Draw as if no adapter were loaded (the way `unload_ip_adapter` leaves the UNet), then attach it again."""
        from diffusers.models.attention_processor import AttnProcessor2_0

        unet = self.pipe.unet
        proj, kind, processors = self._attached
        plain = {name: (AttnProcessor2_0() if "IPAdapter" in type(p).__name__ else p)
                 for name, p in processors.items()}
        unet.encoder_hid_proj = None
        unet.config.encoder_hid_dim_type = None
        unet.set_attn_processor(plain)
        try:
            yield
        finally:
            unet.encoder_hid_proj = proj
            unet.config.encoder_hid_dim_type = kind
            unet.set_attn_processor(processors)
