"""What differs between model families: how prompts are encoded, what `guidance` means, which schedulers fit.

One class per family, chosen by the pipeline class the model names (its `model_index.json`), so `_draw` never asks
which model it holds. Prompts longer than a text encoder's window are handled the way the ecosystem does:

- CLIP encoders (SD 1.x/2.x, and both of SDXL's) read 77 tokens. Longer prompts are encoded in chunks of 75 tokens,
  each between BOS and EOS, and the chunks joined, as the A1111 web UI and ComfyUI do; SDXL's pooled embedding
  comes from the first chunk of its second encoder.
- T5 (FLUX, SD3) and ChatGLM (Kolors) read a longer window (the pipeline's `max_sequence_length`); CLIP's cut
  in FLUX and SD3 is the model's design, since T5 reads the whole prompt.

Whatever is still cut is returned as the dropped words, and reported by the renderer once, in its own words.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

from storyboard.errors import RenderError
from storyboard.resolve import PanelJob
from storyboard.schedulers import SCHEDULERS


class Cut(NamedTuple):
    """Words of a prompt that the model never reads."""

    label: str  # "prompt" or "negative prompt"
    limit: int  # tokens the encoder reads
    words: str


class Family:
    """SD 1.x/2.x and anything unknown: one CLIP tokenizer and text encoder."""

    name = "Stable Diffusion"
    flow_matching = False  # flow-matching models (FLUX, SD3) take flow schedulers, the others the DDPM family
    negative_prompt = True
    tiny_vae = "madebyollin/taesd"  # `render.vae: tiny`: the tiny autoencoder trained on this family's latents

    def check_scheduler(self, scheduler: str, pipeline_class: str) -> None:
        spec = SCHEDULERS[scheduler]
        if spec.cls is None or spec.flow_matching == self.flow_matching:
            return
        fits = [n for n, s in SCHEDULERS.items() if s.cls is None or s.flow_matching == self.flow_matching]
        kind = "a flow-matching model" if self.flow_matching else "not a flow-matching model"
        raise RenderError(f"render.scheduler {scheduler!r} does not fit {self.name} ({pipeline_class}), "
                          f"{kind}; choose from: {', '.join(fits)}")

    def notes(self, pipe: Any, jobs: list[PanelJob]) -> list[str]:
        """What the user should hear once per build about how this family reads the story's settings."""
        return []

    def size_multiple(self, pipe: Any) -> int:
        """Widths and heights must be multiples of this: the VAE's scale, times the transformer's patch size."""
        multiple = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        patch = getattr(getattr(getattr(pipe, "transformer", None), "config", None), "patch_size", None)
        return multiple * patch if isinstance(patch, int) and patch > 1 else multiple

    def chunked(self, pipe: Any, prompt: str, negative: str) -> dict[str, Any] | None:
        """Embeddings of prompts longer than the encoders' window, made in chunks; None when they fit (or the
        family's encoder reads a long window itself)."""
        return _clip_chunked(pipe, prompt, negative, [("tokenizer", "text_encoder")], hidden_layer=None,
                             pooled=False)

    def text_args(self, pipe: Any, job: PanelJob) -> tuple[dict[str, Any], list[Cut]]:
        """The pipeline's text arguments for `job`, and what of its prompts is still cut."""
        embeds = self.chunked(pipe, job.prompt, job.negative_prompt)
        if embeds is not None:
            return embeds, []
        return {"prompt": job.prompt, "negative_prompt": job.negative_prompt}, _clip_cuts(pipe, "tokenizer", job)


class SDXL(Family):
    """Two CLIP encoders (ViT-L and bigG) whose penultimate layers are joined, plus bigG's pooled embedding."""

    name = "SDXL"
    tiny_vae = "madebyollin/taesdxl"

    @staticmethod
    def _pairs(pipe: Any) -> list[tuple[str, str]]:
        pairs = [("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")]
        return pairs if getattr(pipe, "text_encoder", None) is not None else pairs[1:]  # the refiner has one

    def chunked(self, pipe: Any, prompt: str, negative: str) -> dict[str, Any] | None:
        return _clip_chunked(pipe, prompt, negative, self._pairs(pipe), hidden_layer=-2, pooled=True)

    def text_args(self, pipe: Any, job: PanelJob) -> tuple[dict[str, Any], list[Cut]]:
        embeds = self.chunked(pipe, job.prompt, job.negative_prompt)
        if embeds is not None:
            return embeds, []
        return ({"prompt": job.prompt, "negative_prompt": job.negative_prompt},
                _clip_cuts(pipe, self._pairs(pipe)[0][0], job))


