"""fp8 support is what a tiny product on the device runs, never what the torch version suggests.

Here the op is made to raise, as torch 2.11's CPU build does (it has ``F.scaled_mm`` and no CPU
kernel for it): every caller then records the fp8 case as unsupported, with the probe's reason.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from kernels import ops
from kernels.fp8 import fp8_support
from meter.bench import ceilings as C
from meter.bench import harness
from meter.bench.cases import BenchCase
from meter.config.hardware import list_hardware
from meter.config.models import load_model
from meter.device.select import select_device
from meter.results import TimingSettings

CPU = select_device("cpu", list_hardware())
WHY = "NotImplementedError: Could not run 'aten::_scaled_mm' with arguments from the 'CPU' backend"


@pytest.fixture
def no_cpu_scaled_mm(monkeypatch):
    def refuse(*args, **kwargs):
        raise NotImplementedError(WHY.split(": ", 1)[1])

    monkeypatch.setattr(ops, "SCALED_MM", refuse)
    monkeypatch.setattr(F, "scaled_mm", refuse)
    ops.probe_ops.cache_clear()  # the probe is cached per process: run it again against the refusing op
    yield
    monkeypatch.undo()
    ops.probe_ops.cache_clear()


def test_the_probe_not_the_version_decides(no_cpu_scaled_mm):
    why = fp8_support(torch.device("cpu"), "rowwise")
    assert why and "scaled_mm_rowwise failed its probe on the CPU" in why and "aten::_scaled_mm" in why
    assert fp8_support(torch.device("cpu"), "rowwise") == why  # cached: the same answer, no new probe


def test_every_caller_records_the_fp8_case_as_unsupported_with_the_reason(no_cpu_scaled_mm, tmp_path, monkeypatch):
    tiny = load_model("deepseek-v3-tiny").args
    case = BenchCase("deepseek-v3-tiny", "moe", "prefill", batch=1, seq=16, dtype="bf16", fp8="rowwise")
    results = []
    fast = TimingSettings(warmup_s=0.0, min_warmup_calls=1, min_time_s=0.0, min_repeats=2, max_repeats=2)
    harness.run_cases([case], {case.model: tiny}, CPU, record=results.append, settings=fast)
    [r] = results
    assert r.status == "unsupported" and "aten::_scaled_mm" in r.reason

    monkeypatch.setenv("METER_CACHE_DIR", str(tmp_path))
    c = C.measure(CPU, dtypes=["bf16", "fp8"], cap_s=0.2)
    assert "fp8" not in c.gemm_flops_per_s and "no fp8 ceiling" in c.method.gemm and "aten::_scaled_mm" in c.method.gemm
    idle = dataclasses.replace(c, load=dataclasses.replace(c.load, loaded=False), flags=[])
    assert C.distrust(idle, CPU, ["bf16", "fp8"]) is None  # no fp8 ceiling to have: not measured again for it
