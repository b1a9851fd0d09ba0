"""From a median time to rates and efficiencies: pure arithmetic, units in every name."""

from __future__ import annotations

from meter.config.hardware import HardwareSpec
from meter.results.document import Ceilings
from meter.results.records import CaseMetrics, PartResult, Timing


def case_metrics(
    *,
    median_s: float,
    flops_per_call: float,
    bytes_per_call: float,
    tokens_per_call: int,
    dtype: str,
    fp8: bool,
    hardware: HardwareSpec | None,
    ceilings: Ceilings | None,
) -> CaseMetrics:
    """Rates and efficiencies of one case.

    ``mfu`` is against the datasheet's dense bf16 peak, as DeepSeek reports MFU even for fp8
    GEMMs; ``peak_fraction_dtype`` is against the peak of the precision actually used. Both are
    None without a datasheet (a CPU, an unknown GPU); the fractions of ceilings measured on the
    device itself are given whenever ceilings were measured.
    """
    flops_per_s = flops_per_call / median_s
    bytes_per_s = bytes_per_call / median_s
    bf16_peak = hardware.peak_flops("bf16") if hardware else None
    dtype_peak = hardware.peak_flops("fp8" if fp8 else dtype) if hardware else None
    gemm_ceiling = ceilings.gemm("bf16" if fp8 else dtype) if ceilings else None
    copy_ceiling = ceilings.copy_bytes_per_s if ceilings else None
    return CaseMetrics(
        time_per_call_s=median_s,
        time_per_token_s=median_s / tokens_per_call,
        tokens_per_s=tokens_per_call / median_s,
        flops_per_call=flops_per_call,
        bytes_per_call=bytes_per_call,
        arithmetic_intensity_flop_per_byte=flops_per_call / bytes_per_call if bytes_per_call else None,
        achieved_tflops=flops_per_s / 1e12,
        achieved_gb_s=bytes_per_s / 1e9,
        mfu=flops_per_s / bf16_peak if bf16_peak else None,
        peak_fraction_dtype=flops_per_s / dtype_peak if dtype_peak else None,
        gemm_ceiling_fraction=flops_per_s / gemm_ceiling if gemm_ceiling else None,
        copy_ceiling_fraction=bytes_per_s / copy_ceiling if copy_ceiling else None,
    )


def bound(metrics: CaseMetrics, ceilings: Ceilings | None, dtype: str) -> str | None:
    """'compute' or 'memory': which measured ceiling the case's arithmetic intensity puts it under."""
    intensity = metrics.arithmetic_intensity_flop_per_byte
    if not ceilings or intensity is None or not ceilings.gemm(dtype):
        return None
    ridge = ceilings.gemm(dtype) / ceilings.copy_bytes_per_s
    return "compute" if intensity >= ridge else "memory"


def part_result(part, timing: Timing, hardware: HardwareSpec | None, ceilings: Ceilings | None) -> PartResult:
    """Rates of a part of a case timed alone, against the peak and the measured ceiling of its precision."""
    rate = part.flops_per_call / timing.median_s
    peak = hardware.peak_flops(part.precision) if hardware else None
    ceiling = ceilings.gemm(part.precision) if ceilings else None
    return PartResult(
        name=part.name,
        precision=part.precision,
        timing=timing,
        flops_per_call=part.flops_per_call,
        achieved_tflops=rate / 1e12,
        peak_fraction=rate / peak if peak else None,
        ceiling_fraction=rate / ceiling if ceiling else None,
    )
