"""Ceilings measured on the device itself: a large copy and GEMMs, cached per device.

Datasheet peaks are leads; these measurements are what a workload can be compared with. The copy
counts bytes read plus bytes written; the GEMMs run on random data (never zeros). The fp8 ceiling
is a rowwise-scaled ``scaled_mm`` on pre-quantised operands (where the device runs fp8), the
yardstick of the fp8 expert GEMMs.

Only the precisions a run's cases use are measured, each under its own time cap: sizes grow from a
small probe, and the next size is tried only when the rate just measured says it fits in what is
left of the cap (a CPU without native bf16 runs a 2048^3 bf16 GEMM for minutes; the probe sees it
coming). A ceiling records the machine it was measured on and how busy that machine was; a cached
one from another machine, or measured under load, or flagged since (a case went past it), is
measured again rather than trusted.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from meter.bench.stats import summarize
from meter.bench.timer import GPU_DEFAULTS, time_cpu, time_cuda
from meter.config.schema import build_dataclass
from meter.device.select import ComputeDevice
from meter.errors import ConfigError, OutputError
from meter.jsonable import to_jsonable
from meter.results.atomic import write_json_atomic
from meter.results.document import Ceilings, CeilingsLoad, CeilingsMachine, CeilingsMethod, CeilingsRepeat
from meter.results.metadata import utc_now
from meter.results.records import CaseResult, TimingSettings

__all__ = ["Ceilings", "load_cached", "measure", "needed_dtypes", "trusted", "exceeded"]

CACHE_ENV = "METER_CACHE_DIR"
CEILINGS_VERSION = 3  # 3: per-dtype adaptive sizes, the machine and its load; older caches are measured again
GEMM_DTYPES = ("fp32", "bf16", "fp16", "fp8")
EXCEEDED_BY = 1.10  # a case past 110% of a ceiling says the ceiling is wrong, not the case
CPU_CAP_S = 2.0  # per ceiling on a CPU
GPU_CAP_S = 12.0
CPU_GEMM_SIZES = (128, 256, 512, 1024, 2048)
GPU_GEMM_SIZES = (1024, 2048, 4096, 8192)
CPU_COPY_ELEMS = (2**22, 2**24, 2**26)  # 16 MiB .. 256 MiB of fp32; the largest that fits is kept
GPU_COPY_ELEMS = (2**26, 2**28)  # 256 MiB, 1 GiB
CPU_SETTINGS = TimingSettings(warmup_s=0.03, min_warmup_calls=1, min_time_s=0.12, min_repeats=3, max_repeats=60)
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile", "asimd", "sve")


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


def cache_path(device: ComputeDevice) -> Path:
    return cache_dir() / "ceilings" / f"{device_key(device)}.json"


def needed_dtypes(cases: Iterable) -> list[str]:
    """The GEMM precisions a run's cases are compared with (an fp8 case: its bf16 GEMMs and the fp8 ones)."""
    found: set[str] = set()
    for case in cases:
        found.add(case.dtype)
        if getattr(case, "fp8", None):
            found.update(("bf16", "fp8"))
    return [d for d in GEMM_DTYPES if d in found]


def default_dtypes(device: ComputeDevice) -> list[str]:
    """Every precision the device's ceilings cover when no run says which (``meter bench --ceilings``)."""
    return ["bf16", "fp16", "fp32", "fp8"] if device.kind == "cuda" else ["fp32", "bf16", "fp8"]


def current_machine(device: ComputeDevice) -> CeilingsMachine:
    import torch

    if device.kind == "cuda":
        from meter.results.metadata import software_info

        sw = software_info()
        return CeilingsMachine("cuda", device.name, torch.__version__, driver=sw.driver, cuda=torch.version.cuda)
    from meter.results.metadata import cpu_model

    return CeilingsMachine(
        "cpu", cpu_model(), torch.__version__, cpu_flags=_cpu_flags(), threads=torch.get_num_threads()
    )


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return [f for f in SIMD_FLAGS if f in have]
    except OSError:
        pass
    return []


def load_cached(device: ComputeDevice) -> Ceilings | None:
    """The cached ceilings of this device; None when absent, unreadable or not valid (then measure again)."""
    path = cache_path(device)
    try:
        return build_dataclass(Ceilings, json.loads(path.read_text(encoding="utf-8")), path=path)
    except (OSError, ValueError, ConfigError, RecursionError):
        return None


