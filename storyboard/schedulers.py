"""Scheduler (sampler) names as users know them from the A1111 web UI and ComfyUI, mapped to diffusers.

Pure data, so the story file can validate `render.scheduler` without importing torch or diffusers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SchedulerSpec:
    cls: str | None  # diffusers class name; None keeps the scheduler the model ships with
    label: str  # the A1111 sampler name, as written in PNG `parameters` chunks
    config: dict[str, Any] = field(default_factory=dict)  # overrides passed to `from_config`
    needs: str | None = None  # an extra Python package the class needs
    flow_matching: bool = False  # for flow-matching models (FLUX, SD3); the others suit the DDPM family


SCHEDULERS: dict[str, SchedulerSpec] = {
    "default": SchedulerSpec(None, "Default"),
    "euler": SchedulerSpec("EulerDiscreteScheduler", "Euler"),
    "euler_a": SchedulerSpec("EulerAncestralDiscreteScheduler", "Euler a"),
    "heun": SchedulerSpec("HeunDiscreteScheduler", "Heun"),
    "lms": SchedulerSpec("LMSDiscreteScheduler", "LMS", needs="scipy"),
    "lms_karras": SchedulerSpec("LMSDiscreteScheduler", "LMS Karras", {"use_karras_sigmas": True}, needs="scipy"),
    "dpm2": SchedulerSpec("KDPM2DiscreteScheduler", "DPM2"),
    "dpm2_karras": SchedulerSpec("KDPM2DiscreteScheduler", "DPM2 Karras", {"use_karras_sigmas": True}),
    "dpm2_a": SchedulerSpec("KDPM2AncestralDiscreteScheduler", "DPM2 a"),
    "dpm2_a_karras": SchedulerSpec("KDPM2AncestralDiscreteScheduler", "DPM2 a Karras", {"use_karras_sigmas": True}),
    "dpmpp_2m": SchedulerSpec("DPMSolverMultistepScheduler", "DPM++ 2M", {"algorithm_type": "dpmsolver++"}),
    "dpmpp_2m_karras": SchedulerSpec("DPMSolverMultistepScheduler", "DPM++ 2M Karras",
                                     {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
    "dpmpp_2m_sde": SchedulerSpec("DPMSolverMultistepScheduler", "DPM++ 2M SDE",
                                  {"algorithm_type": "sde-dpmsolver++"}),
    "dpmpp_2m_sde_karras": SchedulerSpec("DPMSolverMultistepScheduler", "DPM++ 2M SDE Karras",
                                         {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}),
    "dpmpp_sde": SchedulerSpec("DPMSolverSDEScheduler", "DPM++ SDE", needs="torchsde"),
    "dpmpp_sde_karras": SchedulerSpec("DPMSolverSDEScheduler", "DPM++ SDE Karras", {"use_karras_sigmas": True},
                                      needs="torchsde"),
    "ddim": SchedulerSpec("DDIMScheduler", "DDIM"),
    "pndm": SchedulerSpec("PNDMScheduler", "PLMS"),
    "unipc": SchedulerSpec("UniPCMultistepScheduler", "UniPC"),
    "deis": SchedulerSpec("DEISMultistepScheduler", "DEIS"),
    "lcm": SchedulerSpec("LCMScheduler", "LCM"),
    "flow_euler": SchedulerSpec("FlowMatchEulerDiscreteScheduler", "Euler", flow_matching=True),
    "flow_euler_karras": SchedulerSpec("FlowMatchEulerDiscreteScheduler", "Euler Karras", {"use_karras_sigmas": True},
                                       flow_matching=True),
}

DEFAULT_SCHEDULER = "dpmpp_2m_karras"

#: The A1111 label of a model's own scheduler class, for `scheduler: default`.
LABELS_BY_CLASS: dict[str, str] = {
    spec.cls: spec.label for spec in SCHEDULERS.values() if spec.cls and not spec.config
}
LABELS_BY_CLASS["DPMSolverMultistepScheduler"] = "DPM++ 2M"