class LongWindow(Family):
    """Families whose main text encoder reads a long window (the pipeline's `max_sequence_length`)."""

    tokenizer = "tokenizer"
    specials = 1  # tokens the pipeline adds around the prompt

    def chunked(self, pipe: Any, prompt: str, negative: str) -> dict[str, Any] | None:
        return None

    def window(self, pipe: Any) -> int:
        parameter = inspect.signature(pipe.__call__).parameters.get("max_sequence_length")
        if parameter is not None and isinstance(parameter.default, int):
            return parameter.default
        return int(getattr(getattr(pipe, self.tokenizer, None), "model_max_length", 0) or 0)

    def text_args(self, pipe: Any, job: PanelJob) -> tuple[dict[str, Any], list[Cut]]:
        window = self.window(pipe)
        tokenizer = getattr(pipe, self.tokenizer, None)
        args: dict[str, Any] = {"prompt": job.prompt, "max_sequence_length": window}
        if self.negative_prompt:
            args["negative_prompt"] = job.negative_prompt
        if tokenizer is None or not window:
            return args, []
        limit = window - self.specials
        texts = [("prompt", job.prompt)] + ([("negative prompt", job.negative_prompt)] if self.negative_prompt else [])
        return args, _cuts(tokenizer, limit, texts)


class Kolors(LongWindow):
    """Kolors: ChatGLM3 reads Chinese and English; its tokenizer adds two prefix tokens."""

    name = "Kolors"
    specials = 2
    tiny_vae = "madebyollin/taesdxl"  # Kolors decodes with SDXL's autoencoder


class Flux(LongWindow):
    """FLUX.1: CLIP gives only a pooled vector; T5 reads the prompt. Guidance-distilled: no negative prompt."""

    name = "FLUX"
    flow_matching = True
    tiny_vae = "madebyollin/taef1"
    negative_prompt = False
    tokenizer = "tokenizer_2"

    def size_multiple(self, pipe: Any) -> int:
        return int(getattr(pipe, "vae_scale_factor", 8) or 8) * 2  # latents are packed in 2x2 patches

    def notes(self, pipe: Any, jobs: list[PanelJob]) -> list[str]:
        notes = []
        if any(job.negative_prompt for job in jobs):
            notes.append("FLUX takes no negative prompt: style.negative is not used")
        distilled = bool(getattr(getattr(getattr(pipe, "transformer", None), "config", None), "guidance_embeds",
                                 False))
        guidances = sorted({job.guidance for job in jobs})
        if not distilled and any(guidances):
            notes.append(f"this FLUX model (like FLUX.1-schnell) has no guidance input: render.guidance "
                         f"{_numbers(guidances)} is not used")
        elif distilled and any(not 1 <= g <= 6 for g in guidances):
            notes.append(f"render.guidance {_numbers(guidances)} is FLUX's distilled guidance, not classifier-free "
                         f"guidance: FLUX.1-dev is made for 1 to 6 (3.5 is usual)")
        return notes


class SD3(LongWindow):
    """Stable Diffusion 3: two CLIP encoders (77 tokens) and T5, which reads the whole prompt."""

    name = "SD3"
    flow_matching = True
    tiny_vae = "madebyollin/taesd3"
    tokenizer = "tokenizer_3"


#: Pipeline class name prefixes, most specific first.
FAMILIES: list[tuple[str, Family]] = [
    ("StableDiffusion3", SD3()),
    ("StableDiffusionXL", SDXL()),
    ("Kolors", Kolors()),
    ("Flux", Flux()),
    ("", Family()),
]


def family_for(pipeline_class: str) -> Family:
    return next(family for prefix, family in FAMILIES if pipeline_class.startswith(prefix))


def _numbers(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


# --------------------------------------------------------------------------- CLIP in chunks


def _token_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids)


def dropped_words(tokenizer: Any, text: str, limit: int) -> str:
    """The end of `text` that a tokenizer reading `limit` tokens never sees ('' when all of it fits)."""
    if not text:
        return ""
    ids = _token_ids(tokenizer, text)
    if len(ids) <= limit:
        return ""
    return tokenizer.decode(ids[limit:]).strip()


def _cuts(tokenizer: Any, limit: int, texts: list[tuple[str, str]]) -> list[Cut]:
    cuts = [Cut(label, limit, dropped_words(tokenizer, text, limit)) for label, text in texts]
    return [cut for cut in cuts if cut.words]


