"""Reference attention: a panel's self-attention also attends to its characters' anchor portraits.

This is the training-free technique of the reference-only pipeline (diffusers' community `stable_diffusion_reference`)
and of StoryDiffusion's "read" mode, restricted so that a panel depends on its anchors' *images* alone and stays
exactly reproducible: at every denoising step, before the UNet draws the panel, it runs once over each anchor (the
anchor's latents noised to the same step with noise drawn from the anchor's own seed, conditioned on the anchor's
prompt) and records the inputs of the self-attention layers of its up blocks; the panel's pass then appends those
tokens to the keys and values of the same layers. The recorded tokens live for one step, so the memory cost does not
grow with the number of steps; the time cost is one batch-1 UNet pass per anchor per step.

`consistency_strength` s weighs the anchors' tokens: their attention logits get log(s) added, so at s = 1 an anchor
token counts like one of the panel's own and as s falls to 0 the panel stops reading them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from storyboard.errors import RenderError
from storyboard.render import Reference

#: The UNet blocks whose self-attention reads the anchors. StoryDiffusion reads in the up blocks only: the down
#: blocks lay out the picture, the up blocks paint its details (faces, clothes).
READ_IN = ("up_blocks.",)


class _Bank:
    """The anchors' self-attention inputs for the current step, by layer name: one tensor per anchor read."""

    def __init__(self, strength: float) -> None:
        self.recording: dict[str, Any] | None = None  # while an anchor passes: its inputs, by layer name
        self.tokens: dict[str, list[Any]] = {}
        self.bias = math.log(strength)


class RecordedSteps:
    """Recorded anchor passes kept for the other panels of one render call, up to `budget` bytes.

    What an anchor's pass records at a step depends on the anchor, the scheduler's schedule and the step, never on
    the panel, so a panel that finds it here gets the very tensors its own pass would have computed. Past the
    budget, passes are recomputed. On a GPU the kept tensors wait in host memory.
    """

    def __init__(self, budget: int = 2 << 30) -> None:
        self.budget, self.used = budget, 0
        self.steps: dict[Any, dict[str, Any]] = {}

    def get(self, key: Any, device: Any) -> dict[str, Any] | None:
        found = self.steps.get(key) if key is not None else None
        return None if found is None else {name: t.to(device) for name, t in found.items()}

    def put(self, key: Any, recorded: dict[str, Any]) -> None:
        size = sum(t.numel() * t.element_size() for t in recorded.values())
        if key is None or key in self.steps or self.used + size > self.budget:
            return
        self.steps[key] = {name: t.to("cpu", copy=True) if t.device.type != "cpu" else t
                           for name, t in recorded.items()}
        self.used += size


class _ReadingProcessor:
    """Wraps a self-attention layer's processor: records its input while an anchor passes, and appends the
    recorded tokens to the keys and values while the panel passes."""

    def __init__(self, inner: Any, name: str, bank: _Bank) -> None:
        self.inner, self.name, self.bank = inner, name, bank

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, attention_mask: Any = None,
                 temb: Any = None, **kwargs: Any) -> Any:
        import torch

        if self.bank.recording is not None:
            self.bank.recording[self.name] = hidden_states
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        recorded = self.bank.tokens.get(self.name)
        if encoder_hidden_states is not None or attention_mask is not None or not recorded or hidden_states.ndim != 3:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        batch, own = hidden_states.shape[0], hidden_states.shape[1]
        anchors = torch.cat([t.to(hidden_states.dtype).expand(batch, -1, -1) for t in recorded], dim=1)
        context = torch.cat([hidden_states, anchors], dim=1)
        bias = torch.zeros((batch, 1, context.shape[1]), dtype=hidden_states.dtype, device=hidden_states.device)
        bias[:, :, own:] = self.bank.bias
        return self.inner(attn, hidden_states, context, bias, temb, **kwargs)