def forget(device: ComputeDevice) -> None:
    """Drop the cached ceilings (a case went past them): the next run measures them again."""
    try:
        cache_path(device).unlink()
    except OSError:
        pass


def store(device: ComputeDevice, ceilings: Ceilings) -> None:
    try:
        write_json_atomic(cache_path(device), to_jsonable(ceilings))
    except OutputError:
        pass  # only a cache: the run has its ceilings either way


def distrust(cached: Ceilings, device: ComputeDevice, dtypes: Iterable[str]) -> str | None:
    """Why ``cached`` must be measured again for a run that uses ``dtypes``; None when it can be used."""
    if cached.machine is None or cached.load is None:
        return "the cache does not say which machine or load it was measured under"
    if cached.machine != current_machine(device):
        return "it was measured on another machine or torch"
    if cached.load.loaded:
        return f"it was measured under load ({_load_text(cached.load)})"
    if cached.flags:
        return cached.flags[0]
    missing = [d for d in dtypes if d not in cached.gemm_flops_per_s and not _unavailable(cached, d)]
    if missing:
        return f"it has no {', '.join(missing)} GEMM ceiling"
    return None


def _unavailable(c: Ceilings, dtype: str) -> bool:
    return dtype == "fp8" and "no fp8 ceiling" in c.method.gemm


def trusted(
    device: ComputeDevice,
    dtypes: Iterable[str],
    *,
    remeasure: bool = False,
    say: Callable[[str], None] = lambda m: None,
) -> Ceilings:
    """The device's ceilings for ``dtypes``: the cache when it can be trusted, else measured now (and cached)."""
    dtypes = list(dtypes)
    cached = None if remeasure else load_cached(device)
    why = "asked to measure them again" if remeasure else "none cached"
    if cached is not None:
        why = distrust(cached, device, dtypes)
        if why is None:
            return cached
    say(f"ceilings of {device.label}: measuring ({why}); cached for later runs, --no-ceilings skips them")
    result = measure(device, dtypes=dtypes, say=say, save=False)
    if result.load and result.load.loaded:
        say(
            f"ceilings: measured under load ({_load_text(result.load)}); flagged in the run file, measured again next run"
        )
    store(device, result)
    return result


def exceeded(ceilings: Ceilings | None, results: Iterable[CaseResult]) -> list[str]:
    """Each case that went past a ceiling by more than 10%: the ceiling, not the case, is then in doubt."""
    if ceilings is None:
        return []
    found = []
    for r in results:
        if not r.ok:
            continue
        m = r.metrics
        for what, frac in (("GEMM", m.gemm_ceiling_fraction), ("copy", m.copy_ceiling_fraction)):
            if frac is not None and frac > EXCEEDED_BY:
                precision = ("bf16" if r.case.fp8 else r.case.dtype) if what == "GEMM" else ""
                found.append(
                    f"case {r.id} reached {frac * 100:.0f}% of the {precision + ' ' if precision else ''}{what} ceiling"
                )
        for p in r.parts:
            if p.ceiling_fraction is not None and p.ceiling_fraction > EXCEEDED_BY:
                found.append(
                    f"case {r.id} part {p.name} reached {p.ceiling_fraction * 100:.0f}% of the {p.precision} GEMM ceiling"
                )
    return found


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class _Cap:
    """A time cap for one ceiling: a size is tried only when its predicted time fits what is left."""

    seconds: float
    settings: TimingSettings
    started: float = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()

    def fits(self, call_s: float) -> bool:
        s = self.settings
        predicted = max(s.warmup_s + s.min_time_s, (s.min_warmup_calls + s.min_repeats) * call_s) * 1.2
        return time.perf_counter() - self.started + predicted <= self.seconds


