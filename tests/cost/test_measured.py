"""Uncertainty from the measurement: efficiencies by regime, case timing spreads, several runs, common
random numbers and correlated inputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from meter.config.quantity import Quantity
from meter.config.scenarios import load_scenario
from meter.cost.estimate import estimate_serve, estimate_train
from meter.cost.from_run import load_measured
from meter.cost.measured import CaseSpread, MeasuredQuantity
from meter.cost.montecarlo import Coupling, draw, evaluate, percentiles
from meter.errors import MeterError, UsageError
from meter.jsonable import to_jsonable
from meter.results import BenchCase, Projection, ProjectionLayer, RunDocument
from meter.results.atomic import write_json_atomic
from meter.results.document import DeviceInfo
from meter.results.metadata import utc_now
from tests.conftest import run_meter
from tests.runs import cpu_metadata, make_ceilings, ok_case

# Ceilings of the "device": a 1e13 FLOP/s GEMM and 1e11 bytes/s of copy, so the ridge is 100 FLOP/byte.
CEILINGS = make_ceilings(1e11, {"bf16": 1e13})
# (layer, phase, FLOPs, bytes, seconds per call): by intensity against the ridge, not by label, the
# decode MoE case is compute-bound (5e12 FLOP/s: 0.5 of the GEMM ceiling) and the train MLA case
# memory-bound (2e10 B/s: 0.2 of the copy ceiling).
CASES = [
    ("moe", "decode", 1e10, 1e6, 2e-3),
    ("mla", "train", 1e6, 2e7, 1e-3),
    ("ffn", "decode", 1e5, 1e7, 2e-4),  # 5e10 B/s: 0.5
    ("mla", "decode", 1e5, 2e7, 5e-4),  # 4e10 B/s: 0.4
]


def _run(path: Path, *, scale: float = 1.0, spread: float = 0.02, device: str = "test CPU", ceilings=CEILINGS) -> Path:
    """A CPU run with the cases above (``scale`` times slower) and one decode projection over them."""
    results, layers = [], {}
    for layer, phase, flops, nbytes, seconds in CASES:
        spec = BenchCase(
            "deepseek-v3-tiny",
            layer,
            phase,
            batch=8,
            seq=256 if phase == "train" else 0,
            context=1024 if layer == "mla" else 0,
        )
        results.append(
            ok_case(spec, per_call_s=seconds * scale, tokens=8, flops=flops, bytes_per_call=nbytes, spread=spread)
        )
        if phase == "decode":
            layers[layer] = ProjectionLayer(
                case_id=spec.id, count=2, time_per_token_s=seconds * scale / 8, flops_per_token=flops / 8
            )
    t = sum(2 * x.time_per_token_s for x in layers.values())
    projection = Projection(
        model="deepseek-v3-tiny",
        phase="decode",
        dtype="bf16",
        batch=8,
        seq=0,
        context=1024,
        layers=layers,
        time_per_token_s=t,
        tokens_per_s=1 / t,
        flops_per_token=sum(2 * x.flops_per_token for x in layers.values()),
    )
    device_info = DeviceInfo(kind="cpu", torch_device="cpu", name=device, hardware_config="cpu")
    doc = RunDocument(
        run_id="regimes",
        status="complete",
        started_at=utc_now(),
        metadata=cpu_metadata(device=device_info, ceilings=ceilings),
        cases=results,
        projections=[projection],
    )
    write_json_atomic(path, to_jsonable(doc))
    return path


def test_regimes_by_intensity_and_their_efficiencies(tmp_path: Path):
    run = load_measured(_run(tmp_path / "r.json"))
    rates = run.runs[0].cases
    regime = {".".join(c.case_id.split(".")[:2]): c.regime for c in rates.values()}
    assert regime["moe.decode"] == "compute" and regime["mla.train"] == "memory"  # the label does not decide
    assert run.regime_efficiency("compute").central == pytest.approx(0.5)
    assert run.regime_efficiency("memory").central == pytest.approx(0.4)  # median of 0.2, 0.5, 0.4


def test_a_cpu_runs_ceilings_measured_twice_widen_its_bands_by_how_far_they_moved(tmp_path: Path):
    """The machine was 2x slower when the ceilings were measured again (other work): the efficiencies
    against the second measurement are twice as high, and the band covers both moments."""
    import dataclasses

    from meter.results.document import CeilingsRepeat

    moved = dataclasses.replace(CEILINGS, repeat=CeilingsRepeat(0.5e11, {"bf16": 0.5e13}, "2026-11-22T00:01:00+00:00"))
    once = load_measured(_run(tmp_path / "once.json"))
    twice = load_measured(_run(tmp_path / "twice.json", ceilings=moved))
    for regime, central in (("compute", 0.5), ("memory", 0.4)):
        lo1, hi1 = once.regime_efficiency(regime).bounds
        lo2, hi2 = twice.regime_efficiency(regime).bounds
        assert hi1 < 1.1 * central and hi2 > 1.5 * central and lo2 <= lo1 * 1.05, (regime, lo1, hi1, lo2, hi2)
    rate = twice.pick("decode")
    assert rate.basis_repeat_ratio == pytest.approx(2.0)  # no datasheet: the basis is the bf16 ceiling
    e1 = estimate_serve(load_scenario("deepseek-v3-day6"), run=once, samples=4000)
    e2 = estimate_serve(load_scenario("deepseek-v3-day6"), run=twice, samples=4000)
    u1, u2 = e1.outputs["usd_per_m_output_tokens"], e2.outputs["usd_per_m_output_tokens"]
    assert (u2.p90 - u2.p10) > 2 * (u1.p90 - u1.p10)  # the band carries the between-moment spread


def test_serving_from_a_run_scales_each_regime_of_the_bound(tmp_path: Path):
    run = load_measured(_run(tmp_path / "r.json"))
    e = estimate_serve(load_scenario("deepseek-v3-day6"), run=run, samples=0)
    assert e.method == "bound x efficiency (measured, transfer)" and e.cpu_derived
    d = e.bound.decode
    # the decode step with its compute-bound work at 50% and its memory-bound work at 40% of the roofs
    actual = d.regime_s("compute") / 0.5 + d.regime_s("memory") / 0.4 + d.comm.exposed_s
    assert e.outputs["decode_efficiency"].point == pytest.approx(d.step_s / actual)
    tps = d.tokens_per_s_per_gpu * d.step_s / actual
    assert e.outputs["output_tokens_per_s_per_gpu"].point == pytest.approx(tps)
    assert e.outputs["usd_per_m_output_tokens"].point == pytest.approx(2.0 / 3600 / tps * 1e6)
    note = e.notes[0]
    assert note.startswith("efficiency transfer:") and "50.0% of its compute ceiling" in note
    assert "40.0% of its memory bandwidth" in note and "a CPU figure" in note


def test_a_case_spread_reproduces_its_timing_percentiles():
    # median 1 ms at efficiency 0.5, p10 0.8 ms, p90 2 ms: efficiency 0.625 at p10 and 0.25 at p90
    spread = CaseSpread.from_timing("c", [(0.5, 1e-3, 0.8e-3, 2e-3)])
    draws = spread.sample(400_000, np.random.default_rng(1))
    assert np.percentile(draws, [10, 50, 90]) == pytest.approx([0.25, 0.5, 0.625], rel=0.01)


def test_a_noisy_run_gives_a_wide_band_and_a_stable_one_a_narrow_one(tmp_path: Path):
    def band(path):
        e = estimate_serve(load_scenario("deepseek-v3-day6"), run=load_measured(path), samples=20_000)
        s = e.outputs["usd_per_m_output_tokens"]
        return s.p90 / s.p10

    stable = band(_run(tmp_path / "stable.json", spread=0.02))
    noisy = band(_run(tmp_path / "noisy.json", spread=0.5))
    assert 1.0 < stable < 1.1 and noisy > 1.8  # a spread of 2% in the timing against one of 50%


def test_the_spread_between_runs_enters_the_band(tmp_path: Path):
    one = _run(tmp_path / "a.json")
    slow = _run(tmp_path / "b.json", scale=30.0)  # the same cases, 30 times slower (a busy machine)
    single = estimate_serve(load_scenario("deepseek-v3-day6"), run=load_measured(one), samples=20_000)
    both = estimate_serve(load_scenario("deepseek-v3-day6"), run=load_measured([one, slow]), samples=20_000)
    s1, s2 = single.outputs["usd_per_m_output_tokens"], both.outputs["usd_per_m_output_tokens"]
    assert s2.p90 / s2.p10 > 5 * s1.p90 / s1.p10
    assert both.inputs["memory_efficiency"].quantity.runs == 2
    with pytest.raises(MeterError, match="must be runs of one device"):
        load_measured([one, _run(tmp_path / "c.json", device="another CPU")])


def test_several_runs_on_the_command_line(tmp_path: Path):
    a, b = _run(tmp_path / "a.json"), _run(tmp_path / "b.json", scale=3.0)
    r = run_meter("cost", "serve", "--from-run", str(a), "--from-run", str(b), "--json")
    assert r.returncode == 0, r.stderr
    q = json.loads(r.stdout)["inputs"]["memory_efficiency"]["value"]
    assert q["dist"] == "measured" and q["runs"] == 2 and q["p10"] < q["p90"]


def test_a_shape_the_run_does_not_have_names_what_it_has(tmp_path: Path):
    path = _run(tmp_path / "r.json")
    with pytest.raises(UsageError, match=r"no decode measurement at batch 128; the run has batch 8, context 1024"):
        estimate_serve(load_scenario("deepseek-v3-day6"), run=load_measured(path), batch=128, samples=0)
    e = estimate_serve(load_scenario("deepseek-v3-day6"), run=load_measured(path), batch=8, context=1024, samples=0)
    assert (e.bound.decode.pool.batch_per_gpu, e.bound.decode.pool.context) == (8, 1024)
    r = run_meter("cost", "serve", "--from-run", str(path), "--batch", "8", "--context", "999")
    assert r.returncode == 2 and "the run has batch 8, context 1024" in r.stderr and r.stderr.count("\n") == 1


# --- the Monte Carlo's random numbers ---


def test_fixing_one_input_leaves_the_other_draws_alone():
    s = load_scenario("deepseek-v3")
    ranged = estimate_train(s, samples=50_000)
    fixed = estimate_train(s, samples=50_000, overrides={"pue": Quantity.point(1.2)})
    for name in ("fleet_capex_usd", "programme_usd", "staff_usd", "data_usd"):  # none depends on pue
        assert fixed.outputs[name].p50 == ranged.outputs[name].p50, name
    assert fixed.outputs["energy_kwh"].p50 != ranged.outputs["energy_kwh"].p50


def test_draws_are_the_same_whatever_else_is_drawn():
    a = {"x": Quantity("uniform", low=0, high=1), "y": Quantity("normal", mean=0, sd=1)}
    b = {"y": Quantity("normal", mean=0, sd=1), "z": Quantity("loguniform", low=1, high=10)}
    assert np.array_equal(draw(a, 1000, 7, [])["y"], draw(b, 1000, 7, [])["y"])
    assert not np.array_equal(draw(a, 1000, 7, [])["y"], draw(a, 1000, 8, [])["y"])


def _spearman(x, y) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


@pytest.mark.parametrize("rho", [0.5, -0.7, 1.0])
def test_correlated_inputs_keep_their_distributions(rho):
    q = {"a": Quantity("uniform", low=350, high=700), "b": Quantity("loguniform", low=1.7, high=3.5)}
    free = draw(q, 200_000, 3, [])
    tied = draw(q, 200_000, 3, [Coupling("a", "b", rho)])
    assert _spearman(tied["a"], tied["b"]) == pytest.approx(rho, abs=0.01)
    assert abs(_spearman(free["a"], free["b"])) < 0.01
    assert np.percentile(tied["b"], [10, 50, 90]) == pytest.approx(np.percentile(free["b"], [10, 50, 90]), rel=0.01)
    assert np.array_equal(tied["a"], free["a"])  # the first of the pair is untouched


def test_correlations_in_a_scenario_and_on_the_command_line():
    s = load_scenario("deepseek-v3")
    assert s.correlations[0].inputs == ["utilization", "avg_power_w"]
    tied = estimate_train(s, samples=50_000).outputs["ownership_usd_per_gpu_hour"]
    free = estimate_train(dataclasses.replace(s, correlations=[]), samples=50_000).outputs["ownership_usd_per_gpu_hour"]
    assert tied.p50 == pytest.approx(free.p50, rel=0.01) and tied.p90 != free.p90  # same marginals, coupled draws
    other = estimate_train(s, hardware="h100-sxm", samples=1000)  # the H800 power assumption is dropped on H100
    assert any("correlation utilization,avg_power_w left out" in n for n in other.notes)
    with pytest.raises(UsageError, match="uniform family"):
        draw(
            {"a": Quantity("uniform", low=0, high=1), "b": Quantity("normal", mean=0, sd=1)},
            10,
            0,
            [Coupling("a", "b", 0.5)],
        )
    r = run_meter("cost", "train", "--scenario", "deepseek-v3", "--correlate", "usd_per_kwh,nope=0.3")
    assert r.returncode == 2 and "'nope' is not an input" in r.stderr and r.stderr.count("\n") == 1
    r = run_meter("cost", "train", "--scenario", "deepseek-v3", "--correlate", "pue,utilization=0.8", "--json")
    assert r.returncode == 0, r.stderr


def test_percentiles_match_numpys():
    x = np.random.default_rng(0).lognormal(size=10_001)
    assert percentiles(x.copy()) == pytest.approx(list(np.percentile(x, [10, 50, 90])))


def test_a_measured_quantity_describes_itself():
    q = MeasuredQuantity((CaseSpread.from_timing("c", [(0.5, 1e-3, 0.9e-3, 1.2e-3)]),), "median", what="1 case")
    lo, hi = q.bounds
    assert lo < 0.5 < hi and q.as_dict()["dist"] == "measured" and "measured: 1 case" in q.describe()
    # an efficiency above the ceiling is capped: the bound is a bound
    assert MeasuredQuantity((CaseSpread.from_timing("c", [(1.5, 1e-3, 1e-3, 1e-3)]),), "median").central == 1.0


def test_evaluate_leaves_out_what_is_not_finite():
    out = evaluate(lambda x: {"ok": x["a"] * 2, "bad": float("nan")}, {"a": Quantity.point(1)}, samples=0)
    assert "ok" in out and "bad" not in out
