"""MLA decode forms in the bench: fused, compiled and eager in one sweep, credited with their bytes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from meter.analytic.memory import mla_decode_traffic
from meter.bench import workloads
from meter.bench.cases import BenchCase, expand_grid, parse_fused_plan
from meter.config.models import load_model
from meter.results import load_run
from tests.bench.test_harness import CPU, TINY, case, run
from tests.conftest import run_meter

V3 = load_model("deepseek-v3").args


def test_grid_of_forms_compile_and_plans():
    cases = expand_grid(
        "deepseek-v3",
        V3,
        {
            "layers": ["attn"],
            "phase": ["decode"],
            "batch": [128],
            "form": ["absorbed", "naive", "fused"],
            "compile": [False, True],
            "fused_plan": ["s4"],
        },
    )
    ids = sorted(c.id.rsplit(".", 1)[1] for c in cases)
    # compile only multiplies the eager forms, the plan only the fused one
    assert ids == ["absorbed", "absorbed+compile", "fused-s4", "naive", "naive+compile"]


def test_fused_plan_specs():
    assert parse_fused_plan("h64n32s2") == {"block_h": 64, "block_n": 32, "num_splits": 2}
    assert parse_fused_plan("s8") == {"num_splits": 8}
    for bad, fragment in (("", "expected"), ("s2h64", "expected"), ("h24", "power of two"), ("s0", "at least 1")):
        with pytest.raises(ValueError, match=fragment):
            parse_fused_plan(bad)


def test_eager_forms_run_and_are_credited_with_the_bytes_they_move():
    cases = [case("mla", "decode", form=f, batch=2, context=64) for f in ("absorbed", "naive")]
    cases.insert(1, case("mla", "decode", form="fused", batch=2, context=64))
    results = run(cases)
    assert [r.status for r in results] == ["ok", "unsupported", "ok"]
    assert "needs a CUDA GPU" in results[1].reason  # on the CPU, never the interpreter
    for r, form in ((results[0], "absorbed"), (results[2], "naive")):
        model = mla_decode_traffic(TINY, batch=2, context=64, form=form, dtype_bytes=4)
        d = r.details
        assert model.total == r.metrics.bytes_per_call
        assert d.bytes_minimum == model.minimum and d.bytes_ratio_to_minimum == model.ratio_to_minimum > 1
        assert not r.case.compile


@pytest.mark.slow
def test_compiled_eager_form_runs():
    r = run([case("mla", "decode", form="absorbed", compile=True, batch=2, context=64)])[0]
    assert r.status == "ok", r
    assert r.id.endswith("absorbed+compile") and r.case.compile is True
    assert "upper bound" in r.details.bytes_model


def test_fused_on_a_gpu_without_triton_is_unsupported(monkeypatch):
    import kernels.triton as kt

    monkeypatch.setattr(kt.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(workloads.UnsupportedCase, match="Triton is not installed"):
        workloads._check_fused(SimpleNamespace(kind="cuda", present=True))
    with pytest.raises(workloads.UnsupportedCase, match="needs a CUDA GPU"):
        workloads._check_fused(CPU)


def test_compile_outside_mla_decode_is_unsupported():
    r = run([BenchCase("deepseek-v3-tiny", "moe", "decode", batch=2, dtype="fp32", compile=True)])[0]
    assert r.status == "unsupported" and "MLA decode" in r.reason


def test_bench_cli_form_fused_is_recorded_unsupported_on_the_cpu(tmp_path: Path):
    out = tmp_path / "run.json"
    r = run_meter(
        "bench", "--layers", "mla", "--phase", "decode", "--batch", "2", "--context", "32",
        "--form", "absorbed,fused", "--fused-plan", "s2", "--min-time", "0.01", "--no-telemetry",
        "--output", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = load_run(out)
    status = {c.id.rsplit(".", 1)[1]: c.status for c in doc.cases}
    assert status == {"absorbed": "ok", "fused-s2": "unsupported"}
    assert "moves" in r.stdout and "UNSUPPORTED" in r.stdout
    bad = run_meter("bench", "--form", "fused", "--fused-plan", "h24", "--output", str(tmp_path / "x.json"))
    assert bad.returncode == 2 and "power of two" in bad.stderr and "Traceback" not in bad.stderr