def measure(
    device: ComputeDevice,
    *,
    dtypes: Iterable[str] | None = None,
    save: bool = True,
    say: Callable[[str], None] = lambda m: None,
    cap_s: float | None = None,
) -> Ceilings:
    """Time a copy and GEMMs in ``dtypes`` (default: all the device runs) on ``device``, each under a cap."""
    import torch

    dev = device.torch_device
    wanted = [d for d in GEMM_DTYPES if d in set(dtypes if dtypes is not None else default_dtypes(device))]
    if device.kind == "cuda":
        settings, sizes, copy_sizes = GPU_DEFAULTS, GPU_GEMM_SIZES, GPU_COPY_ELEMS
        cap = cap_s or GPU_CAP_S

        def timer(call):
            return time_cuda(call, settings, l2_bytes=device.properties.get("l2_cache_bytes"), device=dev)
    else:
        settings, sizes, copy_sizes = CPU_SETTINGS, CPU_GEMM_SIZES, CPU_COPY_ELEMS
        cap = cap_s or CPU_CAP_S

        def timer(call):
            return time_cpu(call, settings)

    fp8_method = _fp8_unavailable(dev) if "fp8" in wanted else None
    gemm_dtypes = [d for d in wanted if not (d == "fp8" and fp8_method is not None)]
    total = 1 + len(gemm_dtypes)
    load = _LoadMeter()
    started = time.perf_counter()

    say(f"  ceiling 1/{total}: copy bandwidth (cap {cap:g} s)")
    copy_rate, copy_elems = _largest_copy(timer, copy_sizes, dev, _Cap(cap, settings))
    say(f"  ceiling 1/{total}: copy {copy_rate / 1e9:.3g} GB/s ({copy_elems * 4 / 2**20:.0f} MiB fp32)")
    gemm: dict[str, float] = {}
    best_n: dict[str, int] = {}
    torch_dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    for i, name in enumerate(gemm_dtypes, start=2):
        say(f"  ceiling {i}/{total}: {name} GEMM (cap {cap:g} s)")
        if name == "fp8":
            rate_of = lambda n: _fp8_rate(timer, n, dev)  # noqa: E731
        else:
            rate_of = lambda n, dt=torch_dtypes[name]: _gemm_rate(timer, n, dt, dev)  # noqa: E731
        gemm[name], best_n[name] = _best_gemm(rate_of, sizes, _Cap(cap, settings))
        say(f"  ceiling {i}/{total}: {name} GEMM {gemm[name] / 1e12:.3g} TFLOP/s (n={best_n[name]})")
    measured_load = load.finish(device)
    flags = [f"measured under load ({_load_text(measured_load)})"] if measured_load.loaded else []
    result = Ceilings(
        device_key=device_key(device),
        copy_bytes_per_s=copy_rate,
        gemm_flops_per_s=gemm,
        measured_at=utc_now().isoformat(),
        method=CeilingsMethod(
            copy=f"{copy_elems * 4 / 2**20:.0f} MiB fp32 tensor copy (the largest of {len(copy_sizes)} sizes within "
            f"{cap:g} s), bytes read + written, median",
            gemm=f"square torch.mm of growing sizes from {list(sizes)}, each tried when the rate so far says it fits "
            f"in {cap:g} s, on random data; best median rate; dtypes {gemm_dtypes}"
            + (
                "; fp8: rowwise-scaled F.scaled_mm on pre-quantised random operands"
                if "fp8" in gemm_dtypes
                else (f"; no fp8 ceiling ({fp8_method})" if fp8_method else "")
            ),
            timer="cuda-events" if device.kind == "cuda" else "wall-clock",
            settings=settings,
        ),
        machine=current_machine(device),
        load=measured_load,
        gemm_sizes=best_n,
        flags=flags,
    )
    say(f"  ceilings measured in {time.perf_counter() - started:.1f} s")
    if save:
        store(device, result)
    return result


def best_of(first: Ceilings, again: Ceilings) -> Ceilings:
    """Two measurements of the same ceilings: each the higher (a ceiling is the best rate the device
    reaches; a lower one was slowed by something else). Load and flags are the later measurement's."""
    gemm = {
        d: max(first.gemm_flops_per_s.get(d, 0.0), again.gemm_flops_per_s.get(d, 0.0))
        for d in {*first.gemm_flops_per_s, *again.gemm_flops_per_s}
    }
    sizes = {
        d: (
            again if again.gemm_flops_per_s.get(d, 0.0) >= first.gemm_flops_per_s.get(d, 0.0) else first
        ).gemm_sizes.get(d)
        for d in gemm
    }
    return replace(
        again,
        copy_bytes_per_s=max(first.copy_bytes_per_s, again.copy_bytes_per_s),
        gemm_flops_per_s=gemm,
        gemm_sizes={d: n for d, n in sizes.items() if n},
    )


def with_repeat(ceilings: Ceilings, again: Ceilings) -> Ceilings:
    """``ceilings`` with ``again`` (the same ones measured later) kept beside them as their repeat."""
    return replace(
        ceilings,
        repeat=CeilingsRepeat(again.copy_bytes_per_s, dict(again.gemm_flops_per_s), again.measured_at),
    )


