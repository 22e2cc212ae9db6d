"""A tiny, randomly initialised Stable Diffusion pipeline built from configs, for offline tests and benchmarks.

Nothing is downloaded: the tokenizer's vocab.json/merges.txt are written here (every byte is a token, no merges,
so each character of a word is one CLIP token), and every model is built from a small config with a fixed torch
seed. The result is saved with `save_pretrained`, so tests load it through the same code path as a real model.

    python tests/tiny_pipeline.py OUT_FOLDER [--safety-checker] [--real-size-unet] [--family sdxl|flux|kolors|sd3]

Other families are built the same way: SDXL (two CLIP encoders), FLUX and SD3 (CLIP + a tiny T5 whose
tokenizer.json is written here with `tokenizers`), Kolors (a tiny ChatGLM whose sentencepiece model is trained here
on a few lines), and tiny random LoRAs for them (`build_tiny_lora`).
"""

from __future__ import annotations

import json
import re
import shutil
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


# --------------------------------------------------------------------------- other families


def _clip_pair(hidden: int = 32):
    """The byte-level CLIP tokenizer and a tiny CLIP text encoder config of `hidden` features."""
    from transformers import CLIPTextConfig, CLIPTokenizer

    with tempfile.TemporaryDirectory() as words:
        vocab_size = write_tokenizer_files(Path(words))
        tokenizer = CLIPTokenizer.from_pretrained(words, model_max_length=MAX_TOKENS)
    config = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=MAX_TOKENS, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, projection_dim=hidden,
    )
    return tokenizer, config


def _tiny_vae(latent_channels: int = 4, blocks: int = 2, **extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels, block_out_channels=(8, 16)[:blocks],
        layers_per_block=1, norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks, sample_size=32, **extra,
    )


def _tiny_xl_unet(cross_attention_dim: int, pooled_dim: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + pooled_dim, cross_attention_dim=cross_attention_dim,
        norm_num_groups=8,
    )


def build_tiny_sdxl(out: str | Path) -> Path:
    """A tiny StableDiffusionXLPipeline: two CLIP encoders (the second with a projection, for the pooled vector)."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tokenizer, config = _clip_pair(32)
    pipe = StableDiffusionXLPipeline(
        vae=_tiny_vae(), text_encoder=CLIPTextModel(config), text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=_tiny_xl_unet(64, 32),
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         steps_offset=1, timestep_spacing="leading"),
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return Path(out)


def write_t5_tokenizer(folder: Path) -> Path:
    """A T5 tokenizer.json built with `tokenizers`: a unigram model whose pieces are single characters."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    chars = "abcdefghijklmnopqrstuvwxyz0123456789,.'-!?"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(c, -2.0) for c in chars] + [("\u2581" + c, -1.5) for c in chars]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                extra_ids=0, model_max_length=512)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_flux(out: str | Path, *, guidance_embeds: bool = True) -> Path:
    """A tiny FluxPipeline: CLIP (pooled) + T5 (the prompt), a 2-block transformer, a one-level VAE."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel, T5TokenizerFast

    torch.manual_seed(0)
    tokenizer, config = _clip_pair(32)
    with tempfile.TemporaryDirectory() as words:
        tokenizer_2 = T5TokenizerFast.from_pretrained(write_t5_tokenizer(Path(words)))
    t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                 relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1))
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
                                         guidance_embeds=guidance_embeds)
    pipe = FluxPipeline(
        transformer=transformer, text_encoder=CLIPTextModel(config), tokenizer=tokenizer, text_encoder_2=t5,
        tokenizer_2=tokenizer_2, vae=_tiny_vae(latent_channels=1, blocks=1, use_quant_conv=False,
                                               use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return Path(out)


def build_tiny_sd3(out: str | Path) -> Path:
    """A tiny StableDiffusion3Pipeline: two CLIP encoders with projections, T5, a one-layer MM-DiT."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection, T5Config, T5EncoderModel, T5TokenizerFast

    torch.manual_seed(0)
    tokenizer, config = _clip_pair(32)
    with tempfile.TemporaryDirectory() as words:
        tokenizer_3 = T5TokenizerFast.from_pretrained(write_t5_tokenizer(Path(words)))
    t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_3), d_model=64, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                 relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1))
    transformer = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                        joint_attention_dim=64, pooled_projection_dim=64, out_channels=4)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, text_encoder=CLIPTextModelWithProjection(config), tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(config), tokenizer_2=tokenizer, text_encoder_3=t5,
        tokenizer_3=tokenizer_3, vae=_tiny_vae(latent_channels=4, blocks=1, use_quant_conv=False,
                                               use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return Path(out)


KOLORS_TEXT = """\
a little prince stands on a small planet with a red rose under a glass dome.
the fox sits in the golden wheat field and waits for the prince every afternoon.
小王子站在一颗小小的星球上，旁边有一朵玫瑰。
狐狸坐在金色的麦田里，每天下午等着小王子。
a pilot repairs his plane in the desert at dawn, the sand is orange and quiet.
"""


def write_chatglm_tokenizer(folder: Path) -> Path:
    """A ChatGLM tokenizer: a sentencepiece model trained here on a few lines of English and Chinese."""
    import io

    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(KOLORS_TEXT.splitlines()), model_writer=model, vocab_size=400, model_type="unigram",
        character_coverage=1.0, byte_fallback=True, minloglevel=2, hard_vocab_limit=False,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    return folder


def build_tiny_kolors(out: str | Path) -> Path:
    """A tiny KolorsPipeline: a 2-layer ChatGLM text encoder and an SDXL-style UNet reading its 32 features."""
    import torch
    from diffusers import EulerDiscreteScheduler, KolorsPipeline
    from diffusers.pipelines.kolors import ChatGLMModel, ChatGLMTokenizer
    from diffusers.pipelines.kolors.text_encoder import ChatGLMConfig

    torch.manual_seed(0)
    words = tempfile.mkdtemp()  # the tokenizer reads its model file again when the pipeline is saved
    tokenizer = ChatGLMTokenizer(str(write_chatglm_tokenizer(Path(words)) / "tokenizer.model"))
    hidden = 32
    text_encoder = ChatGLMModel(ChatGLMConfig(
        num_layers=2, padded_vocab_size=len(tokenizer) + 16, hidden_size=hidden, ffn_hidden_size=37,
        kv_channels=8, num_attention_heads=4, seq_length=512, multi_query_attention=True, multi_query_group_num=2,
        add_qkv_bias=True, original_rope=True, torch_dtype="float32",
    ))
    with torch.no_grad():  # ChatGLM leaves its weights uninitialised (they are always loaded from a checkpoint)
        for name, param in text_encoder.named_parameters():
            if "norm" in name:
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02 if param.dim() > 1 else 0.0)
    pipe = KolorsPipeline(
        vae=_tiny_vae(), text_encoder=text_encoder, tokenizer=tokenizer, unet=_tiny_xl_unet(hidden, hidden),
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.014, beta_schedule="scaled_linear",
                                         steps_offset=1, timestep_spacing="leading"),
    )
    try:
        pipe.save_pretrained(out, safe_serialization=True)
    finally:
        shutil.rmtree(words, ignore_errors=True)
    return Path(out)