class ReferenceReader:
    """Makes one panel's UNet passes read its anchors (see the module docstring). Use `reading` around the call."""

    def __init__(self, pipe: Any, references: Sequence[Reference], strength: float, encode: Any,
                 generator_device: Any, prepared: dict[Any, dict[str, Any]] | None = None,
                 recorded: RecordedSteps | None = None, weights: str = "") -> None:
        unet = getattr(pipe, "unet", None)
        if unet is None or not hasattr(unet, "attn_processors"):
            raise RenderError(f"consistency: reference needs a UNet model (SD 1.x/2.x, SDXL, Kolors); "
                              f"{type(pipe).__name__} has none: set render.consistency to ip_adapter or none "
                              f"(or give the character a LoRA)")
        if not hasattr(pipe.scheduler, "add_noise"):
            raise RenderError(f"consistency: reference cannot be used with the {type(pipe.scheduler).__name__} "
                              f"scheduler; choose another render.scheduler or set render.consistency: none")
        self.pipe, self.unet, self.strength = pipe, unet, strength
        # An anchor's latents, noise and prompt embeddings do not depend on the panel, only on the weights the
        # panel is drawn with (`weights` names them: the LoRAs switched on for it): `prepared` keeps them for the
        # other panels that read the same anchor with the same weights (one set per anchor, a few MB).
        prepared = {} if prepared is None else prepared
        self.recorded = recorded or RecordedSteps(budget=0)
        self.anchors = []
        for reference in references:
            key = (json.dumps(reference.job.to_dict(), sort_keys=True, default=str), weights)
            if key not in prepared:
                prepared[key] = {"job": key, **self._prepare(reference, encode, generator_device)}
            self.anchors.append(prepared[key])

    def _prepare(self, reference: Reference, encode: Any, generator_device: Any) -> dict[str, Any]:
        """The anchor's clean latents, its fixed noise (from its own seed) and its prompt's embeddings."""
        import torch

        pipe, job = self.pipe, reference.job
        device, vae = pipe._execution_device, pipe.vae
        pixels = pipe.image_processor.preprocess(reference.image, height=job.height, width=job.width)
        with torch.inference_mode():
            encoded = vae.encode(pixels.to(device=device, dtype=vae.dtype))
        # AutoencoderKL gives a distribution (its mean is the anchor's latents); a tiny autoencoder the latents.
        latents = encoded.latent_dist.mean if hasattr(encoded, "latent_dist") else encoded.latents
        latents = latents * vae.config.scaling_factor
        if getattr(vae.config, "shift_factor", None):
            latents = latents - vae.config.shift_factor * vae.config.scaling_factor
        generator = torch.Generator(device=generator_device).manual_seed(job.seed)
        noise = torch.randn(latents.shape, generator=generator, device=generator_device,
                            dtype=latents.dtype).to(device)
        embeds, pooled = encode(job.prompt)
        return {"latents": latents, "noise": noise, "embeds": embeds, "pooled": pooled}

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Within this block every UNet call of the pipeline first records the anchors at its timestep."""
        if self.strength <= 0 or not self.anchors:
            yield
            return
        bank = _Bank(self.strength)
        original = dict(self.unet.attn_processors)
        wrapped = {name: (_ReadingProcessor(proc, name, bank) if self._reads(name) else proc)
                   for name, proc in original.items()}
        busy = False

        def before_unet(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            nonlocal busy
            if busy:
                return None
            sample = args[0] if args else kwargs["sample"]
            timestep = args[1] if len(args) > 1 else kwargs["timestep"]
            bank.tokens = {}
            busy = True
            try:
                for anchor in self.anchors:
                    for name, tokens in self._anchor_step(bank, anchor, sample, timestep, kwargs).items():
                        bank.tokens.setdefault(name, []).append(tokens)
            finally:
                busy, bank.recording = False, None
            return None

        self.unet.set_attn_processor(wrapped)
        hook = self.unet.register_forward_pre_hook(before_unet, with_kwargs=True)
        try:
            yield
        finally:
            hook.remove()
            self.unet.set_attn_processor(original)

    @staticmethod
    def _reads(name: str) -> bool:
        return name.startswith(READ_IN) and ".attn1." in name

    def _anchor_step(self, bank: _Bank, anchor: dict[str, Any], sample: Any, timestep: Any,
                     kwargs: dict[str, Any]) -> dict[str, Any]:
        """What `anchor`'s pass records at this step: kept from another panel's pass, or computed now."""
        import torch

        scheduler = self.pipe.scheduler
        t = timestep if torch.is_tensor(timestep) else torch.tensor(timestep, device=sample.device)
        extra = self._conditioning(anchor, sample, kwargs)
        keyed = dict(extra)
        if anchor["pooled"] is not None and "added_cond_kwargs" in extra:  # the anchor's own, so its job says it
            keyed["added_cond_kwargs"] = {**extra["added_cond_kwargs"], "text_embeds": "anchor"}
        key = _step_key(anchor["job"], scheduler, t, sample.dtype, keyed)
        kept = self.recorded.get(key, sample.device)
        if kept is not None:
            return kept
        noisy = scheduler.add_noise(anchor["latents"], anchor["noise"], t.reshape(1))
        noisy = scheduler.scale_model_input(noisy, t).to(sample.dtype)
        bank.recording = {}
        self.unet(noisy, t, encoder_hidden_states=anchor["embeds"].to(sample.dtype), return_dict=False, **extra)
        recorded, bank.recording = bank.recording, None
        self.recorded.put(key, recorded)
        return recorded

    @staticmethod
    def _conditioning(anchor: dict[str, Any], sample: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The UNet arguments of the anchor's pass besides its latents and prompt, from the panel's call."""
        extra: dict[str, Any] = {}
        if kwargs.get("timestep_cond") is not None:
            extra["timestep_cond"] = kwargs["timestep_cond"][-1:]
        if kwargs.get("added_cond_kwargs"):
            added = {key: _last(value) for key, value in kwargs["added_cond_kwargs"].items()}
            if anchor["pooled"] is not None and "text_embeds" in added:
                added["text_embeds"] = anchor["pooled"]
            extra["added_cond_kwargs"] = added
        if kwargs.get("cross_attention_kwargs") is not None:
            extra["cross_attention_kwargs"] = kwargs["cross_attention_kwargs"]
        return extra