def rebased(r: CaseResult, ceilings: Ceilings) -> CaseResult:
    """A case's fractions of the ceilings, against ``ceilings`` (its achieved rates unchanged)."""
    if not r.ok:
        return r
    m = r.metrics
    gemm = ceilings.gemm("bf16" if r.case.fp8 else r.case.dtype)
    metrics = replace(
        m,
        gemm_ceiling_fraction=m.achieved_tflops * 1e12 / gemm if gemm else None,
        copy_ceiling_fraction=m.achieved_gb_s * 1e9 / ceilings.copy_bytes_per_s,
    )
    parts = [
        replace(p, ceiling_fraction=p.achieved_tflops * 1e12 / c if (c := ceilings.gemm(p.precision)) else None)
        for p in r.parts
    ]
    return replace(r, metrics=metrics, parts=parts)


def flagged(ceilings: Ceilings, reasons: list[str]) -> Ceilings:
    return replace(ceilings, flags=[*ceilings.flags, *(r for r in reasons if r not in ceilings.flags)])


def _best_gemm(rate_of: Callable[[int], float], sizes: tuple[int, ...], cap: _Cap) -> tuple[float, int]:
    """The best rate over growing sizes; the first always runs, each next one only if it fits the cap."""
    cap.start()
    best, best_n, rate = 0.0, sizes[0], 0.0
    for k, n in enumerate(sizes):
        # The rate just measured predicts the next size's call (a GEMM's rate only grows with size
        # until it saturates, so this over-estimates the time: a safe side).
        if k > 0 and not cap.fits(2 * n**3 / rate):
            break
        rate = rate_of(n)
        if rate > best:
            best, best_n = rate, n
    return best, best_n


def _largest_copy(timer, sizes: tuple[int, ...], dev, cap: _Cap) -> tuple[float, int]:
    """The copy rate of the largest size that fits the cap (a small copy stays in cache and flatters)."""
    cap.start()
    rate, elems = 0.0, sizes[0]
    for k, n in enumerate(sizes):
        if k > 0 and not cap.fits(2 * n * 4 / rate):
            break
        rate, elems = _copy_rate(timer, n, dev), n
    return rate, elems


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


# --- the machine's load -------------------------------------------------------------------------


def _load_text(load: CeilingsLoad) -> str:
    others = f"other processes used {load.others_busy_cpus:.2f} of {load.cpu_count} CPUs"
    avg = f"load average {load.loadavg_1m:.2f}" if load.loadavg_1m is not None else ""
    return others + (f", {avg}" if avg else "") if load.others_busy_cpus is not None else avg or "load unknown"


def loaded_threshold_cpus(cpu_count: int) -> float:
    """Other processes' use, in CPUs, above which a CPU ceiling is taken as measured under load."""
    return max(0.25, 0.1 * cpu_count)


def _busy_s() -> float | None:
    """CPU-seconds the whole machine has been busy (all processes), from /proc/stat; None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _own_s() -> float:
    t = os.times()
    return t.user + t.system


class _LoadMeter:
    """What other processes did while this one measured: machine busy time less this process's own."""

    def __init__(self) -> None:
        self.cpu_count = os.cpu_count() or 1
        try:
            self.loadavg = os.getloadavg()[0]
        except OSError:
            self.loadavg = None
        self.wall, self.busy, self.own = time.perf_counter(), _busy_s(), _own_s()

    def finish(self, device: ComputeDevice) -> CeilingsLoad:
        wall = time.perf_counter() - self.wall
        busy = _busy_s()
        others = None
        if busy is not None and self.busy is not None and wall > 0:
            others = max(0.0, (busy - self.busy - (_own_s() - self.own)) / wall)
        if others is not None:
            loaded = others > loaded_threshold_cpus(self.cpu_count)
        else:
            loaded = self.loadavg is not None and self.loadavg > 0.75 * self.cpu_count
        if device.kind == "cuda":
            loaded = False  # a busy host does not slow a GPU's own GEMMs; the case check still applies
        return CeilingsLoad(
            cpu_count=self.cpu_count,
            loadavg_1m=round(self.loadavg, 2) if self.loadavg is not None else None,
            others_busy_cpus=round(others, 3) if others is not None else None,
            loaded=loaded,
        )
