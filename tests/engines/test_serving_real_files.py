"""Serving benchmark files as engines write them on real runs: failed runs, sweeps, trace replays, paced loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meter.engines.serving import BenchFileError, load_serving_bench
from tests.conftest import run_meter
from tests.engines.formats import sglang_bench_serving, vllm_bench_serve, vllm_sweep, write_json, write_jsonl


def _failed_vllm() -> dict:
    """What vllm bench serve saves when no request came back: every count and throughput 0."""
    return vllm_bench_serve(
        num_prompts=8,
        completed=0,
        failed=8,
        total_input_tokens=0,
        total_output_tokens=0,
        request_throughput=0.0,
        output_throughput=0.0,
        total_token_throughput=0.0,
        errors=["", "Traceback ...\naiohttp.ClientConnectorError: Cannot connect to host localhost:8000"],
    )


def test_a_run_where_no_request_completed_is_refused_with_the_reason(tmp_path: Path):
    path = write_json(tmp_path / "failed.json", _failed_vllm())
    with pytest.raises(BenchFileError, match=r"field 'completed': no request completed \(0 of 8 requests; 8 failed"):
        load_serving_bench(path)
    r = run_meter("cost", "serve", "--from-bench", str(path), "--gpus", "8", "--price", "2")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Cannot connect to host localhost:8000" in r.stderr and "0/0" not in r.stdout
    sglang = write_jsonl(tmp_path / "sg.jsonl", [sglang_bench_serving(completed=0, total_input_tokens=0,
                         total_output_tokens=0, request_throughput=0.0, input_throughput=0.0, output_throughput=0.0)])  # fmt: skip
    with pytest.raises(BenchFileError, match="field 'completed': no request completed"):
        load_serving_bench(sglang)


def test_a_vllm_sweep_summary_is_read_as_several_points(tmp_path: Path):
    experiment = vllm_sweep(tmp_path, [{"max_concurrency": 16}, {"max_concurrency": 64}], runs=2)
    summary = next(experiment.glob("BENCH-max_concurrency=64/summary.json"))
    assert json.loads(summary.read_text())[1]["run_number"] == 1  # a JSON list, as the sweep writes it
    points = load_serving_bench(summary)
    assert len(points) == 2 and all(p.max_concurrency == 64 for p in points) and "[1]" in points[1].source
    r = run_meter("cost", "serve", "--from-bench", str(summary), "--gpus", "8", "--price", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert [x["max_concurrency"] for x in json.loads(r.stdout)["results"]] == [64, 64]


def test_a_vllm_sweep_directory_is_read_whole(tmp_path: Path):
    experiment = vllm_sweep(tmp_path, [{"max_concurrency": 16}, {"max_concurrency": 64}], runs=3)
    points = load_serving_bench(experiment)
    assert [p.max_concurrency for p in points] == [16, 16, 16, 64, 64, 64]  # warmup.json is not a point
    assert not any("warmup" in p.source for p in points)
    unsummarised = vllm_sweep(tmp_path / "b", [{"request_rate": 4}], runs=2, summary=False)
    (unsummarised / "BENCH-request_rate=4" / "run=2.failure.json").write_text('{"run_number": 2, "error": "x"}')
    points = load_serving_bench(unsummarised)
    assert [p.request_rate_per_s for p in points] == [4.0, 4.0] and "run=1.json" in points[1].source
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_meter("cost", "serve", "--from-bench", str(empty), "--gpus", "8", "--price", "2")
    assert r.returncode == 2 and "holds no run=<n>.json files" in r.stderr


def test_sglang_trace_replay_is_a_valid_file(tmp_path: Path):
    path = write_jsonl(tmp_path / "trace.jsonl", [sglang_bench_serving(request_rate="trace")])
    (b,) = load_serving_bench(path)
    assert b.paced_by == "trace" and b.request_rate_per_s is None
    r = run_meter("cost", "serve", "--from-bench", str(path), "--gpus", "8", "--price", "2")
    assert r.returncode == 0 and " trace " in r.stdout, r.stderr


@pytest.mark.parametrize(("rate", "phrase"), [(4.0, "sent at 4 requests/s"), ("trace", "sent at a trace's timestamps")])
def test_a_paced_runs_efficiency_says_it_measures_the_offered_load(tmp_path: Path, rate, phrase):
    path = write_json(tmp_path / "paced.json", vllm_bench_serve(request_rate=rate))
    args = ["--scenario", "deepseek-v3-day6", "--from-bench", str(path), "--gpus", "8", "--hardware", "h200-sxm"]
    r = run_meter("cost", "serve", *args, "--price", "2")
    assert r.returncode == 0, r.stderr
    (line,) = [x for x in r.stdout.splitlines() if "of the bound of deployment" in x]
    assert phrase in line and "measures the offered load, not the engine" in line
    e = json.loads(run_meter("cost", "serve", *args, "--price", "2", "--json").stdout)["results"][0]
    assert e["efficiency"]["measures"] == "load" and e["paced_by"] == ("trace" if rate == "trace" else "rate")
