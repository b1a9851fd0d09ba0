"""What this machine is and runs: host, CPU, git checkout, Python, torch and its CUDA build, driver, tools.

The one place meter probes the machine it runs on; run files record the answers (meter/results/document.py).
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from meter import __version__
from meter.results.document import GitInfo, HostInfo, SoftwareInfo


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
    driver, cuda_driver = _gpu_driver()
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


def _gpu_driver() -> tuple[str | None, str | None]:
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
