"""Fetching from the Hugging Face hub: the one place where the diffusers renderer downloads anything.

`storyboard download` calls `download`; `DiffusersRenderer.prepare` calls the others through
`storyboard.render.diffusers.downloads.Downloads`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from storyboard.errors import ModelNotFound
from storyboard.hub import causes, first_line, hub_cache_dir, hub_offline
from storyboard.render.diffusers.locate import fix_hint, locate

#: The configs a single-file checkpoint is loaded with, and nothing else (as diffusers fetches them).
CONFIG_FILES = ["**/*.json", "*.json", "*.txt", "**/*.txt", "**/*.model"]
#: The files an autoencoder (`render.vae`) is loaded from: its config and its safetensors weights, not the other
#: formats its repository may hold.
VAE_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]


def download(model: str) -> Path:
    """Fetch the files a diffusers pipeline needs from the hub into its cache; return the snapshot folder.

    `DiffusionPipeline.download` takes only what `from_pretrained` will read (one set of weights, no single-file
    checkpoints or other variants), a fraction of what the whole repository holds.
    """
    source = locate(model)
    if source.kind != "hub":
        raise ModelNotFound(f"model {model!r} is a local {source.kind}; there is nothing to download")
    if hub_offline():
        raise ModelNotFound(f"cannot download {model!r}: HF_HUB_OFFLINE=1 forbids it; unset it and try again")
    import diffusers

    logger = logging.getLogger("diffusers")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its "Couldn't connect to the Hub" would precede our one line
    try:
        return Path(diffusers.DiffusionPipeline.download(model))
    except Exception as exc:
        raise download_error(f"{model!r}", model, exc, "check the network connection and the model id") from None
    finally:
        logger.setLevel(level)


def download_configs(repo_id: str) -> Path:
    """Fetch only the configs (and tokenizer files) of a hub pipeline, for a single-file checkpoint to load with."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=CONFIG_FILES))
    except Exception as exc:
        raise download_error(f"the configs of {repo_id!r}", repo_id, exc,
                             "check the network connection and render.config") from None


def download_error(what: str, repo_id: str, exc: BaseException, advice: str) -> ModelNotFound:
    """A failed download as one line: a gated or unknown repo says so, anything else says what went wrong."""
    names, root = causes(exc)
    if "GatedRepoError" in names:
        return ModelNotFound(f"model {repo_id!r} is gated: accept its licence at https://huggingface.co/{repo_id} "
                             f"and log in with `hf auth login`; or {fix_hint(repo_id)}")
    if "RepositoryNotFoundError" in names:
        return ModelNotFound(f"model {repo_id!r} was not found on the Hugging Face hub; {fix_hint(repo_id)}")
    return ModelNotFound(f"cannot download {what} from the Hugging Face hub ({type(root).__name__}: "
                         f"{first_line(root)}); {advice}")


def download_lora(repo_id: str, weight_name: str, shown: str) -> Path:
    """Fetch one LoRA weights file from the hub into its cache."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, weight_name))
    except Exception as exc:
        names, root = causes(exc)
        if hub_offline() or "LocalEntryNotFoundError" in names:
            raise ModelNotFound(f"LoRA {shown!r} is not in the Hugging Face cache ({hub_cache_dir()}) and "
                                f"HF_HUB_OFFLINE=1 forbids downloading it; download it with `hf download {repo_id}` "
                                f"or give a local .safetensors file") from None
        raise ModelNotFound(f"cannot download LoRA {shown!r} from the Hugging Face hub ({type(root).__name__}: "
                            f"{first_line(root)}); check the id and weight_name") from None


def download_adapter(repo_id: str, files: list[str], spec: str) -> Path:
    """Fetch IP-Adapter weights and the CLIP image encoder beside them (`files`: patterns in the repo)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=files))
    except Exception as exc:
        raise download_error(f"IP-Adapter {spec!r}", repo_id, exc, "check the network connection and "
                             "render.ip_adapter") from None


def download_vae(repo_id: str) -> Path:
    """Fetch an autoencoder's config and weights (`VAE_FILES`) into the hub cache; return the snapshot folder."""
    if hub_offline():
        raise ModelNotFound(f"cannot download {repo_id!r}: HF_HUB_OFFLINE=1 forbids it; unset it and try again")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=VAE_FILES))
    except Exception as exc:
        raise download_error(f"autoencoder {repo_id!r}", repo_id, exc, "check the network connection and "
                             "render.vae") from None
