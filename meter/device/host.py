"""What software this machine runs: Python, torch and its CUDA build, external tools."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TorchInfo:
    version: str | None
    cuda_build: str | None  # CUDA version torch was built with; None for a CPU build
    cuda_available: bool
    device_names: list[str]
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def torch_info() -> TorchInfo:
    """Probe torch without failing when it is missing or broken."""
    try:
        import torch
    except Exception as exc:  # a broken install raises more than ImportError
        return TorchInfo(None, None, False, [], error=f"torch is not importable: {exc}")
    available = bool(torch.cuda.is_available())
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if available else []
    return TorchInfo(torch.__version__, torch.version.cuda, available, names)


def python_info() -> dict[str, str]:
    return {"version": platform.python_version(), "executable": sys.executable, "platform": platform.platform()}


def tool_version(tool: str, *version_args: str) -> str | None:
    """First line of ``tool --version`` (or the given args), or None when the tool is absent."""
    path = shutil.which(tool)
    if path is None:
        return None
    try:
        out = subprocess.run([path, *(version_args or ("--version",))], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return f"{path} (version unknown)"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else f"{path} (version unknown)"
