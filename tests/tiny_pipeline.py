"""A tiny, randomly initialised Stable Diffusion pipeline built from configs, for offline tests and benchmarks.

Nothing is downloaded: the tokenizer's vocab.json/merges.txt are written here (every byte is a token, no merges,
so each character of a word is one CLIP token), and every model is built from a small config with a fixed torch
seed. The result is saved with `save_pretrained`, so tests load it through the same code path as a real model.

    python tests/tiny_pipeline.py OUT_FOLDER [--safety-checker] [--real-size-unet]
"""

from __future__ import annotations

import json
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
    config (random weights, 860M parameters) for benchmarks on real-size compute.
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
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=MAX_TOKENS, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, projection_dim=hidden,
    ))
    if real_size_unet:
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        )
        vae_channels, vae_groups = (128, 256, 512, 512), 32
    else:
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            cross_attention_dim=hidden, attention_head_dim=8, norm_num_groups=32,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        )
        vae_channels, vae_groups = (8, 8, 16, 16), 4
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=vae_channels, layers_per_block=1,
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


if __name__ == "__main__":
    args = sys.argv[1:]
    target = next((a for a in args if not a.startswith("--")), None)
    if target is None:
        sys.exit(__doc__)
    print(build_tiny_pipeline(target, safety_checker="--safety-checker" in args,
                              real_size_unet="--real-size-unet" in args))
