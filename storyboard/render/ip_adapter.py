"""IP-Adapter consistency: a panel takes its characters' anchor portraits as image prompts.

`render.ip_adapter` names the weights: a hub path ``owner/repo/subfolder/file.safetensors`` (as h94/IP-Adapter lays
them out, with the CLIP image encoder in ``<subfolder>/image_encoder``) or a local weights file with an
``image_encoder`` folder beside it. They are loaded once per pipeline with diffusers' `load_ip_adapter`; panels that
read no anchor are drawn with the adapter detached, so they keep exactly the pixels they have without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.errors import ModelNotFound, RenderError

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
    from storyboard.render.diffusers import _HUB_ID, hub_cache_dir, hub_offline

    path = Path(spec).expanduser()
    if path.is_file():
        if not (path.parent / ENCODER_FOLDER).is_dir():
            raise ModelNotFound(f"render.ip_adapter {spec!r} has no {ENCODER_FOLDER}/ folder beside it; put the "
                                f"CLIP image encoder the adapter was trained with there (for h94/IP-Adapter: its "
                                f"models/image_encoder)")
        return AdapterSource(spec, str(path.parent), "", path.name, path.resolve())
    parts = spec.split("/")
    if len(parts) < 3 or not _HUB_ID.match("/".join(parts[:2])) or spec.startswith((".", "/", "~")):
        raise ModelNotFound(f"render.ip_adapter {spec!r}: no such file; name a local .safetensors file or a hub "
                            f"path such as h94/IP-Adapter/models/ip-adapter_sd15.safetensors")
    repo, subfolder, weight = "/".join(parts[:2]), "/".join(parts[2:-1]), parts[-1]
    cached = hub_cache_dir() / ("models--" + repo.replace("/", "--"))
    ref = cached / "refs" / "main"
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else None
    file = cached / "snapshots" / commit / subfolder / weight if commit else None
    encoder = file.parent / ENCODER_FOLDER if file else None
    if file is None or not file.is_file() or not (encoder and encoder.is_dir()):
        if hub_offline():
            include = f"{subfolder}/{ENCODER_FOLDER}/*" if subfolder else f"{ENCODER_FOLDER}/*"
            raise ModelNotFound(f"IP-Adapter {spec!r} is not in the Hugging Face cache ({hub_cache_dir()}) and "
                                f"HF_HUB_OFFLINE=1 forbids downloading it; download it with `hf download {repo} "
                                f"{'/'.join(parts[2:])} --include '{include}'`, or set render.consistency: "
                                f"reference")
        return AdapterSource(spec, repo, subfolder, weight, None)
    return AdapterSource(spec, repo, subfolder, weight, file, commit)


def adapter_identity(spec: str) -> dict[str, Any]:
    """What decides the adapter's effect on pixels: the weights file's sha256, or the hub commit."""
    from storyboard.render.diffusers import file_sha256

    source = locate_adapter(spec)
    if source.revision is None and source.local is not None:
        return {"ip_adapter": spec, "sha256": file_sha256(source.local)}
    return {"ip_adapter": spec, "revision": source.revision}


class LoadedAdapter:
    """IP-Adapter weights loaded into one pipeline."""

    def __init__(self, pipe: Any, spec: str) -> None:
        from storyboard.render.diffusers import _first_line, _quiet_libraries, hub_offline

        if not hasattr(pipe, "load_ip_adapter") or getattr(pipe, "unet", None) is None:
            raise RenderError(f"{type(pipe).__name__} cannot load an IP-Adapter; set render.consistency to "
                              f"reference or none")
        source = locate_adapter(spec)
        self.pipe, self.spec = pipe, spec
        try:
            with _quiet_libraries():
                pipe.load_ip_adapter(source.root, subfolder=source.subfolder, weight_name=source.weight_name,
                                     image_encoder_folder=ENCODER_FOLDER,
                                     local_files_only=source.local is not None or hub_offline())
        except Exception as exc:
            raise RenderError(f"IP-Adapter {spec!r} does not fit {type(pipe).__name__} ({type(exc).__name__}: "
                              f"{_first_line(exc)}); use the adapter made for this model family") from None
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