def _step_key(job: Any, scheduler: Any, t: Any, dtype: Any, extra: dict[str, Any]) -> Any:
    """Everything an anchor's pass depends on besides the pipeline, or None when that cannot be told cheaply."""
    try:
        conditioning = _small(extra)
    except _Unkeyable:
        return None
    schedule = (type(scheduler).__name__, getattr(scheduler, "num_inference_steps", None),
                getattr(scheduler, "step_index", None), json.dumps(dict(scheduler.config), sort_keys=True,
                                                                    default=str))
    return job, schedule, float(t.flatten()[0]), str(dtype), conditioning


class _Unkeyable(Exception):
    """A value too large (or of a kind) to put into a key cheaply."""


def _small(value: Any) -> Any:
    """`value` (tensors of at most 256 numbers, dicts, lists, plain values) as a hashable tuple."""
    if hasattr(value, "numel"):
        if value.numel() > 256:
            raise _Unkeyable
        return tuple(value.flatten().tolist())
    if isinstance(value, dict):
        return tuple(sorted((k, _small(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_small(v) for v in value)
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    raise _Unkeyable


def _last(value: Any) -> Any:
    """The conditional half of a classifier-free-guidance batch (the last row) of a tensor or list of tensors."""
    if isinstance(value, (list, tuple)):
        return type(value)(_last(v) for v in value)
    return value[-1:] if hasattr(value, "shape") else value
