"""The device's ceilings: only the precisions a run uses, each under a time cap sized from a probe,
the machine and its load recorded, and a cached ceiling that cannot be trusted measured again."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from meter.bench import ceilings as C
from meter.bench.cases import BenchCase
from meter.bench.session import BenchSession
from meter.config.hardware import list_hardware
from meter.config.models import load_model
from meter.device.select import select_device
from meter.results import TimingSettings, load_run
from meter.results.document import CeilingsLoad
from tests.conftest import run_meter
from tests.runs import cpu_metadata, make_ceilings, seed_ceilings

CPU = select_device("cpu", list_hardware())


def tiny(layer: str, phase: str, **kw) -> BenchCase:
    kw.setdefault("dtype", "fp32")
    return BenchCase("deepseek-v3-tiny", layer, phase, batch=2, seq=16, **kw)


def test_only_the_precisions_the_cases_use_are_needed():
    assert C.needed_dtypes([tiny("ffn", "prefill"), tiny("moe", "prefill")]) == ["fp32"]
    fp8 = tiny("moe", "prefill", dtype="bf16", fp8="rowwise")
    assert C.needed_dtypes([tiny("ffn", "prefill"), fp8]) == ["fp32", "bf16", "fp8"]


def test_sizes_grow_only_while_the_rate_so_far_says_the_next_fits_the_cap():
    tried: list[int] = []

    def slow(n: int) -> float:  # a CPU without native bf16: 1 MFLOP/s, the 256^3 call would take 33 s
        tried.append(n)
        return 1e6

    rate, n = C._best_gemm(slow, (128, 256, 512, 2048), C._Cap(2.0, C.CPU_SETTINGS))
    assert tried == [128] and (rate, n) == (1e6, 128)

    tried.clear()
    fast = lambda n: tried.append(n) or 1e9 * n  # noqa: E731  (rates that grow with size, every call instant)
    rate, n = C._best_gemm(fast, (128, 256, 512, 1024), C._Cap(2.0, C.CPU_SETTINGS))
    assert tried == [128, 256, 512, 1024] and n == 1024


def test_a_measurement_covers_the_asked_precisions_and_records_machine_load_and_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("METER_CACHE_DIR", str(tmp_path))
    lines: list[str] = []
    c = C.measure(CPU, dtypes=["fp32"], say=lines.append, cap_s=0.2)
    assert set(c.gemm_flops_per_s) == {"fp32"} and c.copy_bytes_per_s > 0 and c.gemm_sizes["fp32"] >= 128
    assert c.machine == C.current_machine(CPU) and c.machine.torch and c.machine.threads >= 1
    assert c.load.cpu_count >= 1 and (c.load.loaded == bool(c.flags))
    assert any("ceiling 1/2: copy" in m for m in lines) and any("ceiling 2/2: fp32 GEMM" in m for m in lines)
    assert C.load_cached(CPU) == c  # cached, and read back whole


def test_the_load_is_what_other_processes_used_while_measuring(monkeypatch):
    busy = iter([100.0, 103.0])  # the machine: 3 CPU-seconds busy over the window
    own = iter([10.0, 11.0])  # of which this process: 1
    clock = iter([0.0, 2.0])
    monkeypatch.setattr(C, "_busy_s", lambda: next(busy))
    monkeypatch.setattr(C, "_own_s", lambda: next(own))
    monkeypatch.setattr(C.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(C.os, "cpu_count", lambda: 2)
    load = C._LoadMeter().finish(CPU)
    assert load.others_busy_cpus == pytest.approx(1.0) and load.loaded  # others took one of two CPUs
    busy, own, clock = iter([100.0, 101.02]), iter([10.0, 11.0]), iter([0.0, 2.0])
    assert not C._LoadMeter().finish(CPU).loaded


def _cache_with(tmp_path: Path, **changes) -> None:
    path = seed_ceilings(tmp_path)
    doc = json.loads(path.read_text())
    for key, value in changes.items():
        doc[key] = value
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "changes, why",
    [
        ({}, None),
        ({"load": {"cpu_count": 2, "loadavg_1m": 3.0, "others_busy_cpus": 1.4, "loaded": True}}, "under load"),
        ({"flags": ["case x reached 130% of the fp32 GEMM ceiling"]}, "130%"),
        ({"gemm_flops_per_s": {"bf16": 1e12}}, "no fp32 GEMM ceiling"),
        ({"machine": {"kind": "cpu", "name": "another CPU", "torch": "2.11.0"}}, "another machine"),
        ({"machine": None}, "which machine"),
    ],
)
def test_a_cached_ceiling_is_used_only_when_it_can_be_trusted(tmp_path, monkeypatch, changes, why):
    monkeypatch.setenv("METER_CACHE_DIR", str(tmp_path))
    _cache_with(tmp_path, **changes)
    fresh = dataclasses.replace(make_ceilings(1e10, {"fp32": 1e11}), load=CeilingsLoad(cpu_count=2))
    asked: list[list[str]] = []
    monkeypatch.setattr(C, "measure", lambda device, *, dtypes, say, save: asked.append(dtypes) or fresh)
    lines: list[str] = []
    got = C.trusted(CPU, ["fp32"], say=lines.append)
    if why is None:
        assert asked == [] and got.gemm("fp32") == 1e14
    else:
        assert asked == [["fp32"]] and got is fresh and why in lines[0]
        assert C.load_cached(CPU) == fresh  # the new measurement replaces the cache


@pytest.mark.parametrize("again_gemm, remeasure", [(1e14, True), (1e3, True), (None, False)])
def test_a_case_past_its_ceiling_is_measured_again_or_flagged(tmp_path, monkeypatch, again_gemm, remeasure):
    """Past a ceiling by more than 10%: measured again and the higher taken (the fractions follow); a
    case still past it, or a session that may not measure (acceptance), flags it and drops the cache."""
    monkeypatch.setenv("METER_CACHE_DIR", str(tmp_path / "cache"))
    seed_ceilings(tmp_path / "cache")
    low = make_ceilings(1e3, {"fp32": 1e3})  # any real case goes far past these
    asked = []

    def measure(device, *, dtypes, say, save):
        asked.append(dtypes)
        return dataclasses.replace(make_ceilings(again_gemm, {"fp32": again_gemm}), load=CeilingsLoad(cpu_count=2))

    monkeypatch.setattr(C, "measure", measure)
    model = load_model("deepseek-v3-tiny")
    lines: list[str] = []
    session = BenchSession(
        CPU,
        {model.name: model.args},
        cpu_metadata(),
        output=tmp_path / "run.json",
        settings=TimingSettings(warmup_s=0.0, min_warmup_calls=1, min_time_s=0.0, min_repeats=2, max_repeats=2),
        ceilings=lambda: low,
        say=lines.append,
        remeasure_exceeded=remeasure,
    )
    session.telemetry_request = dataclasses.replace(session.telemetry_request, enabled=False)
    with session:
        session.run([tiny("ffn", "prefill")])
    doc = load_run(tmp_path / "run.json")
    assert asked == ([["fp32"]] if remeasure else [])
    if again_gemm == 1e14:
        assert not doc.metadata.ceilings.flags and doc.metadata.ceilings.gemm("fp32") == 1e14
        [case] = doc.cases
        assert case.metrics.gemm_ceiling_fraction == pytest.approx(case.metrics.achieved_tflops * 1e12 / 1e14)
        assert C.load_cached(CPU).gemm("fp32") == 1e14  # the better measurement is cached
    else:
        flags = doc.metadata.ceilings.flags
        assert flags and "of the fp32 GEMM ceiling" in flags[0]
        assert any("flagged in the run file" in m for m in lines)
        assert C.load_cached(CPU) is None  # the next run measures them again


def test_no_ceilings_skips_them(tmp_path):
    out = tmp_path / "r.json"
    r = run_meter(
        "bench", "--layers", "ffn", "--phase", "decode", "--batch", "1", "--min-time", "0.01",
        "--no-telemetry", "--no-ceilings", "--output", str(out),
        env={"METER_CACHE_DIR": str(tmp_path / "empty")},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert load_run(out).metadata.ceilings is None and "ceiling" not in r.stderr
    assert not (tmp_path / "empty" / "ceilings").exists()


def test_bench_ceilings_json_prints_what_was_measured(tmp_path, monkeypatch, capsys):
    from meter.cli.main import main

    monkeypatch.setenv("METER_CACHE_DIR", str(tmp_path))
    fresh = dataclasses.replace(make_ceilings(1e10, {"fp32": 1e11}), load=CeilingsLoad(cpu_count=2))
    monkeypatch.setattr(C, "measure", lambda device, *, dtypes, say, save: fresh)
    assert main(["bench", "--ceilings", "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gemm_flops_per_s"] == {"fp32": 1e11} and out["load"]["cpu_count"] == 2


def test_meter_runs_session_measures_a_cpus_ceilings_again_at_the_end(tmp_path, monkeypatch):
    """The second measurement is kept beside the first (``repeat``): the cost bands carry the move."""
    monkeypatch.setenv("METER_CACHE_DIR", str(tmp_path / "cache"))
    first = dataclasses.replace(make_ceilings(1e14, {"fp32": 1e14}), load=CeilingsLoad(cpu_count=2))
    again = dataclasses.replace(make_ceilings(5e13, {"fp32": 5e13}), load=CeilingsLoad(cpu_count=2))
    monkeypatch.setattr(C, "measure", lambda device, *, dtypes, say, save: again)
    model = load_model("deepseek-v3-tiny")
    session = BenchSession(
        CPU,
        {model.name: model.args},
        cpu_metadata(),
        output=tmp_path / "run.json",
        settings=TimingSettings(warmup_s=0.0, min_warmup_calls=1, min_time_s=0.0, min_repeats=2, max_repeats=2),
        ceilings=lambda: first,
        say=lambda m: None,
        repeat_ceilings=True,
    )
    session.telemetry_request = dataclasses.replace(session.telemetry_request, enabled=False)
    with session:
        session.run([tiny("ffn", "prefill")])
    c = load_run(tmp_path / "run.json").metadata.ceilings
    assert c.gemm("fp32") == 1e14 and c.repeat.gemm_flops_per_s == {"fp32": 5e13}
    assert c.repeat_ratio("fp32") == pytest.approx(2.0) and c.repeat_ratio("copy") == pytest.approx(2.0)
    assert C.load_cached(CPU).repeat is None  # the cache holds ceilings, not one run's repeat
