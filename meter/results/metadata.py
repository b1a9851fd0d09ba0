"""What a result needs to be trusted later: device, driver, CUDA, torch, git sha, command, date."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from meter import __version__
from meter.config.hardware import HardwareSpec


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def git_info(repo: Path | None = None) -> dict[str, Any]:
    """sha and dirty flag of the checkout gpu-cost-meter runs from (METER_GIT_SHA overrides, for images)."""
    if os.environ.get("METER_GIT_SHA"):
        return {"sha": os.environ["METER_GIT_SHA"], "dirty": None, "source": "METER_GIT_SHA"}
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None, "source": "not a git checkout"}
    return {"sha": sha or None, "dirty": bool(status.strip()), "source": "git"}


def software_info() -> dict[str, Any]:
    import torch

    try:
        from importlib.metadata import version

        nvml_py = version("nvidia-ml-py")
    except Exception:  # not installed, or metadata unreadable
        nvml_py = None
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "meter": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_git": getattr(torch.version, "git_version", None),
        "cudnn": cudnn,
        "nvidia_ml_py": nvml_py,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info() -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "cpu": cpu_model(), "cpu_count": os.cpu_count()}


def command_line() -> list[str]:
    return [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else []


def hardware_summary(spec: HardwareSpec | None) -> dict[str, Any] | None:
    """The hardware config a run's figures are measured against: peaks, bandwidths, and their source."""
    if spec is None:
        return None
    peak_source = spec.source_for("peak_tflops.bf16")
    return {
        "name": spec.name,
        "display_name": spec.display_name,
        "peak_tflops": dict(spec.peak_tflops),
        "memory_bandwidth_gb_s": spec.memory_bandwidth_gb_s,
        "nvlink_bandwidth_gb_s": spec.nvlink_bandwidth_gb_s,
        "network_bandwidth_gb_s": spec.network_bandwidth_gb_s,
        "source": peak_source.source if peak_source else None,
    }
