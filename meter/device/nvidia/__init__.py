"""The NVIDIA backend of the GPU seam (:mod:`meter.device.gpu`): NVML through pynvml (``nvidia-ml-py``).

The one package in meter that names NVML or NVIDIA's variables; a second vendor's backend is a sibling
package with the same five names (``open_fleet``, ``system_info``, ``VISIBLE_DEVICES_VARIABLE``,
``KUBELET_RESOURCE_PREFIXES`` and the modules behind them) and one more line in ``gpu.BACKENDS``.

- ``nvml``: the NVML session (init, shutdown, errors turned into meanings);
- ``fleet``: which GPUs to open and the fleet of them; ``visible``: CUDA_VISIBLE_DEVICES as CUDA reads it;
- ``gpu``: one GPU's readings, converted to base units; ``gpm`` and ``health``: its profiling
  metrics and error counters.

Importing this package does not import pynvml; opening a fleet does.
"""

from meter.device.nvidia.fleet import open_fleet, system_info

# The variable NVIDIA's runtime reads to choose the GPUs a process sees (indices, UUIDs, MIG ids).
VISIBLE_DEVICES_VARIABLE = "CUDA_VISIBLE_DEVICES"
# The kubelet resources NVIDIA's device plugin hands out: nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-*.
KUBELET_RESOURCE_PREFIXES: tuple[str, ...] = ("nvidia.com/",)

__all__ = ["KUBELET_RESOURCE_PREFIXES", "VISIBLE_DEVICES_VARIABLE", "open_fleet", "system_info"]
