"""Which device draws, and in which precision: decided without torch for the key (`probe_device`, `resolve_dtype`),
and checked against the installed torch only when a model is loaded (`torch_device`)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from functools import cache
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


#: Where Linux lists the CPU's features; the flags it shows are those the kernel lets programs use.
CPUINFO = Path("/proc/cpuinfo")
#: x86 features that compute bfloat16 matrix products natively (Cooper Lake, Sapphire Rapids and later Xeons, Zen 4
#: and later): oneDNN, which torch uses for CPU convolutions and matrix products, runs bfloat16 on them at about
#: twice the float32 speed. Without them torch emulates bfloat16, slower than float32.
BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def resolve_dtype(setting: str, device: str) -> str:
    """The dtype `setting` means on `device`: `auto` is float16 on a GPU; on the CPU bfloat16 where it computes
    bfloat16 natively (`cpu_has_bfloat16`), else float32."""
    if setting != "auto":
        return setting
    if device == "cpu":
        return "bfloat16" if cpu_has_bfloat16() else "float32"
    return "float16"


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively, read from /proc/cpuinfo (the same CPUID bits torch's
    `torch.cpu._is_avx512_bf16_supported` reads), without importing torch. False where there is no /proc/cpuinfo
    (macOS, Windows) or it names no such feature (ARM CPUs included): `render.dtype: bfloat16` still asks for it."""
    return _bfloat16_in(CPUINFO)


@cache
def _bfloat16_in(cpuinfo: Path) -> bool:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return not BFLOAT16_FLAGS.isdisjoint(value.split())
    return False


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
