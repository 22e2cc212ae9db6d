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
    """The anchors' self-attention inputs for the current step, by layer name."""

    def __init__(self, strength: float) -> None:
        self.recording = False
        self.tokens: dict[str, list[Any]] = {}
        self.bias = math.log(strength)


class _ReadingProcessor:
    """Wraps a self-attention layer's processor: records its input while an anchor passes, and appends the
    recorded tokens to the keys and values while the panel passes."""

    def __init__(self, inner: Any, name: str, bank: _Bank) -> None:
        self.inner, self.name, self.bank = inner, name, bank

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, attention_mask: Any = None,
                 temb: Any = None, **kwargs: Any) -> Any:
        import torch

        if self.bank.recording:
            self.bank.tokens.setdefault(self.name, []).append(hidden_states)
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
                 generator_device: Any) -> None:
        unet = getattr(pipe, "unet", None)
        if unet is None or not hasattr(unet, "attn_processors"):
            raise RenderError(f"consistency: reference needs a UNet model (SD 1.x/2.x, SDXL, Kolors); "
                              f"{type(pipe).__name__} has none: set render.consistency to ip_adapter or none "
                              f"(or give the character a LoRA)")
        if not hasattr(pipe.scheduler, "add_noise"):
            raise RenderError(f"consistency: reference cannot be used with the {type(pipe.scheduler).__name__} "
                              f"scheduler; choose another render.scheduler or set render.consistency: none")
        self.pipe, self.unet, self.strength = pipe, unet, strength
        self.anchors = [self._prepare(ref, encode, generator_device) for ref in references]

    def _prepare(self, reference: Reference, encode: Any, generator_device: Any) -> dict[str, Any]:
        """The anchor's clean latents, its fixed noise (from its own seed) and its prompt's embeddings."""
        import torch

        pipe, job = self.pipe, reference.job
        device, vae = pipe._execution_device, pipe.vae
        pixels = pipe.image_processor.preprocess(reference.image, height=job.height, width=job.width)
        with torch.inference_mode():
            latents = vae.encode(pixels.to(device=device, dtype=vae.dtype)).latent_dist.mean
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
            busy, bank.recording, bank.tokens = True, True, {}
            try:
                for anchor in self.anchors:
                    self._record(anchor, sample, timestep, kwargs)
            finally:
                busy, bank.recording = False, False
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

    def _record(self, anchor: dict[str, Any], sample: Any, timestep: Any, kwargs: dict[str, Any]) -> None:
        import torch

        scheduler = self.pipe.scheduler
        t = timestep if torch.is_tensor(timestep) else torch.tensor(timestep, device=sample.device)
        noisy = scheduler.add_noise(anchor["latents"], anchor["noise"], t.reshape(1))
        noisy = scheduler.scale_model_input(noisy, t).to(sample.dtype)
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
        self.unet(noisy, t, encoder_hidden_states=anchor["embeds"].to(sample.dtype), return_dict=False, **extra)


def _last(value: Any) -> Any:
    """The conditional half of a classifier-free-guidance batch (the last row) of a tensor or list of tensors."""
    if isinstance(value, (list, tuple)):
        return type(value)(_last(v) for v in value)
    return value[-1:] if hasattr(value, "shape") else value
