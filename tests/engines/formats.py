"""Result files written the way the engines and nccl-tests write them (field names and layout from their source)."""
# ruff: noqa: UP031  (nccl-tests and rccl-tests print with printf: the fixtures use its formats)

from __future__ import annotations

import json
from pathlib import Path


def vllm_bench_serve(**overrides) -> dict:
    """``vllm bench serve --save-result``: setup, traffic, then the benchmark's results, per vllm/benchmarks/serve.py.

    120 s, 500 requests of 1,024 input and 256 output tokens.
    """
    duration, completed, inputs, outputs = 120.0, 500, 512_000, 128_000
    result = {
        "date": "20261201-101500",
        "endpoint_type": "openai",
        "backend": "openai",
        "label": None,
        "model_id": "deepseek-ai/DeepSeek-V3",
        "tokenizer_id": "deepseek-ai/DeepSeek-V3",
        "num_prompts": 500,
        "tp": "8",  # --metadata tp=8
        "request_rate": "inf",
        "burstiness": 1.0,
        "max_concurrency": 64,
        "duration": duration,
        "completed": completed,
        "failed": 0,
        "total_input_tokens": inputs,
        "total_output_tokens": outputs,
        "request_throughput": completed / duration,
        "request_goodput": None,
        "output_throughput": outputs / duration,
        "total_token_throughput": (inputs + outputs) / duration,
        "max_output_tokens_per_s": 1480.0,
        "max_concurrent_requests": 64,
        "rtfx": 0.0,
        "latencies": [],
        "queue_times": [],
    }
    for name, base in (("ttft", 180.0), ("tpot", 42.0), ("itl", 41.0), ("e2el", 10900.0)):
        result |= {f"mean_{name}_ms": base, f"median_{name}_ms": base * 0.95, f"std_{name}_ms": base * 0.2}
        result |= {f"p99_{name}_ms": base * 2.1}
    result |= {"p50_ttft_ms": 171.0, "p90_ttft_ms": 300.0}
    return result | overrides


def vllm_benchmark_serving(**overrides) -> dict:
    """The older ``benchmarks/benchmark_serving.py --save-result``: no endpoint_type, label or failed."""
    new = vllm_bench_serve()
    old = {k: v for k, v in new.items() if k not in ("endpoint_type", "label", "failed", "max_output_tokens_per_s",
                                                     "max_concurrent_requests", "rtfx", "latencies", "queue_times")}  # fmt: skip
    old["request_goodput:"] = None  # that version's key, colon included
    return old | overrides


def sglang_bench_serving(**overrides) -> dict:
    """``python -m sglang.bench_serving``: one line appended to --output-file, per python/sglang/bench_serving.py.

    300 s, 1,000 requests, 2,000,000 input and 400,000 output tokens; request_rate inf (json writes Infinity).
    """
    duration, completed, inputs, outputs = 300.0, 1000, 2_000_000, 400_000
    result = {
        "backend": "sglang",
        "dataset_name": "random",
        "request_rate": float("inf"),
        "max_concurrency": 256,
        "sharegpt_output_len": None,
        "random_input_len": 2000,
        "random_output_len": 400,
        "random_range_ratio": 1.0,
        "duration": duration,
        "completed": completed,
        "total_input_tokens": inputs,
        "total_output_tokens": outputs,
        "total_output_tokens_retokenized": outputs - 12,
        "request_throughput": completed / duration,
        "input_throughput": inputs / duration,
        "output_throughput": outputs / duration,
        "mean_e2e_latency_ms": 61000.0,
        "median_e2e_latency_ms": 60500.0,
        "std_e2e_latency_ms": 4000.0,
        "p99_e2e_latency_ms": 71000.0,
        "mean_ttft_ms": 900.0,
        "median_ttft_ms": 850.0,
        "std_ttft_ms": 200.0,
        "p99_ttft_ms": 2100.0,
        "mean_tpot_ms": 150.0,
        "median_tpot_ms": 148.0,
        "std_tpot_ms": 10.0,
        "p99_tpot_ms": 180.0,
        "mean_itl_ms": 149.0,
        "median_itl_ms": 140.0,
        "std_itl_ms": 30.0,
        "p95_itl_ms": 200.0,
        "p99_itl_ms": 260.0,
        "concurrency": 203.3,
        "accept_length": None,
    }
    return result | overrides


def write_json(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(record))  # json.dump, no newline, as vLLM writes it
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))  # SGLang appends one line per result
    return path


# --- nccl-tests ---------------------------------------------------------------------------------


def _float(value: float, width: int) -> str:
    """nccl-tests' getFloatStr: 2 decimals if they fit the width, then 1, then 0, then an exponent."""
    for fmt in (f"%{width}.2f", f"%{width}.1f", f"%{width}.0f"):
        text = fmt % value
        if len(text) <= width:
            return text
    return (f"%{width}.1e" if width >= 7 else f"%{width}.0e") % value


