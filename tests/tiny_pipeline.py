"""A tiny, randomly initialised Stable Diffusion pipeline built from configs, for offline tests and benchmarks.

Nothing is downloaded: the tokenizer's vocab.json/merges.txt are written here (every byte is a token, no merges,
so each character of a word is one CLIP token), and every model is built from a small config with a fixed torch
seed. The result is saved with `save_pretrained`, so tests load it through the same code path as a real model.

    python tests/tiny_pipeline.py OUT_FOLDER [--safety-checker] [--real-size-unet]
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

MAX_TOKENS = 77


def _byte_tokens() -> list[str]:
    """GPT-2 / CLIP's printable stand-ins for the 256 byte values."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_tokenizer_files(folder: Path) -> int:
    """Write a CLIP vocab.json and merges.txt into `folder`; return the vocabulary size."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_tokens()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return len(vocab)


def build_tiny_pipeline(out: str | Path, *, safety_checker: bool = False, flag_everything: bool = False,
                        real_size_unet: bool = False) -> Path:
    """Build and save a tiny StableDiffusionPipeline in `out`; return `out`.

    `safety_checker` adds a tiny CLIP safety checker; with `flag_everything` its thresholds are set so that every
    image is flagged (to test how flagged panels are reported). `real_size_unet` uses SD 1.5's published UNet
    config (random weights, 860M parameters), with SD 1.5's VAE and a CLIP ViT-L-sized text encoder, for
    benchmarks on real-size compute.
    """
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    out = Path(out)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as words:
        vocab_size = write_tokenizer_files(Path(words))
        tokenizer = CLIPTokenizer.from_pretrained(words, model_max_length=MAX_TOKENS)

    hidden = 768 if real_size_unet else 32
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=4 * hidden if real_size_unet else 2 * hidden,
        num_hidden_layers=12 if real_size_unet else 2, num_attention_heads=12 if real_size_unet else 4,
        max_position_embeddings=MAX_TOKENS, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, projection_dim=hidden,
    ))
    if real_size_unet:
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        )
        vae_channels, vae_groups, vae_layers = (128, 256, 512, 512), 32, 2
    else:
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            cross_attention_dim=hidden, attention_head_dim=8, norm_num_groups=32,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        )
        vae_channels, vae_groups, vae_layers = (8, 8, 16, 16), 4, 1
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=vae_channels, layers_per_block=vae_layers,
        norm_num_groups=vae_groups, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64,
    )
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    checker, extractor = (None, None)
    if safety_checker:
        checker, extractor = _tiny_safety_checker(flag_everything)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=checker, feature_extractor=extractor, requires_safety_checker=safety_checker,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def _tiny_safety_checker(flag_everything: bool):
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=32,
    )
    checker = StableDiffusionSafetyChecker(config)
    if flag_everything:
        # A cosine similarity is at least -1, so a threshold of -2 flags every image.
        with torch.no_grad():
            checker.concept_embeds_weights.fill_(-2.0)
            checker.special_care_embeds_weights.fill_(-2.0)
    extractor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return checker, extractor


def build_tiny_ip_adapter(model: str | Path, out: str | Path) -> Path:
    """Random IP-Adapter weights for the tiny pipeline in `model`, laid out as h94/IP-Adapter lays out its files:
    `out/ip-adapter.safetensors` with a tiny CLIP vision encoder in `out/image_encoder`. Returns the weights file."""
    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import IPAdapterAttnProcessor
    from diffusers.models.embeddings import ImageProjection
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    out = Path(out)
    torch.manual_seed(1)
    unet = UNet2DConditionModel.from_pretrained(Path(model) / "unet")
    dim = unet.config.cross_attention_dim
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, image_size=32,
        patch_size=8, projection_dim=dim))
    encoder.save_pretrained(out / "image_encoder", safe_serialization=True)
    weights: dict[str, torch.Tensor] = {}
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        block = name.split(".")[0]
        channels = unet.config.block_out_channels
        hidden = (channels[-1] if block == "mid_block" else list(reversed(channels))[int(name.split(".")[1])]
                  if block == "up_blocks" else channels[int(name.split(".")[1])])
        layer = IPAdapterAttnProcessor(hidden_size=hidden, cross_attention_dim=dim, scale=1.0).state_dict()
        weights[f"ip_adapter.{key}.to_k_ip.weight"] = layer["to_k_ip.0.weight"]
        weights[f"ip_adapter.{key}.to_v_ip.weight"] = layer["to_v_ip.0.weight"]
        key += 2
    projection = ImageProjection(cross_attention_dim=dim, image_embed_dim=dim, num_image_text_embeds=4).state_dict()
    weights.update({"image_proj.proj.weight": projection["image_embeds.weight"],
                    "image_proj.proj.bias": projection["image_embeds.bias"],
                    "image_proj.norm.weight": projection["norm.weight"],
                    "image_proj.norm.bias": projection["norm.bias"]})
    save_file({k: v.contiguous() for k, v in weights.items()}, out / "ip-adapter.safetensors")
    return out / "ip-adapter.safetensors"


if __name__ == "__main__":
    args = sys.argv[1:]
    target = next((a for a in args if not a.startswith("--")), None)
    if target is None:
        sys.exit(__doc__)
    print(build_tiny_pipeline(target, safety_checker="--safety-checker" in args,
                              real_size_unet="--real-size-unet" in args))


def save_single_file(folder: str | Path, target: str | Path) -> Path:
    """Write the SD 1.x pipeline in `folder` as one original-layout (A1111 / ComfyUI) `.safetensors` checkpoint.

    The inverse of what diffusers' `from_single_file` reads: the UNet under `model.diffusion_model.`, the VAE under
    `first_stage_model.` and the CLIP text model under `cond_stage_model.transformer.`.
    """
    from safetensors.torch import load_file, save_file

    folder, target = Path(folder), Path(target)
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    unet = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    vae = load_file(folder / "vae" / "diffusion_pytorch_model.safetensors")
    text = load_file(folder / "text_encoder" / "model.safetensors")
    out = {}
    for key, value in unet.items():
        out["model.diffusion_model." + _unet_key(key, unet_config)] = value
    for key, value in vae.items():
        new_key = _vae_key(key, len(vae_config["block_out_channels"]))
        if re.search(r"mid\.attn_1\.(q|k|v|proj_out)\.weight$", new_key):
            value = value.reshape(*value.shape, 1, 1)  # the original VAE attention uses 1x1 convolutions
        out["first_stage_model." + new_key] = value
    for key, value in text.items():
        # Recent transformers save CLIPTextModel without its `text_model.` wrapper; the original layout has it.
        out["cond_stage_model.transformer." + (key if key.startswith("text_model.") else "text_model." + key)] = value
    save_file({k: v.contiguous() for k, v in out.items()}, str(target))
    return target


_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")]


def _resnet(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def _unet_key(key: str, config: dict) -> str:
    layers = config["layers_per_block"]
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    head, _, tail = key.rpartition(".")
    if head in fixed:
        return f"{fixed[head]}.{tail}"
    parts = key.split(".")
    if parts[0] == "down_blocks":
        i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        if kind == "downsamplers":
            return f"input_blocks.{1 + i * (layers + 1) + layers}.0.op.{rest.removeprefix('conv.')}"
        slot = 0 if kind == "resnets" else 1
        return f"input_blocks.{1 + i * (layers + 1) + j}.{slot}.{_resnet(rest) if slot == 0 else rest}"
    if parts[0] == "mid_block":
        kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
        slot = 1 if kind == "attentions" else 2 * j
        return f"middle_block.{slot}.{_resnet(rest) if kind == 'resnets' else rest}"
    if parts[0] == "up_blocks":
        i, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        has_attention = "CrossAttn" in config["up_block_types"][i]
        if kind == "upsamplers":
            return f"output_blocks.{i * (layers + 1) + layers}.{2 if has_attention else 1}.{rest}"
        slot = 0 if kind == "resnets" else 1
        return f"output_blocks.{i * (layers + 1) + j}.{slot}.{_resnet(rest) if slot == 0 else rest}"
    raise ValueError(f"unexpected UNet key {key}")


def _vae_key(key: str, blocks: int) -> str:
    key = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
    key = re.sub(r"mid_block\.resnets\.(\d)", lambda m: f"mid.block_{int(m[1]) + 1}", key)
    key = key.replace("mid_block.attentions.0.", "mid.attn_1.")
    for new, old in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
        key = key.replace(f"attn_1.{new}.", f"attn_1.{old}.")
    key = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", key)
    key = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", key)
    # The decoder's up blocks are numbered from the bottom in the original layout.
    key = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.", lambda m: f"decoder.up.{blocks - 1 - int(m[1])}.block.", key)
    key = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
                 lambda m: f"decoder.up.{blocks - 1 - int(m[1])}.upsample.", key)
    return key
