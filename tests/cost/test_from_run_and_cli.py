"""Costs from measured runs (direct and by efficiency transfer), and the cost commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from meter.analytic import flops as F
from meter.config.models import load_model
from meter.config.scenarios import load_scenario
from meter.cost.estimate import estimate_train
from meter.cost.from_run import load_measured
from meter.errors import MeterError
from meter.results.atomic import write_json_atomic
from tests.conftest import run_meter
from tests.runs import synthetic_v3_run

V3 = load_model("deepseek-v3").args


def synthetic_run(path: Path, **kw) -> Path:
    return synthetic_v3_run(path, **kw)


def test_a_run_on_the_scenarios_gpu_is_used_directly(tmp_path: Path):
    run = load_measured(synthetic_run(tmp_path / "run.json"))
    e = estimate_train(load_scenario("deepseek-v3"), run=run, samples=0)
    assert e.method == "run (direct)" and not e.cpu_derived
    x = {k: v.quantity.central for k, v in e.inputs.items()}
    factor = (
        (1 + x["head_embedding_overhead"])
        * (1 + x["mtp_overhead"])
        * x["recompute_factor"]
        * (1 + x["exposed_communication"])
        / (1 - x["pipeline_bubble"])
    )
    assert e.outputs["pretraining_gpu_hours"].point == pytest.approx(14.8e12 * 1e-3 * factor / 3600)
    assert e.inputs["avg_power_w"].origin == "measured run"
    assert e.inputs["avg_power_w"].quantity.central == pytest.approx(600)
    assert e.inputs["head_embedding_overhead"].origin == "analytic" and "mfu" not in e.inputs
    assert e.reproductions  # still shown beside the measured figures


def test_a_run_on_another_gpu_transfers_its_efficiency(tmp_path: Path):
    run = load_measured(synthetic_run(tmp_path / "run.json", hardware="h100-sxm"))
    e = estimate_train(load_scenario("deepseek-v3"), run=run, samples=0)
    assert e.method == "run (transfer)" and any("efficiency transfer" in n for n in e.notes)
    rate = run.pick("train")
    layers = F.train_flops_per_token(V3, 4096)
    layer_flops = layers.total - layers.output_head
    assert rate.efficiency == pytest.approx(layer_flops / 1e-3 / 989.4e12)
    # the same die and peak, so the transferred time equals the measured one
    assert e.outputs["pretraining_gpu_hours"].point == pytest.approx(
        estimate_train(load_scenario("deepseek-v3"), run=load_measured(synthetic_run(tmp_path / "d.json")), samples=0)
        .outputs["pretraining_gpu_hours"]
        .point,
        rel=1e-6,
    )


def test_a_run_without_projections_is_refused(tmp_path: Path):
    path = synthetic_run(tmp_path / "run.json")
    doc = json.loads(path.read_text())
    doc["projections"] = []
    write_json_atomic(path, doc)
    with pytest.raises(MeterError, match="no whole-model projection"):
        load_measured(path)


def test_cost_cli_json_and_report(tmp_path: Path):
    report = tmp_path / "v3.md"
    r = run_meter("cost", "train", "--scenario", "deepseek-v3", "--json", "--report", str(report))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["outputs"]["total_usd"]["point"] == pytest.approx(5.576e6, rel=0.01)
    assert doc["inputs"]["usd_per_gpu_hour"]["source"].startswith("DeepSeek-V3 Technical Report")
    assert all(x["agrees"] for x in doc["reproductions"])
    kinds = {x["label"]: x["kind"] for x in doc["reproductions"]}
    assert kinds["total cost"] == "consistency" and kinds["implied MFU"] == "independent"
    assert [x["label"] for x in doc["reproductions"] if x["reproduced"]] == ["implied MFU"]
    text = report.read_text()
    for section in (
        "## Results",
        "## Stages",
        "## Reported figures",
        "## Assumptions",
        "## What this figure leaves out",
    ):
        assert section in text
    assert "P10" in text and "arXiv 2412.19437" in text


def test_cost_cli_tables_and_adhoc_model():
    r = run_meter("cost", "train", "deepseek-v3", "--tokens", "14.8T", "--hardware", "h100-sxm", "--mfu", "0.30..0.45")
    assert r.returncode == 0, r.stderr
    assert "P10" in r.stdout and "h100-sxm" in r.stdout
    r = run_meter("cost", "serve", "--tokens-per-day", "608B,168B")
    assert r.returncode == 0 and "$ per million output tokens" in r.stdout and "545" in r.stdout or "546" in r.stdout
    r = run_meter("scenarios")
    assert r.returncode == 0 and "deepseek-v3-day6" in r.stdout


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["cost", "train", "deepseek-v3"], "--tokens"),
        (["cost", "train", "--scenario", "deepseek-v3", "--price", "cheap"], "--price"),
        (
            ["cost", "train", "--scenario", "deepseek-v3", "--assume", "pipline_bubble=0.1"],
            "did you mean 'pipeline_bubble'",
        ),
        (["cost", "train", "--scenario", "deepseek-v3", "--from-run", "/no/run.json"], "no such file"),
        (["cost", "train", "--scenario", "deepseek-v4"], "did you mean 'deepseek-v3'"),
        (["cost", "serve", "--scenario", "deepseek-v3"], "serve one"),
        (["cost", "serve", "--tokens-per-day", "lots"], "--tokens-per-day"),
        (["calibrate", "/no/run.json"], "/no/run.json: no such file"),
    ],
)
def test_cost_cli_bad_input(argv, fragment):
    r = run_meter(*argv)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and fragment in r.stderr, r.stderr


def test_calibrate_a_synthetic_gpu_run(tmp_path: Path):
    path = synthetic_run(tmp_path / "run.json")
    r = run_meter("calibrate", str(path), "--scenario", "deepseek-v3")
    assert r.returncode == 0, r.stderr
    assert "pre-training takes" in r.stdout and "reported: 2.664M GPU-hours" in r.stdout and "CPU" not in r.stdout
    c = json.loads(run_meter("calibrate", str(path), "--json").stdout)
    assert c["method"] == "run (direct)" and c["measured"]["pretraining_gpu_hours"] > 0


@pytest.mark.slow
def test_meter_run_ends_with_labelled_costs(tmp_path: Path):
    out, report = tmp_path / "run.json", tmp_path / "run.html"
    r = run_meter(
        "run",
        "--output",
        str(out),
        "--min-time",
        "0.05",
        "--report",
        str(report),
        env={"METER_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert r.returncode == 0, r.stderr
    assert report.stat().st_size > 100_000 and '<section id="roofline">' in report.read_text()
    assert "Training cost of deepseek-v3" in r.stdout and "CPU-derived" in r.stdout and "Serving cost" in r.stdout
    doc = json.loads(out.read_text())
    cost = doc["extras"]["cost"]
    assert cost["train"]["cpu_derived"] and cost["train"]["method"] == "run (transfer)"
    serve = cost["serve"]
    assert serve["method"] == "bound x efficiency (measured, transfer)" and serve["cpu_derived"]
    assert serve["deployment"]["name"] == "deepseek-v3-day6" and serve["deployment"]["pools"]["decode"]["ep"] == 144
    usd = serve["outputs"]["usd_per_m_output_tokens"]
    # A CPU-derived efficiency on a loaded 2-core machine can be several times off an idle one's (the
    # cases and the ceilings are slowed differently): only the order of magnitude is the test's, not
    # the machine's speed. Idle, it is within a factor of 2 of DeepSeek's $0.30 (docs/benchmarks.md).
    assert 0.003 <= usd["point"] <= 30.0, usd  # within a factor of 100 of DeepSeek's $0.30 on their layout
    assert usd["p10"] <= usd["point"] <= usd["p90"] and usd["p10"] < usd["p90"]  # a band from the timing's spread
    assert "efficiency transfer: the cases measured on CPU" in r.stdout and "of the decode bound" in r.stdout
    # the report shows the terminal's serving figure for this run file, and says where it is priced
    line = next(x for x in r.stdout.splitlines() if x.startswith("Serving cost of"))
    figure = re.search(r"(\$[0-9.]+) per million output tokens", line).group(1)
    assert "on the deepseek-v3-day6 deployment" in line and "decode batch" in line
    page = report.read_text()
    assert f"{figure} per million output tokens" in page and "As <code>meter run</code> prints it" in page
    c = run_meter("calibrate", str(out), "--scenario", "deepseek-v3")
    assert c.returncode == 0 and "CPU-derived" in c.stdout
