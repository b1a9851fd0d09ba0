"""The GPUs a job may use, watched by one telemetry monitor.

A child process sees the GPUs that ``CUDA_VISIBLE_DEVICES`` selects (indices, UUIDs or a unique
UUID prefix, MIG instances: see :func:`meter.device.nvidia.visible.visible_nvml_indices`), all of them
when it is unset. The Python API may narrow that to some of them (``gpus=[0]``: CUDA's index 0 in
this process). Without NVML there is no monitor, and the reason says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from meter.config.hardware import HardwareSpec, match_device_name
from meter.device.gpu import (
    GpuLost,
    GpuUnavailable,
    Selection,
    open_gpus,
    visible_devices_setting,
    visible_devices_variables,
)
from meter.errors import UsageError
from meter.telemetry.monitor import Monitor
from meter.telemetry.sources import GpuSource


@dataclass(frozen=True)
class WatchedGpu:
    """One GPU under the monitor: its telemetry key, identity and matched hardware config."""

    key: str
    index: int
    name: str
    uuid: str | None
    memory_total_bytes: int | None
    hardware: HardwareSpec | None


def open_gpu_monitor(
    cuda_indices: Sequence[int] | None,
    *,
    specs: list[HardwareSpec],
    interval_s: float,
    say: Callable[[str], None],
    cuda_uuids: list[str] | None = None,
) -> tuple[Monitor | None, list[WatchedGpu], str | None]:
    """(monitor, GPUs, None), or (None, [], why there is no GPU telemetry). The monitor is not started."""
    if cuda_indices is not None and not cuda_indices:
        return None, [], "no GPU asked for (gpus=[])"
    try:
        fleet = open_gpus(Selection())  # the GPUs this process's runtime sees (the visible-devices variable)
    except (GpuUnavailable, GpuLost) as exc:
        return None, [], f"no GPU telemetry: {exc}"
    try:
        devices = _select(_in_cuda_order(list(fleet.gpus), cuda_uuids), cuda_indices)
    except BaseException:
        fleet.close()
        raise
    for index, why in fleet.unopened:
        say(f"meter: GPU {index} did not answer and is not metered ({why})")
    if not devices:
        fleet.close()
        return None, [], f"no GPU telemetry: {' or '.join(visible_devices_variables())} selects no GPU that answers"
    sources = [GpuSource(d) for d in devices]
    gpus = [
        WatchedGpu(
            key=s.key,
            index=d.index,
            name=d.identity.name,
            uuid=d.identity.uuid or None,
            memory_total_bytes=d.identity.memory_total_bytes,
            hardware=match_device_name(d.identity.name, specs),
        )
        for s, d in zip(sources, devices)
    ]
    return Monitor(sources, interval_s=interval_s, on_event=say, fleet=fleet), gpus, None


def _in_cuda_order(devices: list, cuda_uuids: list[str] | None) -> list:
    """The visible GPUs in CUDA's order: torch's UUIDs when it has initialised CUDA, else the driver's."""
    if not cuda_uuids:
        return devices
    by_uuid = {d.identity.uuid: d for d in devices}
    ordered = [by_uuid[u] for u in cuda_uuids if u in by_uuid]
    return ordered if len(ordered) == len(cuda_uuids) else devices


def _select(devices: list, cuda_indices: Sequence[int] | None) -> list:
    if cuda_indices is None:
        return devices
    out = []
    for i in cuda_indices:
        if isinstance(i, bool) or not isinstance(i, int) or i < 0 or i >= len(devices):
            raise UsageError(
                f"gpus: no CUDA device {i!r} in this process ({len(devices)} visible; {visible_devices_setting()})"
            )
        if devices[i] not in out:
            out.append(devices[i])
    return out


def cuda_uuids_if_initialised() -> list[str] | None:
    """The UUIDs of this process's CUDA devices when torch has already initialised CUDA (exact order)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    uuids = []
    for i in range(torch.cuda.device_count()):
        uuid = str(getattr(torch.cuda.get_device_properties(i), "uuid", "") or "")
        if not uuid:
            return None
        uuids.append(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
    return uuids
