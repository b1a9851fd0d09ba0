"""The cost model: quantities, Monte Carlo, the arithmetic, and the published figures it reproduces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from meter.config.paths import ConfigLocator, builtin_config_dir
from meter.config.quantity import Quantity, QuantityError, from_yaml, parse_cli
from meter.config.scenarios import list_scenarios, load_scenario
from meter.cost.configs import load_and_estimate_serve, load_and_estimate_train
from meter.cost.montecarlo import evaluate
from meter.cost.serving_formula import serve_cost
from meter.cost.training_formula import HOURS_PER_YEAR, StagePlan, TrainContext, ownership_usd_per_gpu_hour, train_cost
from meter.errors import ConfigError

# --- quantities ---


@pytest.mark.parametrize(
    ("text", "dist", "bounds"),
    [
        ("0.39", "point", (0.39, 0.39)),
        ("14.8T", "point", (14.8e12, 14.8e12)),
        ("0.30..0.45", "uniform", (0.30, 0.45)),
        ("1.7..3.0:log", "loguniform", (1.7, 3.0)),
    ],
)
def test_cli_quantities(text, dist, bounds):
    q = parse_cli(text)
    assert q.dist == dist and q.bounds == pytest.approx(bounds)


@pytest.mark.parametrize("text", ["abc", "3..1", "1.5:log", "-1..2:log", "1..nan"])
def test_bad_cli_quantities(text):
    with pytest.raises(QuantityError):
        parse_cli(text)


def test_yaml_distributions_and_their_samples():
    rng = np.random.default_rng(0)
    cases = {
        "uniform": ({"low": 1, "high": 3}, 2.0),
        "loguniform": ({"low": 1, "high": 100, "dist": "loguniform"}, 10.0),
        "triangular": ({"low": 0, "mode": 1, "high": 4, "dist": "triangular"}, None),
        "normal": ({"mean": 5, "sd": 1}, 5.0),
        "lognormal": ({"p10": 1, "p90": 4}, 2.0),
    }
    for name, (spec, median) in cases.items():
        q = from_yaml(spec)
        assert q.dist == name
        draws = q.sample(200_000, rng)
        if median is not None:
            assert np.median(draws) == pytest.approx(median, rel=0.02), name
    lognormal = from_yaml({"p10": 1, "p90": 4}).sample(200_000, rng)
    assert np.percentile(lognormal, [10, 90]) == pytest.approx([1, 4], rel=0.02)
    assert from_yaml(3).is_point and from_yaml("2..4").dist == "uniform"
    for bad in (
        {"low": 2},
        {"low": 3, "high": 1},
        {"mean": 1, "sd": -1},
        {"lo": 1, "high": 2},
        True,
        [1, 2],
        {"low": 0, "mode": 5, "high": 4, "dist": "triangular"},
    ):
        with pytest.raises(QuantityError):
            from_yaml(bad)


def test_monte_carlo_percentiles():
    inputs = {"a": Quantity("uniform", low=0.0, high=10.0), "b": Quantity.point(2.0)}
    summaries = evaluate(lambda x: {"y": x["a"] * x["b"]}, inputs, samples=100_000, seed=1)
    y = summaries["y"]
    assert y.point == 10.0 and y.p10 == pytest.approx(2.0, abs=0.1) and y.p90 == pytest.approx(18.0, abs=0.1)
    points = evaluate(lambda x: {"y": x["a"] * x["b"]}, inputs, samples=0)
    assert points["y"].p10 == points["y"].p90 == 10.0
    # speed is a benchmark (scripts/bench_montecarlo.py, docs/cost.md), not a timed test


# --- the arithmetic, by hand ---


def test_training_arithmetic_with_an_mfu():
    ctx = TrainContext(
        stages=[
            StagePlan("pre", "tokens", flops_per_token=6e9),
            StagePlan("ext", "gpu_hours"),
            StagePlan("rl", "gpus_hours", gpus=10),
        ],
        peak_flops=1e15,
        cluster_gpus=100,
        pretraining="pre",
    )
    x = {
        "stage.pre.tokens": 3.6e15,
        "stage.ext.gpu_hours": 500.0,
        "stage.rl.hours": 20.0,
        "mfu": 0.5,
        "usd_per_gpu_hour": 2.0,
    }
    out = train_cost(x, ctx)
    # 3.6e15 tokens x 6e9 FLOPs / (0.5 x 1e15 FLOP/s) = 4.32e10 GPU-seconds = 1.2e7 GPU-hours
    assert out["pretraining_gpu_hours"] == pytest.approx(1.2e7)
    assert out["total_gpu_hours"] == pytest.approx(1.2e7 + 500 + 200)
    assert out["total_usd"] == pytest.approx(2 * (1.2e7 + 700))
    assert out["gpu_hours_per_trillion_tokens"] == pytest.approx(1.2e7 / 3600)
    assert out["days_per_trillion_tokens_on_cluster"] == pytest.approx(1.2e7 / 3600 / 100 / 24)
    assert out["mfu"] == pytest.approx(0.5)


def test_training_from_measured_time_applies_every_factor():
    # 0.5 ms per token at 100% of the run's basis, measured at 50% of it: 1 ms per token
    ctx = TrainContext(
        stages=[StagePlan("pre", "tokens", flops_per_token=1e9, measured_work_s=0.5e-3)],
        peak_flops=1e15,
        rate="measured_efficiency",
        pretraining="pre",
    )
    x = {
        "stage.pre.tokens": 3.6e6,
        "measured_efficiency": 0.5,
        "head_embedding_overhead": 0.1,
        "mtp_overhead": 0.05,
        "recompute_factor": 1.02,
        "exposed_communication": 0.2,
        "pipeline_bubble": 0.1,
    }
    out = train_cost(x, ctx)
    factor = 1.1 * 1.05 * 1.02 * 1.2 / 0.9
    assert out["pretraining_gpu_hours"] == pytest.approx(3.6e6 * 1e-3 * factor / 3600)


def test_ownership_energy_and_programme():
    x = {
        "gpu_capex_usd": 30_000.0,
        "server_network_overhead": 0.5,
        "depreciation_years": 4.0,
        "utilization": 0.8,
        "avg_power_w": 500.0,
        "server_power_overhead": 0.8,
        "pue": 1.25,
        "usd_per_kwh": 0.1,
    }
    capex_hour = 45_000 / (4 * HOURS_PER_YEAR * 0.8)
    energy_hour = 0.5 * 1.8 * 1.25 * 0.1
    assert ownership_usd_per_gpu_hour(x) == pytest.approx(capex_hour + energy_hour)
    ctx = TrainContext(stages=[StagePlan("s", "gpu_hours")], peak_flops=1e15)
    out = train_cost(
        {
            **x,
            "stage.s.gpu_hours": 1000.0,
            "usd_per_gpu_hour": 2.0,
            "experiment_multiplier": 3.0,
            "data_usd": 1000.0,
            "staff_count": 2.0,
            "staff_usd_per_year": 500.0,
            "programme_years": 1.0,
            "fleet_capex_usd": 1e6,
            "fleet_gpus": 100.0,
        },
        ctx,
    )
    assert out["energy_kwh"] == pytest.approx(1000 * 0.9 * 1.25)
    assert out["programme_usd"] == pytest.approx(2000 + 6000 + 1000 + 1000)
    assert out["final_run_share_of_programme"] == pytest.approx(0.2)
    assert out["final_run_share_of_fleet_capex"] == pytest.approx(0.002) and out["fleet_capex_per_gpu_usd"] == 1e4
    assert "ownership_usd" in out and "energy_usd" in out
    assert "programme_usd" not in train_cost({"stage.s.gpu_hours": 1.0, "usd_per_gpu_hour": 1.0}, ctx)


def test_serving_arithmetic():
    x = {
        "usd_per_gpu_hour": 3.6,
        "prefill_tokens_per_s_per_gpu": 10_000.0,
        "decode_tokens_per_s_per_gpu": 1_000.0,
        "cache_hit_rate": 0.5,
        "cache_hit_cost_ratio": 0.0,
        "input_tokens_per_day": 864e6,
        "output_tokens_per_day": 86.4e6,
        "price_input_hit_usd_per_m": 0.1,
        "price_input_miss_usd_per_m": 0.5,
        "price_output_usd_per_m": 2.0,
    }
    out = serve_cost(x)
    assert out["usd_per_m_output_tokens"] == pytest.approx(1.0)  # $0.001/s / 1000 tok/s x 1e6
    assert out["usd_per_m_input_tokens_miss"] == pytest.approx(0.1)
    assert out["usd_per_m_input_tokens"] == pytest.approx(0.05)  # half the tokens are free hits
    assert out["gpus_needed"] == pytest.approx((432e6 / 10_000 + 86.4e6 / 1_000) / 86400)
    assert out["usd_per_day"] == pytest.approx(out["gpus_needed"] * 24 * 3.6)
    revenue = (432e6 * 0.1 + 432e6 * 0.5 + 86.4e6 * 2.0) / 1e6
    assert out["revenue_usd_per_day"] == pytest.approx(revenue)
    assert out["cost_profit_margin"] == pytest.approx((revenue - out["usd_per_day"]) / out["usd_per_day"])
    assert serve_cost({**x, "serving_utilization": 0.5})["usd_per_m_output_tokens"] == pytest.approx(2.0)


# --- the published figures, from the scenarios' own inputs ---


def test_every_scenario_loads_and_reproduces_what_it_reports():
    names = list_scenarios()
    assert {"deepseek-v3", "deepseek-r1", "deepseek-v3-day6", "v3-on-h100-2026"} <= set(names)
    for name in names:
        scenario = load_scenario(name)
        fn = load_and_estimate_train if scenario.kind == "train" else load_and_estimate_serve
        estimate = fn(scenario, samples=0)
        for r in estimate.reproductions:
            assert r.agrees, (name, r)
            assert r.reproduced == (r.kind == "independent")


def test_deepseek_v3_training_table():
    out = load_and_estimate_train(load_scenario("deepseek-v3"), samples=0).outputs
    assert out["total_gpu_hours"].point == pytest.approx(2_788_000, rel=0.01)  # 2,664K + 119K + 5K
    assert out["total_usd"].point == pytest.approx(5_576_000, rel=0.01)  # at $2/GPU-hour
    assert out["gpu_hours_per_trillion_tokens"].point == pytest.approx(180_000, rel=0.01)
    assert out["days_per_trillion_tokens_on_cluster"].point == pytest.approx(3.7, rel=0.02)
    assert out["implied_mfu"].point == pytest.approx(0.39, abs=0.005)  # "about 39%"
    assert out["stage_gpu_hours.context extension"].point == 119_000


def test_deepseek_r1_and_the_combined_figure():
    out = load_and_estimate_train(load_scenario("deepseek-r1"), samples=0).outputs
    assert out["total_usd"].point == pytest.approx(294_000, rel=0.01)
    assert out["cumulative_usd"].point == pytest.approx(5_870_000, rel=0.01)


def test_deepseek_inference_day():
    out = load_and_estimate_serve(load_scenario("deepseek-v3-day6"), samples=0).outputs
    assert out["usd_per_day"].point == 87_072
    assert out["revenue_usd_per_day"].point == pytest.approx(562_027, rel=0.001)
    assert out["cost_profit_margin"].point == pytest.approx(5.45, rel=0.005)
    assert out["usd_per_m_output_tokens"].point == pytest.approx(0.30, rel=0.01)
    assert out["usd_per_m_input_tokens"].point == pytest.approx(0.06, rel=0.01)
    assert out["gpus_needed"].point == pytest.approx(1814, rel=0.01)  # the day's load fits the deployed GPUs


def test_the_capex_view_beside_the_rental_view():
    e = load_and_estimate_train(load_scenario("deepseek-v3"), samples=20_000)
    share = e.outputs["final_run_share_of_fleet_capex"]
    # $5.576M against $0.5B to $1.6B of GPUs: between about 0.35% and 1.1%
    assert 0.0034 <= share.p10 <= share.p90 <= 0.0115
    assert e.inputs["fleet_gpus"].quantity.central == 50_000
    assert e.inputs["fleet_capex_usd"].quantity.bounds == (500e6, 1.6e9)
    assert "capital cost" in " ".join(e.scenario.leaves_out)


def test_ranges_give_percentiles_and_stale_prices_are_left_out():
    e = load_and_estimate_train(load_scenario("v3-on-h100-2026"), samples=20_000)
    usd = e.outputs["total_usd"]
    assert usd.p10 < usd.p50 < usd.p90 and usd.is_range
    table_price = load_and_estimate_train(load_scenario("deepseek-v3"), hardware="h100-sxm", samples=0)
    price = table_price.inputs["usd_per_gpu_hour"]
    assert price.origin == "price table" and price.quantity.bounds[1] < 5  # AWS's 2023 $12.29 is stale


# --- bad scenarios ---


def _write_variant(config_dir: Path, mutate) -> ConfigLocator:
    data = yaml.safe_load((builtin_config_dir() / "scenarios" / "deepseek-v3.yaml").read_text())
    mutate(data)
    (config_dir / "scenarios" / "deepseek-v3.yaml").write_text(yaml.safe_dump(data))
    return ConfigLocator.from_env([config_dir])


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        (
            lambda d: d["assumptions"].update(pipline_bubble=d["assumptions"].pop("pipeline_bubble")),
            "assumptions.pipline_bubble",
            "did you mean 'pipeline_bubble'",
        ),
        (
            lambda d: d["reported"]["total cost"].update(output="total_dollars"),
            "reported.total cost.output",
            "not an output",
        ),
        (lambda d: d["stages"][0].update(gpu_hours=10), "stages[0]", "exactly one of"),
        (
            lambda d: d["assumptions"]["mfu"].update(value={"low": 0.5, "high": 0.1}),
            "assumptions.mfu.value",
            "above high",
        ),
        (lambda d: d["assumptions"]["mfu"].pop("source"), "assumptions.mfu.source", "missing"),
        (lambda d: d.update(hardware="h900"), "hardware", "no such hardware"),
        (lambda d: d["assumptions"]["mfu"].update(value=1.5), "assumptions.mfu.value", "must lie in (0, 1]"),
        (
            lambda d: d["assumptions"]["pipeline_bubble"].update(value={"low": 0.5, "high": 1.0}),
            "assumptions.pipeline_bubble.value",
            "must lie in [0, 1)",
        ),
    ],
)
def test_bad_scenarios_name_the_field(config_dir: Path, mutate, field, fragment):
    locator = _write_variant(config_dir, mutate)
    with pytest.raises(ConfigError) as info:
        load_scenario("deepseek-v3", locator)
    assert info.value.field == field and fragment in str(info.value)
