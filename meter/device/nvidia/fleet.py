"""The NVIDIA backend of the GPU seam: an NVML session and the GPUs it opened."""

from __future__ import annotations

from meter.device.gpu import GpuLost, GpuUnavailable, Selection, SystemInfo
from meter.device.nvidia.gpu import NvmlGpu
from meter.device.nvidia.nvml import NvmlSession
from meter.device.nvidia.visible import uuid_of, visible_nvml_indices


class NvmlFleet:
    """GPUs read through one NVML session; ``close`` releases them and shuts NVML down."""

    def __init__(self, session: NvmlSession, indices: list[int]):
        self.session = session
        self.gpus: list[NvmlGpu] = []
        self.unopened: list[tuple[int, str]] = []
        for index in indices:
            try:
                self.gpus.append(NvmlGpu(session, index))
            except GpuLost as exc:  # a GPU lost before we opened it: the others still count
                self.unopened.append((index, str(exc)))

    def system(self) -> SystemInfo:
        return _system(self.session)

    def close(self) -> None:
        for gpu in self.gpus:
            try:
                gpu.close()
            except GpuLost:
                pass
        self.session.__exit__(None, None, None)

    def __enter__(self) -> NvmlFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def select_indices(session: NvmlSession, selection: Selection) -> list[int]:
    """NVML indices of the selected GPUs (see :class:`Selection`)."""
    if selection.all_gpus:
        return list(range(session.device_count()))
    visible = visible_nvml_indices(session, selection.visible)
    if selection.uuid:
        for i in range(session.device_count()):
            if uuid_of(session, i) == selection.uuid:
                return [i]
    if selection.cuda_index is not None:
        if selection.cuda_index >= len(visible):
            raise GpuUnavailable(
                f"CUDA device {selection.cuda_index} has no NVML counterpart "
                f"(CUDA_VISIBLE_DEVICES={selection.visible!r})"
            )
        return [visible[selection.cuda_index]]
    return visible


def open_fleet(selection: Selection) -> NvmlFleet:
    """Initialise NVML and open the selected GPUs (NvmlUnavailable says why NVML cannot start)."""
    session = NvmlSession().__enter__()
    try:
        return NvmlFleet(session, select_indices(session, selection))
    except BaseException:
        session.__exit__(None, None, None)
        raise


def _system(session: NvmlSession) -> SystemInfo:
    return SystemInfo(
        vendor="nvidia",
        library="nvml",
        driver_version=session.driver_version(),
        library_version=session.nvml_version(),
        runtime_version=session.cuda_driver_version(),
    )


def system_info() -> SystemInfo:
    """Driver and library versions through a short NVML session (NvmlUnavailable says why not)."""
    with NvmlSession() as session:
        return _system(session)
