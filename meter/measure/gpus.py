"""The GPUs a job may use, watched by one telemetry monitor.

A child process sees the GPUs that ``CUDA_VISIBLE_DEVICES`` selects (indices, UUIDs or a unique
UUID prefix, MIG instances: see :func:`meter.device.visible.visible_nvml_indices`), all of them
when it is unset. The Python API may narrow that to some of them (``gpus=[0]``: CUDA's index 0 in
this process). Without NVML there is no monitor, and the reason says why.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from meter.config.hardware import HardwareSpec, match_nvml_name
from meter.device.nvml import GpuLost, NvmlSession, NvmlUnavailable
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
        session = NvmlSession().__enter__()
    except NvmlUnavailable as exc:
        return None, [], f"no GPU telemetry: {exc}"
    try:
        visible = _visible(session, cuda_uuids)
        indices = _select(visible, cuda_indices)
        sources = [_source(session, i) for i in indices]
    except (GpuLost, UsageError, NvmlUnavailable) as exc:
        session.__exit__(None, None, None)
        if isinstance(exc, UsageError):
            raise
        return None, [], f"no GPU telemetry: {exc}"
    if not sources:
        session.__exit__(None, None, None)
        return None, [], "no GPU telemetry: CUDA_VISIBLE_DEVICES selects no GPU"
    gpus = [
        WatchedGpu(
            key=s.key,
            index=s.gpu.index,
            name=s.gpu.identity.name,
            uuid=s.gpu.identity.uuid or None,
            memory_total_bytes=s.gpu.identity.memory_total_bytes,
            hardware=match_nvml_name(s.gpu.identity.name, specs),
        )
        for s in sources
    ]
    return Monitor(sources, interval_s=interval_s, on_event=say, session=session), gpus, None


def _visible(session: NvmlSession, cuda_uuids: list[str] | None) -> list[int]:
    from meter.device.visible import visible_nvml_indices

    return visible_nvml_indices(session, os.environ.get("CUDA_VISIBLE_DEVICES"), cuda_uuids)


def _select(visible: list[int], cuda_indices: Sequence[int] | None) -> list[int]:
    if cuda_indices is None:
        return visible
    out = []
    for i in cuda_indices:
        if isinstance(i, bool) or not isinstance(i, int) or i < 0 or i >= len(visible):
            raise UsageError(
                f"gpus: no CUDA device {i!r} in this process ({len(visible)} visible; "
                f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
            )
        if visible[i] not in out:
            out.append(visible[i])
    return out


def _source(session: NvmlSession, index: int) -> GpuSource:
    from meter.device.nvml_gpu import NvmlGpu

    return GpuSource(NvmlGpu(session, index))


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