def _clip_cuts(pipe: Any, tokenizer_name: str, job: PanelJob) -> list[Cut]:
    tokenizer = getattr(pipe, tokenizer_name, None)
    if tokenizer is None or not getattr(tokenizer, "model_max_length", None):
        return []
    specials = 2 if getattr(tokenizer, "bos_token_id", None) is not None else 1
    limit = int(tokenizer.model_max_length) - specials
    if limit > 100_000:  # tokenizers without a real limit report a huge number
        return []
    return _cuts(tokenizer, limit, [("prompt", job.prompt), ("negative prompt", job.negative_prompt)])


def _is_clip(pipe: Any, tokenizer_name: str, encoder_name: str) -> bool:
    tokenizer, encoder = getattr(pipe, tokenizer_name, None), getattr(pipe, encoder_name, None)
    return (tokenizer is not None and encoder is not None and "CLIP" in type(encoder).__name__
            and getattr(tokenizer, "bos_token_id", None) is not None)


def _clip_chunked(pipe: Any, prompt: str, negative: str, pairs: list[tuple[str, str]],
                  hidden_layer: int | None, pooled: bool) -> dict[str, Any] | None:
    """Embeddings of prompts longer than CLIP's window, made chunk by chunk; None when every prompt fits.

    `pairs` are the (tokenizer, text encoder) attributes whose outputs are joined along the feature axis;
    `hidden_layer` None takes the last hidden state (SD 1.x/2.x), -2 the penultimate layer (SDXL). With `pooled`,
    the last encoder's pooled projection of the first chunk is the pooled embedding (SDXL).
    """
    if not all(_is_clip(pipe, t, e) for t, e in pairs):
        return None
    tokenized = []
    for tokenizer_name, _ in pairs:
        tokenizer = getattr(pipe, tokenizer_name)
        size = int(tokenizer.model_max_length) - 2
        tokenized.append((_token_ids(tokenizer, prompt), _token_ids(tokenizer, negative), size))
    if all(max(len(ids), len(neg)) <= size for ids, neg, size in tokenized):
        return None
    count = max(-(-max(len(ids), len(neg), 1) // size) for ids, neg, size in tokenized)
    zero_negative = not negative and bool(getattr(getattr(pipe, "config", None), "force_zeros_for_empty_prompt",
                                                  False))
    result: dict[str, Any] = {}
    for which, index in (("prompt", 0), ("negative_prompt", 1)):
        hidden, pooled_parts = [], None
        for (tokenizer_name, encoder_name), ids in zip(pairs, tokenized, strict=True):
            states, pooled_out = _encode_chunks(pipe, tokenizer_name, encoder_name, ids[index], count, hidden_layer)
            hidden.append(states)
            pooled_parts = pooled_out
        import torch

        embeds = torch.cat(hidden, dim=-1)
        if index == 1 and zero_negative:
            embeds, pooled_parts = torch.zeros_like(embeds), torch.zeros_like(pooled_parts)
        result[f"{which}_embeds"] = embeds
        if pooled:
            result[f"{'negative_' if index else ''}pooled_prompt_embeds"] = pooled_parts
    return result


def _encode_chunks(pipe: Any, tokenizer_name: str, encoder_name: str, ids: list[int], count: int,
                   hidden_layer: int | None) -> tuple[Any, Any]:
    import torch

    tokenizer, encoder = getattr(pipe, tokenizer_name), getattr(pipe, encoder_name)
    size = int(tokenizer.model_max_length) - 2
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    device = pipe._execution_device
    use_mask = bool(getattr(encoder.config, "use_attention_mask", False))
    parts, pooled = [], None
    for c in range(count):
        chunk = ids[c * size:(c + 1) * size]
        row = [bos, *chunk, eos] + [pad] * (size - len(chunk))
        mask = [1] * (len(chunk) + 2) + [0] * (size - len(chunk))
        tokens = torch.tensor([row], device=device)
        with torch.inference_mode():
            out = encoder(tokens, attention_mask=torch.tensor([mask], device=device) if use_mask else None,
                          output_hidden_states=hidden_layer is not None)
        parts.append(out[0] if hidden_layer is None else out.hidden_states[hidden_layer])
        if pooled is None:
            pooled = out[0]  # CLIPTextModelWithProjection: the pooled projection (SDXL's second encoder)
    return torch.cat(parts, dim=1).to(dtype=encoder.dtype, device=device), pooled
