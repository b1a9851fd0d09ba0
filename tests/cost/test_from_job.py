"""A measured job in the cost model: its end-to-end MFU applied to a scenario, checked by hand."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from meter.analytic import flops as F
from meter.config.models import load_model
from meter.config.scenarios import load_scenario
from meter.cost.job_pipeline import estimate_from_job
from meter.cost.measured.job import job_rate
from meter.errors import MeterError, UsageError
from meter.jsonable import to_jsonable
from meter.results.atomic import write_json_atomic
from tests.conftest import run_meter
from tests.runs import job_doc


def test_at_the_mfu_the_job_achieved_v3_pretraining_takes_this_many_gpu_hours():
    doc = job_doc(hardware="h100-sxm", gpus=8, duration_s=3600)  # 1,000 tokens/s of V3 training on 8 H100s
    rate = job_rate(doc, "job.json")
    flops = F.train_flops_per_token(load_model("deepseek-v3").args, 4096).total
    assert rate.mfu == pytest.approx(1000 * flops / 8 / 989.4e12)
    e = estimate_from_job(load_scenario("deepseek-v3"), rate, samples=0)
    # the scenario's 14.8T tokens at that MFU on H800s: tokens x FLOPs / (MFU x peak); H800 and H100 share
    # the 989.4 TFLOP/s dense bf16 peak, so this is 14.8T tokens / 1,000 tokens/s x 8 GPUs = 32.89M GPU-hours
    hours = 14.8e12 * flops / (rate.mfu * 989.4e12) / 3600
    assert hours == pytest.approx(14.8e12 / 1000 * 8 / 3600)
    assert e.outputs["pretraining_gpu_hours"].point == pytest.approx(hours, rel=1e-6)
    assert e.method == "measured job" and e.inputs["mfu"].origin == "measured job" and "job.json" in e.notes[0]
    assert "avg_power_w" not in e.inputs or e.inputs["avg_power_w"].origin != "measured job"  # another GPU's power


def test_on_the_scenarios_own_gpu_and_model_the_measured_power_is_used_too():
    rate = job_rate(job_doc(hardware="h800-sxm", power_w=550.0), "job.json")
    e = estimate_from_job(load_scenario("deepseek-v3"), rate, samples=0)
    assert e.inputs["avg_power_w"].quantity.central == pytest.approx(550.0)
    assert e.inputs["avg_power_w"].origin == "measured job"


def test_a_job_without_what_pricing_needs_is_refused_in_one_line():
    doc = job_doc()
    for job, phrase in (
        (dataclasses.replace(doc.job, work=None), "no token count for a model"),
        (dataclasses.replace(doc.job, work=dataclasses.replace(doc.job.work, mfu=None)), "has no MFU"),
        (dataclasses.replace(doc.job, work=dataclasses.replace(doc.job.work, mfu=3.0)), "above 1"),
        (dataclasses.replace(doc.job, cost=dataclasses.replace(doc.job.cost, gpus=0), gpus=[]), "GPU count"),
    ):
        with pytest.raises(MeterError, match=phrase):
            job_rate(dataclasses.replace(doc, job=job), "job.json")
    decode = dataclasses.replace(doc.job, work=dataclasses.replace(doc.job.work, phase="decode"))
    rate = job_rate(dataclasses.replace(doc, job=decode), "job.json")
    with pytest.raises(UsageError, match="needs a training job's MFU"):
        estimate_from_job(load_scenario("deepseek-v3"), rate, samples=0)
    with pytest.raises(UsageError, match="a serving scenario takes a prefill or decode job of deepseek-v3 on h800"):
        estimate_from_job(load_scenario("deepseek-v3-day6"), rate, samples=0)


def test_a_decode_job_of_the_scenarios_model_and_gpu_sets_its_throughput():
    doc = job_doc(hardware="h800-sxm", gpus=8)
    job = dataclasses.replace(doc.job, work=dataclasses.replace(doc.job.work, phase="decode"))
    rate = job_rate(dataclasses.replace(doc, job=job), "job.json")
    e = estimate_from_job(load_scenario("deepseek-v3-day6"), rate, samples=0)
    assert e.inputs["decode_tokens_per_s_per_gpu"].quantity.central == pytest.approx(1000 / 8)
    price = e.inputs["usd_per_gpu_hour"].quantity.central
    assert e.outputs["usd_per_m_output_tokens"].point == pytest.approx(
        price
        / 3600
        / (125 * e.inputs.get("serving_utilization").quantity.central if "serving_utilization" in e.inputs else 125)
        * 1e6,
        rel=0.2,
    )


def test_meter_report_says_what_the_jobs_mfu_implies(tmp_path: Path):
    path = tmp_path / "job.json"
    write_json_atomic(path, to_jsonable(job_doc(hardware="h800-sxm", gpus=8, duration_s=3600)))
    out = tmp_path / "report.html"
    r = run_meter("report", str(path), "-o", str(out), "--samples", "0")
    assert r.returncode == 0, r.stderr
    page = out.read_text()
    assert "Measured job" in page and "At the MFU your job achieved" in page and "pre-training" in page
    assert "32.89M h800-sxm GPU-hours" in page  # 14.8T tokens x 8 GPUs / 1,000 tokens/s


def test_meter_calibrate_takes_a_measured_job(tmp_path: Path):
    import json

    path = tmp_path / "job.json"
    write_json_atomic(path, to_jsonable(job_doc(hardware="h800-sxm", gpus=8, duration_s=3600)))
    r = run_meter("calibrate", str(path), "--scenario", "deepseek-v3")
    assert r.returncode == 0, r.stderr
    assert "At the MFU your job achieved, deepseek-v3's pre-training takes 32.89M GPU-hours" in r.stdout
    c = json.loads(run_meter("calibrate", str(path), "--json").stdout)
    assert c["method"] == "measured job" and c["measured"]["pretraining_gpu_hours"] == pytest.approx(
        14.8e12 * 8 / 1000 / 3600
    )
    assert c["efficiency"]["train"][0]["tokens_per_s_per_gpu"] == pytest.approx(125.0)
    wrong = run_meter("calibrate", str(path), "--scenario", "deepseek-v3-day6")
    assert wrong.returncode == 2 and "a serving scenario takes a prefill or decode job" in wrong.stderr
