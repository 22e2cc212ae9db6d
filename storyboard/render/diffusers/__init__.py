"""The Stable Diffusion renderer, on Hugging Face diffusers (`DiffusersRenderer`).

`render.model` (or `--model`) names a hub id (read from the normal Hugging Face cache, so a downloaded model works
with `HF_HUB_OFFLINE=1`), a local diffusers folder, or a single `.safetensors` / `.ckpt` checkpoint. The package, one
noun a module, bottom up:

- `locate`: where a model is and its fingerprint, from disk alone; `device`: the device class and dtype;
- `download`: the one place that fetches from the hub; `downloads`: what `prepare` fetched, or could not;
- `families`: what differs between model families (prompt encoding, guidance, schedulers); `scheduler`, `prompts`;
- `loras`, `ip_adapter`, `reference` (reference attention): LoRAs and the two ways a panel reads its anchors;
- `vae`: the autoencoder `render.vae` names (the model's own, the family's tiny one, or another);
- `load`: a pipeline from a folder, a hub snapshot or a checkpoint file; `identity`: what goes into a panel's key;
- `renderer`: `DiffusersRenderer`, which ties them together.
"""

from storyboard.render.diffusers.device import probe_device, resolve_dtype
from storyboard.render.diffusers.download import download
from storyboard.render.diffusers.families import dropped_words
from storyboard.render.diffusers.locate import (
    ModelSource,
    file_sha256,
    folder_fingerprint,
    locate,
    model_identity,
    model_stamp,
)
from storyboard.render.diffusers.renderer import DiffusersRenderer
from storyboard.render.diffusers.vae import download_story_models

__all__ = [
    "DiffusersRenderer",
    "ModelSource",
    "download",
    "download_story_models",
    "dropped_words",
    "file_sha256",
    "folder_fingerprint",
    "locate",
    "model_identity",
    "model_stamp",
    "probe_device",
    "resolve_dtype",
]
