"""Ceilings measured on the device itself: a large copy and large GEMMs, cached per device.

Datasheet peaks are leads; these measurements are what a workload can be compared with. The copy
counts bytes read plus bytes written; the GEMMs run on random data (never zeros). The fp8 ceiling
is a rowwise-scaled ``scaled_mm`` on pre-quantised operands (where the device runs fp8), the
yardstick of the fp8 expert GEMMs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from meter.bench.stats import summarize
from meter.bench.timer import GPU_DEFAULTS, time_cpu, time_cuda
from meter.config.schema import build_dataclass
from meter.device.select import ComputeDevice
from meter.errors import ConfigError, OutputError
from meter.jsonable import to_jsonable
from meter.results.atomic import write_json_atomic
from meter.results.document import Ceilings, CeilingsMethod
from meter.results.metadata import utc_now
from meter.results.records import TimingSettings

__all__ = ["Ceilings", "load_cached", "measure"]

CACHE_ENV = "METER_CACHE_DIR"
CEILINGS_VERSION = 2  # 2: adds the fp8 GEMM ceiling; a cache of an older version is measured again


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gpu-cost-meter"


def device_key(device: ComputeDevice) -> str:
    import torch

    ident = device.uuid or f"{device.name}-{device.properties.get('threads')}threads"
    key = f"{device.kind}-{ident}-torch{torch.__version__}-v{CEILINGS_VERSION}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", key).strip("-")


def _cache_path(device: ComputeDevice) -> Path:
    return cache_dir() / "ceilings" / f"{device_key(device)}.json"


def load_cached(device: ComputeDevice) -> Ceilings | None:
    """The cached ceilings of this device; None when absent, unreadable or not valid (then measure again)."""
    path = _cache_path(device)
    try:
        return build_dataclass(Ceilings, json.loads(path.read_text(encoding="utf-8")), path=path)
    except (OSError, ValueError, ConfigError, RecursionError):
        return None


def measure(device: ComputeDevice, *, save: bool = True) -> Ceilings:
    """Time a large copy and large GEMMs on ``device``; cache the result unless ``save`` is False."""
    import torch

    dev = device.torch_device
    if device.kind == "cuda":
        copy_elems, gemm_sizes, dtypes = 2**28, (4096, 8192), ("bf16", "fp16", "fp32")  # 1 GiB fp32 copy
        fp8_sizes = (4096, 8192)
        settings = GPU_DEFAULTS

        def timer(call):
            return time_cuda(call, settings, l2_bytes=device.properties.get("l2_cache_bytes"), device=dev)
    else:
        # A CPU's best GEMM rate depends on size (caches): take the best of a few sizes.
        copy_elems, gemm_sizes, dtypes = 2**26, (256, 512, 1024, 2048), ("fp32", "bf16")  # 256 MiB fp32 copy
        fp8_sizes = (512,)  # the CPU's fp8 scaled_mm is a slow emulation: one size says what it is
        settings = TimingSettings(warmup_s=0.3, min_warmup_calls=2, min_time_s=0.3, min_repeats=3, max_repeats=200)

        def timer(call):
            return time_cpu(call, settings)

    copy_rate = _copy_rate(timer, copy_elems, dev)
    dtype_map = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    gemm: dict[str, float] = {}
    for name in dtypes:
        for n in gemm_sizes:
            gemm[name] = max(gemm.get(name, 0.0), _gemm_rate(timer, n, dtype_map[name], dev))
    fp8_method = _fp8_unavailable(dev)
    if fp8_method is None:
        for n in fp8_sizes:
            gemm["fp8"] = max(gemm.get("fp8", 0.0), _fp8_rate(timer, n, dev))
    result = Ceilings(
        device_key=device_key(device),
        copy_bytes_per_s=copy_rate,
        gemm_flops_per_s=gemm,
        measured_at=utc_now().isoformat(),
        method=CeilingsMethod(
            copy=f"{copy_elems * 4 / 2**20:.0f} MiB fp32 tensor copy, bytes read + written, median",
            gemm=f"square torch.mm of sizes {list(gemm_sizes)} on random data; best median rate; "
            + (
                f"fp8: rowwise-scaled F.scaled_mm of sizes {list(fp8_sizes)} on pre-quantised random operands"
                if fp8_method is None
                else f"no fp8 ceiling ({fp8_method})"
            ),
            timer="cuda-events" if device.kind == "cuda" else "wall-clock",
            settings=settings,
        ),
    )
    if save:
        try:
            write_json_atomic(_cache_path(device), to_jsonable(result))
        except OutputError:
            pass  # only a cache: the run has its ceilings either way
    return result


def _copy_rate(timer, elems: int, dev) -> float:
    """Bytes read plus written per second by a device-to-device copy of ``elems`` fp32 values."""
    import torch

    src = torch.rand(elems, device=dev)
    dst = torch.empty_like(src)
    return 2 * src.numel() * src.element_size() / summarize(timer(lambda i: dst.copy_(src))).median_s


def _gemm_rate(timer, n: int, dtype, dev) -> float:
    """FLOP/s of an n x n x n matrix product (the operands are freed when this returns)."""
    import torch

    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    return 2 * n**3 / summarize(timer(lambda i: torch.mm(a, b))).median_s


def _fp8_unavailable(dev: str) -> str | None:
    import torch

    from kernels.fp8 import fp8_support

    return fp8_support(torch.device(dev), "rowwise")


def _fp8_rate(timer, n: int, dev) -> float:
    """FLOP/s of an n x n x n rowwise-scaled fp8 product on pre-quantised operands, bf16 out."""
    import torch
    import torch.nn.functional as F

    from kernels.fp8 import quantize_rowwise

    a_q, a_s = quantize_rowwise(torch.randn(n, n, device=dev))
    b_q, b_s = quantize_rowwise(torch.randn(n, n, device=dev))
    b_s = b_s.t()

    def call(i: int) -> None:
        F.scaled_mm(a_q, b_q.t(), a_s, F.ScalingType.RowWise, b_s, F.ScalingType.RowWise, output_dtype=torch.bfloat16)

    return 2 * n**3 / summarize(timer(call)).median_s
