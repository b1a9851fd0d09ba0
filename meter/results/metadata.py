"""What a result needs to be trusted later: device, driver, CUDA, torch, git sha, command, date."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from meter import __version__
from meter.config.hardware import HardwareSpec
from meter.results.document import GitInfo, HardwareSummary, HostInfo, SoftwareInfo


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def git_info(repo: Path | None = None) -> GitInfo:
    """sha and dirty flag of the checkout gpu-cost-meter runs from (METER_GIT_SHA overrides, for images)."""
    if os.environ.get("METER_GIT_SHA"):
        return GitInfo(sha=os.environ["METER_GIT_SHA"], dirty=None, source="METER_GIT_SHA")
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
        return GitInfo(sha=None, dirty=None, source="not a git checkout")
    return GitInfo(sha=sha or None, dirty=bool(status.strip()), source="git")


def software_info(*, import_torch: bool = True) -> SoftwareInfo:
    """The software a result was measured with.

    ``import_torch=False`` (a measured job: meter itself runs no torch code) reads torch's version
    from its package metadata, or from the module when the process has already imported it, so
    that metering a job does not cost the seconds importing torch takes.
    """
    driver, cuda_driver = _nvidia_driver()
    common = dict(
        meter=__version__,
        python=platform.python_version(),
        platform=platform.platform() or None,
        nvidia_ml_py=_distribution_version("nvidia-ml-py"),
        driver=driver,
        cuda_driver=cuda_driver,
    )
    if not import_torch and "torch" not in sys.modules:
        return SoftwareInfo(torch=_distribution_version("torch"), **common)
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return SoftwareInfo(
        torch=torch.__version__,
        torch_cuda=torch.version.cuda,
        torch_git=getattr(torch.version, "git_version", None) or None,
        cudnn=cudnn,
        **common,
    )


def _distribution_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # not installed, or metadata unreadable
        return None


def _nvidia_driver() -> tuple[str | None, str | None]:
    """(driver version, CUDA version the driver supports) through the device seam; (None, None) without a driver."""
    from meter.device.gpu import GpuUnavailable, system_info

    try:
        info = system_info()
    except GpuUnavailable:
        return None, None
    return info.driver_version, info.runtime_version


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() or "unknown CPU"
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def host_info() -> HostInfo:
    return HostInfo(hostname=socket.gethostname() or None, cpu=cpu_model(), cpu_count=os.cpu_count())


def command_line() -> list[str]:
    return [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else []


def hardware_summary(spec: HardwareSpec | None) -> HardwareSummary | None:
    """The hardware config a run's figures are measured against: peaks, bandwidths, and their source."""
    if spec is None:
        return None
    peak_source = spec.source_for("peak_tflops.bf16")
    return HardwareSummary(
        name=spec.name,
        display_name=spec.display_name,
        peak_tflops=dict(spec.peak_tflops),
        memory_bandwidth_gb_s=spec.memory_bandwidth_gb_s,
        nvlink_bandwidth_gb_s=spec.nvlink_bandwidth_gb_s,
        network_bandwidth_gb_s=spec.network_bandwidth_gb_s,
        source=peak_source.source if peak_source else None,
    )
