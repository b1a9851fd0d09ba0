"""Real engines' benchmark files and nccl-tests output: parsed, refused when broken, priced by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from meter.cost.measured.bench import BenchPrice, price_serving_bench
from meter.engines.serving import BenchFileError, load_serving_bench
from tests.conftest import run_meter
from tests.engines.formats import (
    nccl_output,
    sglang_bench_serving,
    vllm_bench_serve,
    vllm_benchmark_serving,
    write_json,
    write_jsonl,
)


def test_vllm_bench_serve_file_is_read_and_priced_by_hand(tmp_path: Path):
    (b,) = load_serving_bench(write_json(tmp_path / "vllm.json", vllm_bench_serve()))
    assert b.engine == "vllm" and b.model_id == "deepseek-ai/DeepSeek-V3" and b.request_rate_per_s is None
    assert (b.duration_s, b.completed, b.failed, b.max_concurrency) == (120.0, 500, 0, 64)
    assert b.latencies["ttft"].percentiles_ms == {"p50": 171.0, "p90": 300.0, "p99": 378.0}
    assert b.latencies["tpot"].mean_ms == 42.0 and b.latencies["e2el"].percentiles_ms["p99"] == pytest.approx(22890)
    c = price_serving_bench(b, gpus=8, price=BenchPrice(2.5, "--price"))
    # 8 GPUs x 120 s = 0.2667 GPU-hours x $2.50 = $0.6667 for 128,000 output and 512,000 input tokens
    assert c.gpu_hours == pytest.approx(8 * 120 / 3600) and c.usd == pytest.approx(0.666667, rel=1e-5)
    assert c.usd_per_m_output_tokens == pytest.approx(0.666667 / 0.128, rel=1e-5)  # $5.208
    assert c.usd_per_m_input_tokens == pytest.approx(0.666667 / 0.512, rel=1e-5)  # $1.302
    assert c.usd_per_m_tokens == pytest.approx(0.666667 / 0.640, rel=1e-5)  # $1.042
    assert c.output_tokens_per_s_per_gpu == pytest.approx(128_000 / 120 / 8)  # 133.3


def test_older_vllm_benchmark_serving_file(tmp_path: Path):
    (b,) = load_serving_bench(write_json(tmp_path / "old.json", vllm_benchmark_serving()))
    assert b.engine == "vllm-legacy" and b.failed is None
    c = price_serving_bench(b, gpus=4, price=BenchPrice(3.0, "--price"))
    assert c.usd_per_m_output_tokens == pytest.approx(4 * 120 / 3600 * 3.0 / 0.128)  # $3.125


def test_sglang_jsonl_with_an_unlimited_rate_and_several_results(tmp_path: Path):
    text_path = write_jsonl(
        tmp_path / "sglang.jsonl", [sglang_bench_serving(), sglang_bench_serving(request_rate=8, max_concurrency=None)]
    )
    assert "Infinity" in text_path.read_text()  # as Python's json writes float('inf')
    first, second = load_serving_bench(text_path)
    assert first.engine == second.engine == "sglang"
    assert first.request_rate_per_s is None and second.request_rate_per_s == 8.0
    assert first.latencies["itl"].percentiles_ms == {"p95": 200.0, "p99": 260.0}
    assert first.latencies["e2el"].mean_ms == 61000.0 and "line 1" in first.source
    c = price_serving_bench(first, gpus=16, price=BenchPrice(2.0, "--price"))
    # 16 GPUs x 300 s = 1.333 GPU-hours x $2 = $2.667 for 400,000 output tokens: $6.667 per million
    assert c.usd_per_m_output_tokens == pytest.approx(16 * 300 / 3600 * 2.0 / 0.4)
    assert c.usd_per_m_input_tokens == pytest.approx(16 * 300 / 3600 * 2.0 / 2.0)


BAD = [
    ("missing duration", lambda r: r.pop("duration"), "duration", "missing"),
    ("zero duration", lambda r: r.update(duration=0.0), "duration", "greater than 0"),
    ("NaN duration", lambda r: r.update(duration=math.nan), "duration", "finite"),
    ("negative tokens", lambda r: r.update(total_output_tokens=-5), "total_output_tokens", "at least 0"),
    ("fractional count", lambda r: r.update(completed=499.5), "completed", "whole number"),
    ("string count", lambda r: r.update(completed="500"), "completed", "expected a number"),
    (
        "throughput that is not counts / duration",
        lambda r: r.update(output_throughput=5000.0),
        "output_throughput",
        "disagrees with the counts",
    ),  # fmt: skip
    ("negative request rate", lambda r: r.update(request_rate=-1), "request_rate", "positive number"),
    ("a NaN latency", lambda r: r.update(p99_ttft_ms=math.nan), "p99_ttft_ms", "finite"),
    ("model id not a string", lambda r: r.update(model_id=3), "model_id", "expected a string"),
]


@pytest.mark.parametrize(("name", "mutate", "field", "phrase"), BAD, ids=[b[0] for b in BAD])
def test_bad_benchmark_files_are_refused_naming_the_field(tmp_path: Path, name, mutate, field, phrase):
    record = vllm_bench_serve()
    mutate(record)
    path = write_json(tmp_path / "bad.json", record)
    with pytest.raises(BenchFileError) as info:
        load_serving_bench(path)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and phrase in message and "\n" not in message, message


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"", "holds no benchmark result"),
        (b"[1, 2]", "expected a JSON object per result"),
        (b'{"duration": 1}\n{not json\n', "field 'line 2': not valid JSON"),
        (b'{"hello": "world"}', "not a vLLM or SGLang serving benchmark result"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_files_that_are_not_results_are_refused(tmp_path: Path, content: bytes, phrase: str):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(BenchFileError, match=phrase):
        load_serving_bench(path)


def test_a_broken_second_line_is_named(tmp_path: Path):
    path = tmp_path / "two.jsonl"
    path.write_text(json.dumps(sglang_bench_serving()) + "\n" + json.dumps(sglang_bench_serving(duration=-1)) + "\n")
    with pytest.raises(BenchFileError, match=r"field 'line 2: duration'"):
        load_serving_bench(path)


# --- nccl-tests ---------------------------------------------------------------------------------

SIZES = [(1 << 20, 30.0), (1 << 26, 520.0), (1 << 30, 6800.0)]  # bytes, microseconds


def test_all_reduce_output_becomes_a_communication_run(tmp_path: Path):
    from meter.engines.nccl_tests import load_nccl_tests

    path = tmp_path / "ar.txt"
    path.write_text(nccl_output("all_reduce_perf", SIZES))
    (test,) = load_nccl_tests(path)
    assert test.collective == "all_reduce" and test.n_ranks == 8 and test.hosts == ["node01"]
    assert test.version == "2.19.6" and [r.size_bytes for r in test.rows] == [s for s, _ in SIZES]
    out = tmp_path / "comm.json"
    r = run_meter("import", "nccl-tests", str(path), "-o", str(out))
    assert r.returncode == 0, r.stderr
    from meter.results import load_run

    doc = load_run(out)
    assert doc.kind == "import" and doc.metadata.imported.tool == "nccl-tests"
    assert doc.metadata.hardware.name == "h100-sxm" and doc.metadata.distributed.n_nodes == 1
    big = max(doc.communication, key=lambda c: c.message_bytes)
    assert big.scope == "intra-node" and big.verified and big.case.payload == "fp32"
    assert big.time_s == pytest.approx(6800e-6) and big.time_max_s == pytest.approx(6800e-6 * 1.02)
    # a ring all-reduce sends 2(n-1)/n of the buffer: 1 GiB x 1.75 over 6.8 ms = 276 GB/s, which is busbw
    assert big.bytes_to_peers_per_rank == pytest.approx((1 << 30) * 1.75)
    assert big.peer_bytes_per_s == pytest.approx((1 << 30) * 1.75 / 6800e-6)
    assert big.busbw_gb_s == pytest.approx(big.peer_bytes_per_s / 1e9, rel=1e-3)


def test_alltoall_across_two_nodes_feeds_the_cluster_model(tmp_path: Path):
    from meter.cost.ep_comm import measured_links
    from meter.results import load_run

    intra, inter = tmp_path / "a2a-intra.txt", tmp_path / "a2a-inter.txt"
    one_node = nccl_output("alltoall_perf", SIZES, redop="none", factor=lambda n: (n - 1) / n)
    two_nodes = nccl_output("alltoall_perf", [(1 << 30, 30000.0)], hosts=["node01", "node02"], redop="none",
                            factor=lambda n: (n - 1) / n)  # fmt: skip
    intra.write_text(one_node)
    inter.write_text(two_nodes)
    a, b = tmp_path / "intra.json", tmp_path / "inter.json"
    assert run_meter("import", "nccl-tests", str(intra), "-o", str(a)).returncode == 0
    assert run_meter("import", "nccl-tests", str(inter), "-o", str(b)).returncode == 0
    links_a, links_b = measured_links(load_run(a), str(a)), measured_links(load_run(b), str(b))
    assert links_a.nvlink_bytes_per_s == pytest.approx((1 << 30) * 7 / 8 / 6800e-6)
    assert (
        links_b.network_bytes_per_s == pytest.approx((1 << 30) * 15 / 16 / 30000e-6) and "all-to-alls" in links_b.source
    )
    r = run_meter("cost", "cluster", "--comm-run", str(a), "--hardware", "h100-sxm", "--ep", "8", "--samples", "0",
                  "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)["rows"][0]
    assert row["links"]["nvlink_bytes_per_s"] == "measured run"


def test_an_all_reduce_alone_stands_in_for_the_links_and_says_so(tmp_path: Path):
    from meter.cost.ep_comm import measured_links
    from meter.results import load_run

    path, out = tmp_path / "ar.txt", tmp_path / "ar.json"
    path.write_text(nccl_output("all_reduce_perf", SIZES))
    assert run_meter("import", "nccl-tests", str(path), "-o", str(out)).returncode == 0
    links = measured_links(load_run(out), str(out))
    assert links.nvlink_bytes_per_s == pytest.approx((1 << 30) * 1.75 / 6800e-6) and "upper bound" in links.source


@pytest.mark.parametrize(
    ("text", "args", "phrase"),
    [
        (nccl_output(None, SIZES, redop="none", factor=lambda n: (n - 1) / n), [], "fit all_gather and all_to_all"),
        (nccl_output("broadcast_perf", SIZES), [], "holds only broadcast_perf, which meter does not model"),
        (nccl_output("all_reduce_perf", SIZES), ["--collective", "all_to_all"], "not all_to_all"),
        (nccl_output("all_reduce_perf", SIZES, factor=lambda n: 1.0), [], "busbw / algbw"),
        (nccl_output("all_reduce_perf", SIZES).replace("6800.00", "68x0.00"), [], "expected a number"),
        (nccl_output("all_reduce_perf", SIZES, gpus_per_host=1), [], "one rank"),
        ("# nothing here\n", [], "holds no nccl-tests results"),
    ],
)
def test_bad_nccl_tests_output_is_refused_in_one_line(tmp_path: Path, text, args, phrase):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    r = run_meter("import", "nccl-tests", str(path), *args, "-o", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and phrase in r.stderr and str(path) in r.stderr, r.stderr


def test_old_output_without_a_program_name_takes_the_collective_flag(tmp_path: Path):
    path = tmp_path / "old.txt"
    path.write_text(nccl_output(None, SIZES, wrong="N/A"))
    r = run_meter("import", "nccl-tests", str(path), "--collective", "all_reduce", "-o", str(tmp_path / "o.json"))
    assert r.returncode == 0, r.stderr
    from meter.results import load_run

    doc = load_run(tmp_path / "o.json")
    assert doc.communication and not any(c.verified for c in doc.communication)  # -c 0: N/A, not verified


def test_several_tests_in_one_file_are_each_read(tmp_path: Path):
    from meter.engines.nccl_tests import load_nccl_tests

    path = tmp_path / "both.txt"
    path.write_text(
        nccl_output("all_reduce_perf", SIZES)
        + nccl_output("alltoall_perf", SIZES, redop="none", factor=lambda n: (n - 1) / n)
    )
    tests = load_nccl_tests(path)
    assert [t.collective for t in tests] == ["all_reduce", "all_to_all"]
    r = run_meter("import", "nccl-tests", str(path), "-o", str(tmp_path / "both.json"))
    assert r.returncode == 0 and r.stdout.count("intra-node") == 6 and "h100-sxm" in r.stdout


# --- meter cost serve --from-bench ---------------------------------------------------------------


def test_cost_serve_from_bench_prices_each_result(tmp_path: Path):
    path = write_jsonl(tmp_path / "sg.jsonl", [sglang_bench_serving(), sglang_bench_serving(duration=600.0,
                       request_throughput=1000 / 600, input_throughput=2e6 / 600, output_throughput=4e5 / 600)])  # fmt: skip
    r = run_meter("cost", "serve", "--from-bench", str(path), "--gpus", "16", "--price", "2", "--json")
    assert r.returncode == 0, r.stderr
    first, second = json.loads(r.stdout)["results"]
    # 16 GPUs x 300 s = 1.333 GPU-hours x $2 = $2.667: per 400,000 output tokens $6.667 per million
    assert first["usd"] == pytest.approx(16 * 300 / 3600 * 2) and first["usd_per_m_output_tokens"] == pytest.approx(
        16 * 300 / 3600 * 2 / 0.4
    )
    assert second["usd_per_m_output_tokens"] == pytest.approx(2 * first["usd_per_m_output_tokens"])
    assert first["latencies_ms"]["ttft"]["percentiles_ms"] == {"p99": 2100.0} and first["efficiency"] is None
    text = run_meter("cost", "serve", "--from-bench", str(path), "--gpus", "16", "--price", "2")
    assert text.returncode == 0 and "$6.667" in text.stdout and "line 2" in text.stdout


def test_the_engines_efficiency_is_against_the_bound_on_the_benchmarks_gpus(tmp_path: Path):
    """DeepSeek's day-6 deployment runs decode on 144 GPUs; a benchmark on 8 H200s is read on 8 (EP 8 x DP 8)."""
    import dataclasses

    from meter.config.deployments import load_deployment
    from meter.config.hardware import load_hardware
    from meter.config.models import load_model
    from meter.cost.layout import deployment_bound

    path = write_json(tmp_path / "v.json", vllm_bench_serve())
    r = run_meter("cost", "serve", "--scenario", "deepseek-v3-day6", "--from-bench", str(path), "--gpus", "8",
                  "--hardware", "h200-sxm", "--price", "2", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)["results"][0]["efficiency"]
    # the benchmark's shape: 1,024-token prompts, decode reading 1,024 + 256/2, 64 concurrent over 8 GPUs
    assert (e["prefill_context"], e["decode_context"], e["decode_batch_per_gpu"]) == (1024, 1152, 8)
    assert "resized to the benchmark's 8 GPU(s), EP 8 x DP 8" in e["resized"] and e["measures"] == "engine"
    d = load_deployment("deepseek-v3-day6")
    on_8 = dict(tp=1, dp=8, ep=8, redundant_experts=32, routed_experts_per_gpu=None)  # 256 + 32 copies = 8 x 36
    d = dataclasses.replace(
        d,
        prefill=dataclasses.replace(d.prefill, context=1024, **on_8),
        decode=dataclasses.replace(d.decode, context=1152, batch_per_gpu=8, **on_8),
    )
    v3 = load_model("deepseek-v3")
    bound = deployment_bound(v3.args, v3.name, load_hardware("h200-sxm"), d)
    gpu_s = 512_000 / bound.prefill.tokens_per_s_per_gpu + 128_000 / bound.decode.tokens_per_s_per_gpu
    assert e["bound_gpu_s"] == pytest.approx(gpu_s) and e["measured_gpu_s"] == 8 * 120.0
    assert e["efficiency"] == pytest.approx(gpu_s / 960.0) and 0 < e["efficiency"] < 1
    text = run_meter("cost", "serve", "--scenario", "deepseek-v3-day6", "--from-bench", str(path), "--gpus", "8",
                     "--hardware", "h200-sxm", "--price", "2")  # fmt: skip
    assert "decode on 144) resized to the benchmark's 8 GPU(s)" in text.stdout
    tp = run_meter("cost", "serve", "--scenario", "deepseek-v3-day6", "--from-bench", str(path), "--gpus", "8",
                   "--hardware", "h200-sxm", "--price", "2", "--ep", "16")  # fmt: skip
    assert tp.returncode == 2 and "--gpus 8: the layout runs prefill on 32 GPU(s)" in tp.stderr


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        ([], "--from-bench needs --gpus N"),
        (["--gpus", "8"], "give --price USD (per GPU-hour) or --hardware NAME"),
        (["--gpus", "8", "--price", "2", "--from-run", "x.json"], "two measurements to price"),
        (["--gpus", "0", "--price", "2"], "--gpus"),
    ],
)
def test_cost_serve_from_bench_refuses_in_one_line(tmp_path: Path, args, phrase):
    path = write_json(tmp_path / "v.json", vllm_bench_serve())
    r = run_meter("cost", "serve", "--from-bench", str(path), *args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and phrase in r.stderr, r.stderr


def test_a_broken_bench_file_through_the_cli(tmp_path: Path):
    path = write_json(tmp_path / "v.json", vllm_bench_serve(duration=-3))
    r = run_meter("cost", "serve", "--from-bench", str(path), "--gpus", "8", "--price", "2")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"meter: error: {path}: field 'duration': must be a finite number, at least 0 (got -3)"


def test_comm_run_takes_nccl_tests_output_directly(tmp_path: Path):
    path = tmp_path / "a2a.txt"
    path.write_text(nccl_output("alltoall_perf", SIZES, redop="none", factor=lambda n: (n - 1) / n))
    r = run_meter("cost", "cluster", "--comm-run", str(path), "--hardware", "h100-sxm", "--ep", "8", "--samples", "0",
                  "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"][0]["links"]["nvlink_bytes_per_s"] == "measured run"
    broken = tmp_path / "broken.txt"
    broken.write_text(nccl_output("alltoall_perf", SIZES, redop="none"))  # all-reduce's bus factor: wrong
    r = run_meter("cost", "cluster", "--comm-run", str(broken), "--samples", "0")
    assert r.returncode == 2 and "busbw / algbw" in r.stderr and len(r.stderr.strip().splitlines()) == 1
