"""`render.scheduler` as ComfyUI's KSampler takes it: a sampler and a scheduler (``dpmpp_2m_karras`` is the
``dpmpp_2m`` sampler on the ``karras`` schedule).

Pure data, like `storyboard.schedulers`, whose every name is here (a test keeps them in step).
"""

from __future__ import annotations

from dataclasses import dataclass

from storyboard.errors import RendererRequestError
from storyboard.schedulers import SCHEDULERS


@dataclass(frozen=True)
class ComfySampler:
    sampler: str  # KSampler's sampler_name
    scheduler: str  # KSampler's scheduler
    label: str  # the A1111 name written into the PNG's parameters


def _as(sampler: str, scheduler: str, name: str) -> ComfySampler:
    return ComfySampler(sampler, scheduler, SCHEDULERS[name].label)


#: Ours -> ComfyUI's. None: ComfyUI has no such sampler. `default` is what ComfyUI's own KSampler starts with.
COMFY_SAMPLERS: dict[str, ComfySampler | None] = {
    "default": ComfySampler("euler", "normal", "Euler"),
    "euler": _as("euler", "normal", "euler"),
    "euler_a": _as("euler_ancestral", "normal", "euler_a"),
    "heun": _as("heun", "normal", "heun"),
    "lms": _as("lms", "normal", "lms"),
    "lms_karras": _as("lms", "karras", "lms_karras"),
    "dpm2": _as("dpm_2", "normal", "dpm2"),
    "dpm2_karras": _as("dpm_2", "karras", "dpm2_karras"),
    "dpm2_a": _as("dpm_2_ancestral", "normal", "dpm2_a"),
    "dpm2_a_karras": _as("dpm_2_ancestral", "karras", "dpm2_a_karras"),
    "dpmpp_2m": _as("dpmpp_2m", "normal", "dpmpp_2m"),
    "dpmpp_2m_karras": _as("dpmpp_2m", "karras", "dpmpp_2m_karras"),
    "dpmpp_2m_sde": _as("dpmpp_2m_sde", "normal", "dpmpp_2m_sde"),
    "dpmpp_2m_sde_karras": _as("dpmpp_2m_sde", "karras", "dpmpp_2m_sde_karras"),
    "dpmpp_sde": _as("dpmpp_sde", "normal", "dpmpp_sde"),
    "dpmpp_sde_karras": _as("dpmpp_sde", "karras", "dpmpp_sde_karras"),
    "ddim": _as("ddim", "ddim_uniform", "ddim"),
    "pndm": None,  # PLMS: ComfyUI has none
    "unipc": _as("uni_pc", "normal", "unipc"),
    "deis": _as("deis", "normal", "deis"),
    "lcm": _as("lcm", "sgm_uniform", "lcm"),
    "flow_euler": _as("euler", "simple", "flow_euler"),
    "flow_euler_karras": _as("euler", "karras", "flow_euler_karras"),
}


def comfy_sampler(name: str) -> ComfySampler:
    """ComfyUI's sampler and scheduler for our scheduler `name`, or one line saying ComfyUI has none."""
    found = COMFY_SAMPLERS.get(name)
    if found is None:
        usable = ", ".join(n for n, s in COMFY_SAMPLERS.items() if s is not None and n != "default")
        raise RendererRequestError(f"ComfyUI has no sampler for render.scheduler {name!r}; choose one of: {usable}")
    return found
