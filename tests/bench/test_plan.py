"""``meter bench --plan``: memory and device time of a sweep on a GPU that is not here, and its cost."""

from __future__ import annotations

import json

import pytest

from meter.bench.plan import PlanAssumptions, plan_sweep, roofline_s, timed_calls
from meter.bench.timer import GPU_DEFAULTS
from meter.config.hardware import load_hardware
from meter.config.models import load_model
from meter.device.select import planned_device
from meter.results import BenchCase, TimingSettings
from tests.conftest import run_meter

V3 = load_model("deepseek-v3").args
H100 = planned_device(load_hardware("h100-sxm"))


def test_the_timer_rules_give_the_calls_and_seconds():
    s = TimingSettings(warmup_s=0.5, min_warmup_calls=10, min_time_s=1.0, min_repeats=20, max_repeats=2000)
    assert timed_calls(0.001, s) == (500 + 1001, pytest.approx(1.501))  # 0.5 s of warm-up, just over 1 s timed
    assert timed_calls(0.2, s) == (10 + 20, pytest.approx(6.0))  # slow calls: the minimum counts rule
    assert timed_calls(1e-7, s)[0] == 5_000_000 + 2000  # max_repeats caps the timed calls, not the warm-up


def test_roofline_takes_the_larger_of_compute_and_memory_time():
    t, bound = roofline_s(989.4e12, 1e9, "bf16", H100, 0.5)
    assert t == pytest.approx(2.0) and bound == "compute"
    t, bound = roofline_s(1e9, 3.35e12, "bf16", H100, 0.5)
    assert t == pytest.approx(2.0) and bound == "memory"


def test_a_v3_plan_on_an_h100_fits_what_fits_and_prices_the_rest():
    cases = [
        BenchCase("deepseek-v3", "moe", "train", seq=4096),
        BenchCase("deepseek-v3", "mla", "decode", batch=128, context=16384, form="naive"),
        BenchCase("deepseek-v3", "moe", "prefill", tokens_per_expert=2048, ep=64, fp8="blockwise"),
        BenchCase("deepseek-v3", "moe", "train", seq=4096, fp8="rowwise"),
    ]
    plan = plan_sweep(cases, {"deepseek-v3": V3}, H100, capacity_bytes=H100.hardware.memory_bytes)
    moe, naive, fp8, fp8_train = plan.cases
    assert moe.status == "runs" and moe.fits and moe.backend == "grouped_mm" and moe.peak_method == "meta device"
    assert naive.status == "does not fit" and naive.need_bytes > 80 * 2**30 and naive.device_s < 10
    assert fp8.status == "runs" and fp8.backend.startswith("fp8-blockwise")
    assert fp8_train.status == "unsupported" and "forward only" in fp8_train.reason
    # device time: the timer's calls at the roofline, the parts and the energy window, plus overheads
    s = GPU_DEFAULTS
    calls, seconds = timed_calls(moe.time_per_call_s, s)
    assert moe.calls == calls + max(1, -(-1.0 // moe.time_per_call_s))
    assert moe.device_s > seconds + PlanAssumptions().case_overhead_s
    assert plan.total_device_s == pytest.approx(plan.cases_s + 30 + 15)


def test_plan_cli_with_hardware_prints_time_and_cost_and_json(tmp_path):
    r = run_meter("bench", "--plan", "--suite", "default-gpu", "--hardware", "h200-sxm", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["target"] == "h200-sxm" and out["capacity_bytes"] == 141 * 2**30
    assert {c["status"] for c in out["cases"]} == {"runs"} and len(out["cases"]) == 11
    assert out["total_device_s"] > out["cases_device_s"] > 0
    assert out["rental_usd"]["low"] <= out["rental_usd"]["point"] <= out["rental_usd"]["high"]
    assert out["rental_usd"]["point"] == pytest.approx(out["device_hours"] * out["price"]["usd_per_gpu_hour"])
    assert "price table 'default'" in out["price"]["source"]
    r = run_meter("bench", "--plan", "--suite", "default-gpu", "--memory", "24GiB")
    assert r.returncode == 0, r.stderr
    assert (
        "DOES NOT FIT" in r.stdout
        and "Device time: not estimated" in r.stdout
        and "Rental cost: not computed" in r.stdout
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plan"], "--plan needs a target"),
        (["--hardware", "h100-sxm"], "--hardware goes with --plan"),
        (["--plan", "--memory", "lots"], "argument --memory"),
        (["--plan", "--hardware", "cpu"], "not a GPU"),
        (["--plan", "--hardware", "h100-sxm", "--efficiency", "1.5"], "argument --efficiency"),
    ],
)
def test_plan_refuses_bad_flags_in_one_line(args, message):
    r = run_meter("bench", *args)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
