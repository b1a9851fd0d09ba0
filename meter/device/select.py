"""Which device a benchmark runs on, what it is, and which hardware config describes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from meter.config.hardware import HardwareSpec, match_device_name
from meter.errors import UsageError
from meter.results.document import DeviceInfo


@dataclass(frozen=True)
class ComputeDevice:
    """A torch device with its identity. ``hardware`` is None for a GPU no config matches."""

    kind: Literal["cuda", "cpu"]
    torch_device: str
    name: str
    hardware: HardwareSpec | None
    uuid: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    present: bool = True  # False: a device described by its hardware config only (planning before renting)

    @property
    def label(self) -> str:
        """How tables name the device; a CPU is always called one."""
        return f"CPU ({self.name})" if self.kind == "cpu" else self.name

    @property
    def capability(self) -> tuple[int, int] | None:
        """CUDA compute capability, from the device itself or (planning) its hardware config."""
        text = self.properties.get("compute_capability")
        if text:
            major, minor = str(text).split(".")
            return int(major), int(minor)
        return self.hardware.capability if self.hardware is not None else None

    def info(self) -> DeviceInfo:
        """The device as a run file records it."""
        return DeviceInfo(
            kind=self.kind,
            torch_device=self.torch_device,
            name=self.name,
            uuid=self.uuid,
            hardware_config=self.hardware.name if self.hardware else None,
            **self.properties,
        )


def select_device(request: str, specs: list[HardwareSpec]) -> ComputeDevice:
    """Resolve ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; ``auto`` takes the first GPU if there is one."""
    import torch

    if request not in ("auto", "cpu", "cuda") and not request.startswith("cuda:"):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, not {request!r}")
    if request == "cpu" or (request == "auto" and not torch.cuda.is_available()):
        return cpu_device(specs)
    if not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise UsageError(f"--device {request}: no CUDA device is available (torch {torch.__version__}, {build})")
    index = int(request.split(":", 1)[1]) if ":" in request else 0
    if index >= torch.cuda.device_count():
        raise UsageError(f"--device {request}: only {torch.cuda.device_count()} CUDA device(s) visible")
    props = torch.cuda.get_device_properties(index)
    spec = match_device_name(props.name, specs)
    uuid = str(getattr(props, "uuid", "") or "") or None
    if uuid and not uuid.startswith("GPU-"):
        uuid = f"GPU-{uuid}"
    return ComputeDevice(
        kind="cuda",
        torch_device=f"cuda:{index}",
        name=props.name,
        hardware=spec,
        uuid=uuid,
        properties={
            "memory_bytes": props.total_memory,
            "sm_count": props.multi_processor_count,
            "l2_cache_bytes": getattr(props, "L2_cache_size", None),
            "compute_capability": f"{props.major}.{props.minor}",
        },
    )


def planned_device(spec: HardwareSpec) -> ComputeDevice:
    """A GPU that is not at hand, as its hardware config describes it: what ``meter bench --plan`` plans for."""
    return ComputeDevice(
        kind="cuda" if spec.kind == "gpu" else "cpu",
        torch_device="cuda" if spec.kind == "gpu" else "cpu",
        name=spec.display_name,
        hardware=spec,
        properties={"memory_bytes": spec.memory_bytes, "compute_capability": spec.compute_capability},
        present=False,
    )


def cpu_device(specs: list[HardwareSpec]) -> ComputeDevice:
    import os

    import torch

    from meter.device.host import cpu_model

    spec = next((s for s in specs if s.kind == "cpu"), None)
    return ComputeDevice(
        kind="cpu",
        torch_device="cpu",
        name=cpu_model(),
        hardware=spec,
        properties={
            "memory_bytes": _meminfo("MemTotal"),
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
        },
    )


def free_memory_bytes(device: ComputeDevice) -> int | None:
    """Memory a new workload can take now: CUDA's free memory, or Linux's MemAvailable."""
    if device.kind == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device.torch_device)
        return int(free)
    return _meminfo("MemAvailable")


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