def build_tiny_autoencoder(out: str | Path, *, latent_channels: int = 4, blocks: int = 4, seed: int = 0) -> Path:
    """A tiny random `AutoencoderTiny` (the class of TAESD, TAESDXL, TAESD3 and TAEF1) whose latents match a tiny
    pipeline's: `blocks` levels upsample by 2 ** (blocks - 1), like the pipeline's autoencoder."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    vae = AutoencoderTiny(encoder_block_out_channels=(8,) * blocks, decoder_block_out_channels=(8,) * blocks,
                          num_encoder_blocks=(1,) * blocks, num_decoder_blocks=(1,) * blocks,
                          latent_channels=latent_channels)
    vae.save_pretrained(out, safe_serialization=True)
    return Path(out)


def build_tiny_lora(model: str | Path, target: str | Path, *, seed: int = 1, rank: int = 4) -> Path:
    """A random LoRA for the UNet (or transformer) of the tiny pipeline in `model`, saved as one `.safetensors`
    file in the diffusers/peft layout, as LoRA trainers write them."""
    import torch
    from diffusers import DiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = DiffusionPipeline.from_pretrained(str(model))
    denoiser_name = "transformer" if getattr(pipe, "transformer", None) is not None else "unet"
    denoiser = getattr(pipe, denoiser_name)
    denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in denoiser.named_parameters():
            if "lora_" in name:  # peft starts lora_B at zero, which would change nothing
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    layers = {f"{denoiser_name}.{k}": v for k, v in get_peft_model_state_dict(denoiser).items()}
    target = Path(target)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in layers.items()}, str(target))
    return target


if __name__ == "__main__":
    args = sys.argv[1:]
    target = next((a for a in args if not a.startswith("--")), None)
    if target is None:
        sys.exit(__doc__)
    family = args[args.index("--family") + 1] if "--family" in args else "sd"
    builders = {"sdxl": build_tiny_sdxl, "flux": build_tiny_flux, "kolors": build_tiny_kolors, "sd3": build_tiny_sd3}
    if family in builders:
        print(builders[family](target))
    else:
        print(build_tiny_pipeline(target, safety_checker="--safety-checker" in args,
                                  real_size_unet="--real-size-unet" in args))


