"""Every cost input has a domain and no value inside it divides by zero; every JSON key is documented."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from meter.config.scenarios import INPUT_DOMAINS, SERVE_INPUTS, TRAIN_INPUTS
from meter.cost.serve import serve_cost
from tests.conftest import run_meter

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_input_has_a_domain():
    assert set(INPUT_DOMAINS) == set(TRAIN_INPUTS) | set(SERVE_INPUTS)


def test_no_load_means_no_margin_rather_than_a_division_by_zero():
    out = serve_cost(
        {
            "usd_per_gpu_hour": 2.0,
            "decode_tokens_per_s_per_gpu": 1850.0,
            "prefill_tokens_per_s_per_gpu": 4000.0,
            "input_tokens_per_day": 0.0,
            "output_tokens_per_day": 0.0,
            "price_input_hit_usd_per_m": 0.1,
            "price_input_miss_usd_per_m": 0.5,
            "price_output_usd_per_m": 2.0,
        }
    )
    assert out["usd_per_day"] == 0 and math.isnan(out["cost_profit_margin"])


@pytest.mark.parametrize(
    ("command", "assume"),
    [
        ("train", "gpus=0"),  # a serve input on a train command is refused by name too
        ("train", "depreciation_years=0"),
        ("train", "recompute_factor=0"),
        ("train", "pue=0.9"),
        ("train", "usd_per_gpu_hour=-1"),
        ("train", "usd_per_gpu_hour=0"),
        ("train", "utilization=0"),
        ("train", "fleet_gpus=0"),
        ("train", "fleet_capex_usd=0"),
        ("train", "mfu=0"),
        ("train", "mfu=1.01"),
        ("train", "achieved_tflops=-5"),
        ("train", "pipeline_bubble=1"),
        ("train", "comm_overlap=-0.1"),
        ("train", "nvlink_efficiency=0"),
        ("train", "avg_power_w=-1"),
        ("train", "staff_count=-2"),
        ("serve", "gpus=0"),
        ("serve", "decode_tokens_per_s_per_gpu=0"),
        ("serve", "decode_tokens_per_s_per_gpu=-100"),
        ("serve", "prefill_tokens_per_s_per_gpu=0"),
        ("serve", "serving_utilization=0"),
        ("serve", "cache_hit_rate=1.5"),
        ("serve", "cache_hit_cost_ratio=-0.5"),
        ("serve", "efficiency=0"),
        ("serve", "memory_efficiency=1.5"),
        ("serve", "pue=0"),
        ("serve", "usd_per_kwh=-0.1"),
        ("serve", "input_tokens_per_day=-1"),
    ],
)
def test_out_of_domain_inputs_are_refused_by_name(command, assume):
    args = ["--scenario", "deepseek-v3"] if command == "train" else []
    r = run_meter("cost", command, *args, "--assume", assume, "--samples", "0")
    name = assume.split("=")[0]
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert name in r.stderr


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--scenario", "deepseek-v3", "--samples", "3000000"], "2,000,000"),
        (["train", "--scenario", "deepseek-v3", "--seed", "-1"], "--seed"),
        (["train", "deepseek-v3", "--tokens", "0", "--mfu", "0.4"], "--tokens 0: must lie in (0, inf]"),
        (["train", "--scenario", "deepseek-v3", "--mfu", "0.4", "--achieved-tflops", "300"], "give one"),
        (["train", "--scenario", "deepseek-v3", "--achieved-tflops", "0"], "achieved_tflops"),
        (["train", "--scenario", "deepseek-v3", "--mfu-dtype", "fp64"], "no dense fp64 peak"),
        (["train", "--scenario", "deepseek-v3-day6"], "needs a training one"),
        (["serve", "--scenario", "deepseek-v3"], "needs a serve one"),
        (["train", "--scenario", "deepseek-v3", "--correlate", "pue=0.5"], "--correlate"),
    ],
)
def test_bad_cost_flags_are_one_line(argv, fragment):
    r = run_meter("cost", *argv)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert fragment in r.stderr, r.stderr


# --- every key a cost command emits is documented -------------------------------------------------


def _documented(path: Path) -> set[str]:
    """Every identifier inside backticks in a doc (fenced examples aside)."""
    words = set()
    text = re.sub(r"```.*?```", " ", path.read_text(), flags=re.S)
    for span in re.findall(r"`([^`]+)`", text):
        words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span))
    return words


MAPS = {"outputs", "inputs", "pools", "weights"}  # keys that are names (outputs, inputs, pools, weight kinds)


def _keys(obj, parent: str | None = None, out=None) -> dict[str, set[str]]:
    out = out if out is not None else {"structure": set(), "outputs": set(), "inputs": set()}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if parent in ("outputs", "inputs"):
                out[parent].add(k.split(".")[0])
            elif parent not in MAPS:
                out["structure"].add(k)
            _keys(v, k, out)
    elif isinstance(obj, list):
        for v in obj:
            _keys(v, parent, out)
    return out


@pytest.mark.parametrize(
    "argv",
    [
        ["cost", "train", "--scenario", "deepseek-v3"],
        ["cost", "train", "--scenario", "deepseek-v3-cluster"],
        ["cost", "train", "--scenario", "deepseek-r1"],
        ["cost", "serve", "--scenario", "deepseek-v3-day6"],
        ["cost", "serve", "--efficiency", "0.3"],
        ["cost", "serve", "llama-3.1-405b", "--hardware", "h100-sxm", "--weights", "fp8"],
        ["cost", "cluster", "--ep", "8"],
    ],
)
def test_every_json_key_is_documented(argv, tmp_path: Path):
    r = run_meter(*argv, "--samples", "100", "--json")
    assert r.returncode == 0, r.stderr
    keys = _keys(json.loads(r.stdout))
    cli_json, cost = _documented(DOCS / "cli-json.md"), _documented(DOCS / "cost.md")
    assert keys["structure"] - cli_json == set(), "keys missing from docs/cli-json.md"
    assert keys["outputs"] - cli_json == set(), "output names missing from docs/cli-json.md"
    inputs = keys["inputs"] - {"stage"}
    assert inputs - cost == set(), "input names missing from docs/cost.md"


def test_a_measured_run_json_is_documented_too(tmp_path: Path):
    from tests.cost.test_measured import _run

    path = _run(tmp_path / "r.json")
    for command in ("serve", "train"):
        args = ["--scenario", "deepseek-v3"] if command == "train" else []
        r = run_meter("cost", command, *args, "--from-run", str(path), "--samples", "100", "--json")
        if command == "train":  # this run has no training projection
            assert r.returncode == 2 and "no training projection" in r.stderr
            continue
        keys = _keys(json.loads(r.stdout))
        assert keys["structure"] - _documented(DOCS / "cli-json.md") == set()


def test_training_rates_agree_with_each_other():
    """--achieved-tflops X is --mfu X / peak; --mfu-dtype fp16 is against the fp16 peak (the same on Hopper)."""

    def hours(*extra):
        r = run_meter("cost", "train", "deepseek-v3", "--tokens", "14.8T", "--samples", "0", "--json", *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    by_mfu, by_rate = hours("--mfu", "0.4"), hours("--achieved-tflops", str(0.4 * 989.4))
    assert by_rate["outputs"]["pretraining_gpu_hours"]["point"] == pytest.approx(
        by_mfu["outputs"]["pretraining_gpu_hours"]["point"]
    )
    assert by_rate["outputs"]["mfu"]["point"] == pytest.approx(0.4)
    assert by_mfu["outputs"]["achieved_flops_per_s_per_gpu"]["point"] == pytest.approx(0.4 * 989.4e12)
    v100ish = hours("--mfu", "0.4", "--mfu-dtype", "fp16", "--hardware", "a100-sxm-80gb")
    assert v100ish["mfu_dtype"] == "fp16"
    flops = by_mfu["outputs"]["training_flops"]["point"]
    assert flops == pytest.approx(14.8e12 * 250.45e9, rel=0.002)  # tokens x the analytic 250.45 GFLOPs per token
    comparisons = {c["model"]: c for c in by_mfu["comparisons"]}
    assert comparisons["gpt-3"]["published_flops"] == 3.14e23 and abs(comparisons["gpt-3"]["rel_diff"]) < 0.02
    assert (
        comparisons["llama-3.1-405b"]["published_flops"] == 3.8e25
        and abs(comparisons["llama-3.1-405b"]["rel_diff"]) < 0.05
    )


def test_a_price_on_the_command_line_silences_the_missing_price_note():
    # b300: no public on-demand price in the built-in table (configs/pricing/default.yaml)
    base = ["cost", "train", "deepseek-v3", "--tokens", "14.8T", "--hardware", "b300", "--mfu", "0.3", "--samples", "0"]
    assert "no rental price for b300" in run_meter(*base).stdout
    priced = run_meter(*base, "--price", "4")
    assert priced.returncode == 0 and "no rental price" not in priced.stdout and "$" in priced.stdout


def test_the_h100_question_prints_what_the_docs_say():
    r = run_meter("cost", "train", "--scenario", "v3-on-h100-2026", "--json")
    usd = json.loads(r.stdout)["outputs"]["total_usd"]
    assert usd["point"] == pytest.approx(7.06e6, rel=0.005)  # docs/cost.md: about $7.06M
    assert 4.9e6 < usd["p10"] < 5.5e6 and 9.3e6 < usd["p90"] < 10.2e6  # docs/cost.md: P10-P90 $5.2-9.8M
    text = (DOCS / "cost.md").read_text()
    assert "$7.06M" in text and "$5.5M" not in text


def test_stage_sizes_have_a_domain_too(config_dir: Path):
    import yaml

    from meter.config.paths import ConfigLocator, builtin_config_dir
    from meter.config.scenarios import load_scenario
    from meter.errors import ConfigError

    data = yaml.safe_load((builtin_config_dir() / "scenarios" / "deepseek-r1.yaml").read_text())
    data["stages"][0]["hours"] = -198
    (config_dir / "scenarios" / "deepseek-r1.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_scenario("deepseek-r1", ConfigLocator.from_env([config_dir]))
    assert info.value.field == "stages[0].hours" and "must lie in (0, inf]" in str(info.value)