def nccl_output(
    program: str | None,
    rows: list[tuple[int, float]],
    *,
    hosts: list[str] = ("node01",),
    gpus_per_host: int = 8,
    dtype: str = "float",
    redop: str = "sum",
    factor=lambda n: 2 * (n - 1) / n,
    wrong: str = "0",
    name: str = "NVIDIA H100 80GB HBM3",
) -> str:
    """The stdout of an nccl-tests *_perf program: header, device lines, one row per (size B, time us)."""
    n = len(hosts) * gpus_per_host
    lines = ["# nccl-tests version 2.19.6 nccl-headers=22807 nccl-library=22807"]
    if program:
        lines.append(f"# Collective test starting: {program}")
    lines += [
        "# nThread 1 nGpus 8 minBytes 1048576 maxBytes 1073741824 step: 4(factor) warmup iters: 5 iters: 20 "
        "agg iters: 1 validation: 1 graph: 0 unalign: 0",
        "#",
        "# Using devices",
    ]
    for h, host in enumerate(hosts):
        for d in range(gpus_per_host):
            rank = h * gpus_per_host + d
            lines.append(
                f"#  Rank {rank:2d} Group  0 Pid {4000 + rank:6d} on {host:>10s} device {d:2d} [0000:{0x18 + d:02x}:00] {name}"
            )
    lines += [
        "#",
        "# "
        + " " * 10
        + "  "
        + " " * 12
        + "  "
        + " " * 8
        + "  "
        + " " * 6
        + "  "
        + " " * 6
        + "           out-of-place                       in-place          ",
        "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s "  # noqa: UP031 (nccl-tests' printf)
        % (
            "size",
            "count",
            "type",
            "redop",
            "root",
            "time",
            "algbw",
            "busbw",
            "#wrong",
            "time",
            "algbw",
            "busbw",
            "#wrong",
        ),
        "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s "  # noqa: UP031
        % ("(B)", "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", ""),
    ]
    width = {"float": 4, "half": 2, "bfloat16": 2, "int8": 1, "double": 8}[dtype]
    for size, time_us in rows:
        body = "%12d  %12d  %8s  %6s  %6s" % (size, size // width, dtype, redop, "-1")  # noqa: UP031
        for t in (time_us, time_us * 1.02):
            a = size / t / 1e3
            body += "  %7s  %6s  %6s  %6s" % (_float(t, 7), _float(a, 6), _float(a * factor(n), 6), wrong)  # noqa: UP031
        lines.append(body)
    lines += [
        "# Out of bounds values : 0 OK",
        "# Avg bus bandwidth    : 123.4 ",
        "#",
    ]
    if program:
        lines.append(f"# Collective test concluded: {program}")
    return "\n".join(lines) + "\n"


# Header variants, each as that version's source prints it (NVIDIA/nccl-tests src/common.cu and src/*.cu at
# tags v2.11.0, v2.13.6, v2.16.7, v2.19.6; ROCm/rccl-tests src/common.cu).
STYLES = ("2.19", "2.16", "2.13", "2.11", "rccl")
_OLD_COLUMNS = {  # before 2.13 each test printed its own header: (has a redop column, prints its op in rows)
    "all_reduce": (True, True),
    "alltoall": (True, False),  # the column is there, the rows leave it empty
    "all_gather": (False, False),
    "reduce_scatter": (True, True),
    "sendrecv": (False, False),
}
_DELTA = {"float": "2e-07", "half": "1e-03", "bfloat16": "4e-03"}


def nccl_log(
    test: str,
    rows: list[tuple[int, float]],
    *,
    style: str = "2.19",
    hosts: list[str] = ("node01",),
    gpus_per_host: int = 8,
    dtype: str = "float",
    factor=None,
    wrong: str | None = None,
    wrong_in_place: str | None = None,
    name: str | None = None,
    program: str | None = None,
    in_place_only: bool = False,
) -> str:
    """One test's stdout (``test``: all_reduce, alltoall, all_gather, reduce_scatter, sendrecv) in a version's style.

    ``wrong``: the check column (default: "0", or before 2.13 the deviation ``2e-07``); ``wrong_in_place``: the
    in-place one (default: the same; the all-to-all prints N/A there from 2.13 on).
    """
    n = len(hosts) * gpus_per_host
    factor = factor or {
        "all_reduce": lambda k: 2 * (k - 1) / k,
        "sendrecv": lambda k: 1.0,
    }.get(test, lambda k: (k - 1) / k)
    old = style == "2.11"
    wrong = wrong if wrong is not None else (_DELTA[dtype] if old else "0")
    if wrong_in_place is None:
        wrong_in_place = "N/A" if test == "alltoall" and not old else wrong
    program = program or f"{test}_perf"
    redop = {"all_reduce": "sum", "reduce_scatter": "sum", "sendrecv": "sum"}.get(test, "none")
    name = name or ("AMD Instinct MI300X" if style == "rccl" else "NVIDIA H100 80GB HBM3")
    lines = []
    if style == "2.19":
        lines.append("# nccl-tests version 2.19.6 nccl-headers=22807 nccl-library=22807")
    if style in ("2.19", "2.16"):
        lines.append(f"# Collective test starting: {program}")
    if old:
        lines.append(
            "# nThread 1 nGpus 1 minBytes 8 maxBytes 134217728 step: 2(factor) warmup iters: 5 iters: 20 validation: 1 "
        )
    else:
        lines.append(
            "# nThread 1 nGpus 1 minBytes 8 maxBytes 134217728 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 "
            "validation: 1 graph: 0"
        )
    lines.append("#")
    if style == "rccl":
        lines.append("rccl-tests: Version develop:4f5e6a1")
    lines.append("# Using devices")
    for h, host in enumerate(hosts):
        for d in range(gpus_per_host):
            rank = h * gpus_per_host + d
            if style == "rccl":
                lines.append(
                    f"#   Rank {rank:2d} Pid {4000 + rank:6d} on {host:>10s} device {d:2d} [0000:{0x05 + d:02x}:00.0] {name}"
                )
            elif old:
                lines.append(
                    f"#   Rank {rank:2d} Pid {4000 + rank:6d} on {host:>10s} device {d:2d} [0x{0x18 + d:02x}] {name}"
                )
            elif style == "2.13":
                lines.append(
                    f"#  Rank {rank:2d} Group  0 Pid {4000 + rank:6d} on {host:>10s} device {d:2d} [0x{0x18 + d:02x}] {name}"
                )
            else:
                lines.append(
                    f"#  Rank {rank:2d} Group  0 Pid {4000 + rank:6d} on {host:>10s} device {d:2d} [0000:{0x18 + d:02x}:00] {name}"
                )
    lines.append("#")
    if old:
        has_redop, op_in_rows = _OLD_COLUMNS[test]
        lead = ["size", "count", "type"] + (["redop"] if has_redop else [])
        units = ["(B)", "(elements)", ""] + ([""] if has_redop else [])
        fmt = "# %10s  %12s  %8s" + ("  %6s" if has_redop else "")
        lines.append(
            (fmt + "            out-of-place                       in-place          ") % tuple([""] * len(lead))
        )
        lines.append(
            (fmt + "  %7s  %6s  %6s  %5s  %7s  %6s  %6s  %5s")
            % (*lead, "time", "algbw", "busbw", "error", "time", "algbw", "busbw", "error")
        )
        lines.append(
            (fmt + "  %7s  %6s  %6s  %5s  %7s  %6s  %6s  %5s")
            % (*units, "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "")
        )
    elif in_place_only:  # rccl-tests without out-of-place (-O 0)
        lines.append("# %10s  %12s  %8s  %6s  %6s           in-place          " % ("", "", "", "", ""))
        lines.append(
            "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s %6s"
            % ("size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong")
        )
        lines.append(
            "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %5s"
            % ("(B)", "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "")
        )
    else:
        lines.append(
            "# %10s  %12s  %8s  %6s  %6s           out-of-place                       in-place          "
            % ("", "", "", "", "")
        )
        lines.append(
            "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s %6s  %7s  %6s  %6s %6s"
            % (
                "size",
                "count",
                "type",
                "redop",
                "root",
                "time",
                "algbw",
                "busbw",
                "#wrong",
                "time",
                "algbw",
                "busbw",
                "#wrong",
            )
        )
        lines.append(
            "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %5s  %7s  %6s  %6s  %5s"
            % ("(B)", "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "")
        )
    width = {"float": 4, "half": 2, "bfloat16": 2, "int8": 1, "double": 8}[dtype]
    for size, time_us in rows:
        if old:
            body = "%12li  %12li  %8s" % (size, size // width, dtype)
            if has_redop:
                body += "  %6s" % (redop if op_in_rows else "")
        else:
            body = "%12d  %12d  %8s  %6s  %6s" % (size, size // width, dtype, redop, "-1")
        placements = (
            [(time_us * 1.02, wrong_in_place)]
            if in_place_only
            else [(time_us, wrong), (time_us * 1.02, wrong_in_place)]
        )
        for t, check in placements:
            a = size / t / 1e3
            body += "  %7s  %6.2f  %6.2f  %5s" % (
                "%7.2f" % t if t < 100 else "%7.1f" % t if t < 1e4 else "%7.0f" % t,
                a,
                a * factor(n),
                check,
            )
        lines.append(body)
    lines += ["# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 123.4 ", "#"]
    if style in ("2.19", "2.16"):
        lines.append(f"# Collective test concluded: {program}")
    return "\n".join(lines) + "\n"


def vllm_sweep(directory: Path, points: list[dict], *, runs: int = 2, summary: bool = True) -> Path:
    """``vllm bench sweep serve -o DIR``'s tree, per vllm/benchmarks/sweep/serve.py: one directory per bench
    combination (``BENCH-<name>``) holding ``run=N.json`` (the ``vllm bench serve`` result with ``run_number`` and
    the swept parameters added, ``json.dump(..., indent=4)``), ``summary.json`` (the list of them) and
    ``warmup.json``; ``summary.csv`` beside the combinations. Returns the experiment directory."""
    experiment = directory / "20261201_101500"
    for i, overrides in enumerate(points):
        comb = experiment / ("BENCH-" + "-".join(f"{k}={v}" for k, v in overrides.items()) or str(i))
        comb.mkdir(parents=True)
        (comb / "warmup.json").write_text(json.dumps(vllm_bench_serve(num_prompts=10, run_number=-1), indent=4))
        records = []
        for n in range(runs):
            record = vllm_bench_serve(**overrides) | {"run_number": n} | overrides
            (comb / f"run={n}.json").write_text(json.dumps(record, indent=4))
            records.append(record)
        if summary:
            (comb / "summary.json").write_text(json.dumps(records, indent=4))
    (experiment / "summary.csv").write_text(",run_number\n0,0\n")
    return experiment


# --- InferenceX ---------------------------------------------------------------------------------


def inferencex_result(*, multinode: bool = False, **overrides) -> dict:
    """``agg_<result>.json`` as InferenceX's utils/process_result.py writes it from a benchmark result.

    Its benchmark client writes vLLM's result format; process_result adds the run's environment (strings
    for the booleans, as the environment holds them), divides the throughputs by the GPUs (output by the
    decode GPUs of a multinode run), turns every ``*_ms`` latency into seconds under the name without ``_ms``
    and every TPOT into an interactivity ``*_intvty`` = 1000 / TPOT ms.
    DeepSeek-R1 fp8 1k/1k at concurrency 64: 120 s, 2,000 requests.
    """
    bench = vllm_bench_serve(max_concurrency=64, model_id="deepseek-ai/DeepSeek-R1-0528")
    bench |= {"median_tpot_ms": 25.0, "mean_tpot_ms": 26.0, "p99_tpot_ms": 40.0}
    data = {
        "hw": "h200",
        "conc": int(bench["max_concurrency"]),
        "image": "lmsysorg/sglang:v0.5.12-cu130",
        "model": bench["model_id"],
        "infmax_model_prefix": "dsr1",
        "framework": "dynamo-sglang" if multinode else "sglang",
        "precision": "fp8",
        "spec_decoding": "none",
        "disagg": multinode,
        "isl": 1024,
        "osl": 1024,
    }
    total, output = bench["total_token_throughput"], bench["output_throughput"]
    if multinode:
        prefill_gpus, decode_gpus = 8, 16
        data |= {
            "is_multinode": True,
            "prefill_tp": 8, "prefill_pp": 1, "prefill_dcp_size": 1, "prefill_pcp_size": 1, "prefill_ep": 8,
            "prefill_dp_attention": "true", "prefill_num_workers": 1,
            "decode_tp": 8, "decode_pp": 1, "decode_dcp_size": 1, "decode_pcp_size": 1, "decode_ep": 8,
            "decode_dp_attention": "true", "decode_num_workers": 2,
            "num_prefill_gpu": prefill_gpus, "num_decode_gpu": decode_gpus,
            "tput_per_gpu": total / (prefill_gpus + decode_gpus),
            "output_tput_per_gpu": output / decode_gpus,
            "input_tput_per_gpu": (total - output) / prefill_gpus,
        }  # fmt: skip
    else:
        gpus = 8
        data |= {
            "is_multinode": False, "tp": 8, "pp": 1, "dcp_size": 1, "pcp_size": 1, "ep": 1,
            "dp_attention": "false", "tput_per_gpu": total / gpus, "output_tput_per_gpu": output / gpus,
            "input_tput_per_gpu": (total - output) / gpus,
        }  # fmt: skip
    for key, value in bench.items():
        if key.endswith("ms"):
            data[key.replace("_ms", "")] = float(value) / 1000.0
        if "tpot" in key:
            data[key.replace("_ms", "").replace("tpot", "intvty")] = 1000.0 / float(value)
    return data | overrides
