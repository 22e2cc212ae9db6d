"""Which device draws, and in which precision: decided without torch for the key (`probe_device`, `resolve_dtype`),
and checked against the installed torch only when a model is loaded (`torch_device`)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from storyboard.errors import RenderError


def probe_device(setting: str = "auto") -> str:
    """The device class ("cuda", "mps" or "cpu") `setting` resolves to, decided without importing torch.

    `auto` means CUDA when an NVIDIA (or ROCm) driver is present and the installed torch was built for it
    (read from torch/version.py), else Apple MPS on Apple silicon, else the CPU.
    """
    if setting != "auto":
        return setting.split(":")[0]
    torch_spec = importlib.util.find_spec("torch")
    build = ""
    if torch_spec and torch_spec.submodule_search_locations:
        try:
            build = (Path(list(torch_spec.submodule_search_locations)[0]) / "version.py").read_text("utf-8")
        except OSError:
            build = ""
    gpu_build = re.search(r"^(cuda|hip)\b.*=\s*['\"]", build, re.M) is not None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    driver = (Path("/proc/driver/nvidia/version").exists() or Path("/dev/kfd").exists()
              or (sys.platform == "win32" and shutil.which("nvidia-smi") is not None))
    if gpu_build and driver and visible not in ("", "-1"):
        return "cuda"
    if sys.platform == "darwin" and os.uname().machine == "arm64":
        return "mps"
    return "cpu"


def resolve_dtype(setting: str, device: str) -> str:
    if setting != "auto":
        return setting
    return "float32" if device == "cpu" else "float16"


def torch_device(setting: str) -> Any:
    """The torch device `setting` names, or a `RenderError` when this torch cannot use it."""
    import torch

    wanted = probe_device(setting)
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if not available.get(wanted, False):
        where = "render.device" if setting != "auto" else "render.device: auto"
        raise RenderError(f"{where} asks for {wanted}, but this torch {torch.__version__} cannot use it; "
                          f"install a torch build for your GPU or set render.device: cpu in the story")
    return torch.device(setting if setting not in ("auto",) else wanted)
