"""Which NVML devices the CUDA programs of this process see (CUDA_VISIBLE_DEVICES), matched by UUID."""

from __future__ import annotations

from meter.device.nvidia.nvml import GpuLost, NvmlSession


def visible_nvml_indices(
    nvml: NvmlSession, cuda_visible_devices: str | None, cuda_uuids: list[str] | None = None
) -> list[int]:
    """NVML indices of the GPUs this process's CUDA sees, in CUDA's order.

    ``cuda_uuids`` (from torch, when CUDA is initialised) is the exact answer and wins. Otherwise
    ``CUDA_VISIBLE_DEVICES`` is read the way CUDA reads it: indices or UUIDs (a unique prefix is
    enough), and the list stops at the first entry that matches nothing. Index entries assume
    CUDA_DEVICE_ORDER=PCI_BUS_ID, which is NVML's order. MIG entries select the GPUs with MIG
    enabled: power and energy exist only for the whole GPU.
    """
    count = nvml.device_count()
    uuids = [uuid_of(nvml, i) for i in range(count)]
    if cuda_uuids:
        return [uuids.index(u) for u in cuda_uuids if u in uuids]
    if cuda_visible_devices is None:
        return list(range(count))
    selected: list[int] = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        match = _match(entry, uuids, nvml)
        if match is None:
            break  # CUDA ignores everything after an entry it cannot resolve
        for index in match:
            if index not in selected:
                selected.append(index)
    return selected


def _match(entry: str, uuids: list[str], nvml: NvmlSession) -> list[int] | None:
    if not entry:
        return None
    if entry.isdigit():
        index = int(entry)
        return [index] if index < len(uuids) else None
    if entry.startswith("MIG-"):
        migs = [i for i in range(len(uuids)) if uuids[i] and nvml.identity(i).mig_enabled]
        return migs or None
    wanted = entry if entry.startswith("GPU-") else "GPU-" + entry
    hits = [i for i, u in enumerate(uuids) if u.startswith(wanted)]
    return hits if len(hits) == 1 else None


def uuid_of(nvml: NvmlSession, index: int) -> str:
    """The GPU's UUID, or "" for one that does not answer (it matches no entry)."""
    try:
        return nvml.identity(index).uuid
    except GpuLost:
        return ""
