"""The harness on the CPU: real timings of tiny cases, recorded failures, kept partial runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from meter.bench import harness
from meter.bench.cases import BenchCase
from meter.bench.timer import time_cpu
from meter.bench.workloads import build_workload, estimate_memory_bytes
from meter.config.hardware import list_hardware
from meter.config.models import load_model
from meter.device.select import select_device
from meter.results import RunFileError, RunRecorder, TimingSettings, load_run
from tests.conftest import run_meter
from tests.runs import cpu_metadata

TINY = load_model("deepseek-v3-tiny").args
FAST = TimingSettings(warmup_s=0.0, min_warmup_calls=1, min_time_s=0.0, min_repeats=3, max_repeats=3)
CPU = select_device("cpu", list_hardware())
MODELS = {"deepseek-v3-tiny": TINY}


def case(layer, phase, **kw) -> BenchCase:
    kw.setdefault("dtype", "fp32")
    if phase == "decode":
        kw.setdefault("batch", 2)
        if layer == "mla":
            kw.setdefault("context", 64)
    else:
        kw.setdefault("batch", 1)
        kw.setdefault("seq", 32)
    return BenchCase("deepseek-v3-tiny", layer, phase, **kw)


def run(cases, **kw):
    results = []
    harness.run_cases(cases, MODELS, CPU, record=results.append, settings=FAST, **kw)
    return results


def test_every_layer_and_phase_runs_and_reports_rates():
    cases = [case(layer, phase) for layer in ("mla", "moe", "ffn") for phase in ("train", "prefill", "decode")]
    cases.append(case("mla", "decode", form="naive"))
    results = run(cases)
    for r in results:
        assert r.status == "ok", r
        assert r.timing.n == 3 and r.timing.median_s > 0
        m = r.metrics
        assert m.achieved_tflops > 0 and m.tokens_per_s > 0 and m.mfu is None  # a CPU has no datasheet
    assert results[0].metrics.flops_per_call == pytest.approx(
        3 * __import__("meter.analytic.flops", fromlist=["x"]).attention_layer_flops(TINY, batch=1, q_len=32)
    )


def test_moe_options_run():
    results = run(
        [
            case("moe", "prefill", ep=4, routing="uniform"),
            case("moe", "train", routing="skew", skew=1.2),
            case("moe", "prefill", fp8="rowwise", dtype="bf16"),
        ]
    )
    from kernels.fp8 import fp8_support

    cpu_fp8 = fp8_support(torch.device("cpu"), "rowwise")  # None where this torch's CPU build runs it
    assert [r.status for r in results] == ["ok", "ok", "ok" if cpu_fp8 is None else "unsupported"]
    assert results[0].details.local_experts == 4
    if cpu_fp8 is None:
        assert results[2].details.expert_gemm == "fp8-rowwise"
    else:
        assert cpu_fp8 in results[2].reason


def test_unsupported_and_oom_cases_are_recorded_and_the_sweep_goes_on(monkeypatch):
    big = BenchCase("deepseek-v3-tiny", "moe", "train", batch=1, seq=32, dtype="fp32")
    monkeypatch.setattr(harness, "free_memory_bytes", lambda device: 1024)  # pretend 1 KiB is free
    results = run([big])
    assert results[0].status == "oom" and "GiB" in results[0].reason
    monkeypatch.undo()
    results = run(
        [
            case("moe", "train", fp8="rowwise"),
            case("gqa", "prefill"),
            case("moe", "prefill", fp8="blockwise"),
            case("ffn", "prefill"),
        ]
    )
    assert [r.status for r in results] == ["unsupported", "unsupported", "unsupported", "ok"]
    assert "forward only" in results[0].reason and "MLA" in results[1].reason


def test_an_exception_in_one_case_is_recorded(monkeypatch):
    real = harness.build_workload

    def broken(c, *args, **kw):
        if c.layer == "ffn":
            raise RuntimeError("kernel exploded\nsecond line")
        return real(c, *args, **kw)

    monkeypatch.setattr(harness, "build_workload", broken)
    results = run([case("ffn", "prefill"), case("mla", "prefill")])
    assert results[0].status == "error" and results[0].reason == "RuntimeError: kernel exploded"
    assert results[1].status == "ok"


def test_timer_times_each_call():
    calls = []
    samples = time_cpu(lambda i: calls.append(i), FAST)
    assert len(samples) == 3 and calls == list(range(len(calls))) and len(calls) == 4


def test_inputs_are_random_and_rotated():
    w = build_workload(case("ffn", "prefill"), TINY, CPU)
    assert w.n_inputs > 1
    assert estimate_memory_bytes(case("ffn", "prefill"), TINY) > 0
    assert len(w.inputs) == w.n_inputs
    assert all(x.abs().sum() > 0 for x in w.inputs)  # never zeros
    assert not torch.equal(w.inputs[0], w.inputs[1])


def test_run_recorder_writes_after_each_case_and_load_checks_the_schema(tmp_path: Path):
    path = tmp_path / "run.json"
    rec = RunRecorder(path, metadata=cpu_metadata())
    assert load_run(path).status == "running"
    [measured] = run([case("ffn", "prefill")])
    rec.add_case(measured)
    assert [c.id for c in load_run(path).cases] == [measured.id]
    rec.finish("complete")
    assert load_run(path).finished_at is not None
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(RunFileError, match="not a gpu-cost-meter run file"):
        load_run(tmp_path / "other.json")
    newer = {**json.loads(path.read_text()), "schema_version": 99}
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    with pytest.raises(RunFileError, match="schema_version.*newer meter"):
        load_run(tmp_path / "newer.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(RunFileError, match="not valid JSON"):
        load_run(tmp_path / "bad.json")


def test_a_case_the_reader_would_refuse_is_recorded_as_an_error_not_lost(tmp_path: Path):
    """A NaN or negative time (a bad parameter, a broken timer) becomes an error case; the file stays valid."""
    import dataclasses

    path = tmp_path / "run.json"
    rec = RunRecorder(path, metadata=cpu_metadata())
    [good] = run([case("ffn", "prefill")])
    broken = dataclasses.replace(good, metrics=dataclasses.replace(good.metrics, time_per_call_s=float("nan")))
    negative = dataclasses.replace(good, timing=dataclasses.replace(good.timing, median_s=-1.0))
    for c in (good, broken, negative):
        rec.add_case(c)
    doc = load_run(path)
    assert [c.status for c in doc.cases] == ["ok", "error", "error"]
    assert "metrics.time_per_call_s" in doc.cases[1].reason and "timing.median_s" in doc.cases[2].reason
    assert doc.cases[1].case == good.case  # what was asked is kept with the reason


def _cli_env(tmp_path: Path) -> dict[str, str]:
    cache = tmp_path / "cache"
    return {"METER_CACHE_DIR": str(cache)}


def _seed_ceilings(tmp_path: Path) -> None:
    """Pre-seed the ceiling cache so CLI tests do not spend seconds measuring the CPU."""
    from tests.runs import seed_ceilings

    seed_ceilings(tmp_path / "cache")


def test_bench_cli_writes_a_labelled_run_file(tmp_path: Path):
    _seed_ceilings(tmp_path)
    out = tmp_path / "r.json"
    result = run_meter(
        "bench",
        "--model",
        "deepseek-v3-tiny",
        "--layers",
        "attn,moe,ffn",
        "--phase",
        "prefill",
        "--batch",
        "1",
        "--seq",
        "32",
        "--min-time",
        "0.05",
        "--output",
        str(out),
        "--no-telemetry",
        env=_cli_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "CPU RUN" in result.stderr and "CPU (" in result.stdout and "Projected whole model" in result.stdout
    doc = load_run(out)
    assert doc.status == "complete" and len(doc.cases) == 3
    meta = doc.metadata
    assert meta.device.kind == "cpu" and meta.method.cpu_run is True
    for key in ("software", "git", "host", "command", "method", "ceilings"):
        assert getattr(meta, key), key
    assert meta.software.torch == torch.__version__ and "bench" in meta.command
    assert meta.ceilings.device_key.startswith("cpu-")
    assert doc.projections and doc.projections[0].phase == "prefill"


def test_interrupted_sweep_keeps_the_finished_cases(tmp_path: Path, monkeypatch):
    from meter.cli import benchrun
    from meter.cli import main as cli

    _seed_ceilings(tmp_path)
    monkeypatch.setenv("METER_CACHE_DIR", str(tmp_path / "cache"))
    real = benchrun.progress

    def interrupting(stream):
        show, interactive = real(stream)

        def wrapped(i, n, c):
            if i == 2:
                raise KeyboardInterrupt
            show(i, n, c)

        return wrapped, interactive

    monkeypatch.setattr(benchrun, "progress", interrupting)
    out = tmp_path / "partial.json"
    code = cli.main(_bench_argv(out))
    assert code == 130
    doc = load_run(out)
    assert doc.status == "interrupted" and [c.status for c in doc.cases] == ["ok", "ok"]


def test_bench_cli_rejects_bad_combinations(tmp_path: Path):
    r = run_meter("bench", "--suite", "default-cpu", "--model", "deepseek-v3", env=_cli_env(tmp_path))
    assert r.returncode == 2 and "--suite" in r.stderr and "Traceback" not in r.stderr
    # CUDA hidden, so that on a GPU machine these check the refusal instead of running V3 on the GPU
    no_gpu = {**_cli_env(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    r = run_meter("bench", "--device", "cuda", env=no_gpu)
    assert r.returncode == 2 and "no CUDA device" in r.stderr
    r = run_meter("run", "--suite", "default-gpu", "--device", "auto", env=no_gpu)
    assert r.returncode == 2 and "meant for a GPU" in r.stderr


@pytest.mark.gpu
def test_decode_case_on_a_gpu_uses_a_cuda_graph():
    gpu = select_device("cuda", list_hardware())
    results = []
    c = BenchCase("deepseek-v3-tiny", "mla", "decode", batch=4, context=256, dtype="bf16")
    harness.run_cases(
        [c],
        MODELS,
        gpu,
        record=results.append,
        settings=TimingSettings(warmup_s=0.05, min_warmup_calls=2, min_time_s=0.05, min_repeats=5, max_repeats=50),
    )
    assert results[0].status == "ok" and results[0].details.cuda_graph is True


def test_timer_measures_at_least_min_time_even_when_warmup_misleads():
    import time as _time

    calls = []

    def call(i):
        calls.append(i)
        _time.sleep(0.05 if i == 0 else 0.002)  # a slow first call makes the estimate pessimistic

    settings = TimingSettings(warmup_s=0.0, min_warmup_calls=1, min_time_s=0.3, min_repeats=1, max_repeats=10_000)
    samples = time_cpu(call, settings)
    assert sum(samples) >= 0.29 and len(samples) > 100


def _bench_argv(out: Path, *extra: str) -> list[str]:
    """A three-case sweep of the tiny model, pinned to the CPU (so it stays a CPU test on a GPU box)."""
    return [
        "bench",
        "--device",
        "cpu",
        "--model",
        "deepseek-v3-tiny",
        "--layers",
        "ffn",
        "--phase",
        "train,prefill,decode",
        "--batch",
        "1",
        "--seq",
        "16",
        "--min-time",
        "0.01",
        "--output",
        str(out),
        "--no-telemetry",
        *extra,
    ]


def test_a_write_that_fails_mid_sweep_keeps_the_last_valid_file(tmp_path: Path, monkeypatch, capsys):
    """A full disk after two cases: the run stops, what was measured is printed, the file keeps two cases."""
    from meter.cli import main as cli
    from meter.errors import OutputError
    from meter.results import runfile

    _seed_ceilings(tmp_path)
    monkeypatch.setenv("METER_CACHE_DIR", str(tmp_path / "cache"))
    real, calls = runfile.write_json_atomic, []

    def filling_up(path, obj):
        calls.append(len(obj["cases"]))
        if len(obj["cases"]) >= 3:
            raise OutputError(f"{path}: cannot write (No space left on device); any earlier file there is unchanged")
        real(path, obj)

    monkeypatch.setattr(runfile, "write_json_atomic", filling_up)
    out = tmp_path / "run.json"
    code = cli.main(_bench_argv(out))
    captured = capsys.readouterr()
    assert code == 2
    errors = [line for line in captured.err.splitlines() if line.startswith("meter: error")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and str(out) in errors[0]
    assert "ffn.train" in captured.out and "ffn.decode" in captured.out  # every measured case is printed
    doc = load_run(out)  # the last good write: two finished cases, still a valid file
    assert [c.status for c in doc.cases] == ["ok", "ok"] and doc.status == "running"


def test_a_failed_push_still_prints_the_results_and_says_where_the_file_is(tmp_path: Path, monkeypatch, capsys):
    import socket

    from meter.cli import main as cli

    _seed_ceilings(tmp_path)
    monkeypatch.setenv("METER_CACHE_DIR", str(tmp_path / "cache"))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run.json"
    code = cli.main(_bench_argv(out, "--push", f"http://127.0.0.1:{port}"))
    captured = capsys.readouterr()
    assert code == 0 and "Run file:" in captured.out and "ffn.prefill" in captured.out
    assert "could not push" in captured.err and f"kept at {out}" in captured.err
    assert load_run(out).status == "complete"
