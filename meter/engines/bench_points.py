"""vLLM and SGLang serving benchmarks at several concurrencies, as :class:`ServingPoint` rows of one curve.

The per-file fields come from :func:`meter.engines.serving.load_serving_bench` (the one reader of these
files); what the files do not say about the setup (the hardware, the layout, the precision, often the model)
comes from :class:`BenchSetup`, i.e. the command line. Some files do say part of it, and then they are read:

- ``vllm bench sweep serve`` (vllm/benchmarks/sweep/serve.py, read 2026-12) writes, under its output
  directory, one folder per combination of ``--serve-params`` and ``--bench-params``
  (``SERVE-<name>-BENCH-<name>``), holding ``run=<n>.json`` (a ``vllm bench serve --save-result`` file with
  the combination's parameters and ``run_number`` merged in), ``summary.json`` (those runs as a list),
  ``warmup.json`` (run -1) and, with ``--continue-on-error``, ``run=<n>.failure.json``. The runs are read;
  warm-ups and failure records are not points. Parameters read from a run: ``tensor_parallel_size``,
  ``max_concurrency``, ``random_input_len``, ``random_output_len`` (``_`` or ``-`` spelled); a plain
  ``vllm bench serve`` file may carry ``tp`` from ``--metadata tp=8``.
- SGLang's ``bench_serving`` lines carry ``random_input_len`` and ``random_output_len``; vLLM's results
  carry ``model_id`` and the date.

The input and output lengths of a point are, in order: ``--isl``/``--osl``, the file's ``random_*_len``,
else the mean over the completed requests (rounded).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meter.engines.points import MAX_WHOLE, ServingPoint, check_point, whole_number
from meter.engines.serving import (  # noqa: F401 (vllm_sweep_runs: the one reading of a sweep's tree, re-exported)
    BenchFileError,
    ServingBenchmark,
    _read,
    _records,
    load_serving_bench,
    vllm_sweep_runs,
)
from meter.errors import InputError, UsageError

_VLLM_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})-\d{6}$")  # vllm bench serve: %Y%m%d-%H%M%S


@dataclass(frozen=True)
class BenchSetup:
    """What the command line says about the setup the benchmarks ran on (None: read it from the file)."""

    hardware: str | None = None
    model: str | None = None
    precision: str | None = None
    framework: str | None = None  # default: the engine that wrote the file
    tp: int | None = None
    ep: int = 1
    dp_attention: bool = False
    gpus: int | None = None
    spec_method: str = "none"
    isl: int | None = None
    osl: int | None = None
    date: str | None = None
    source_id: str | None = None


def bench_points(path: Path, setup: BenchSetup, engine: str = "auto") -> list[ServingPoint]:
    """The points of one benchmark file (one result, or one per JSON line)."""
    benches = load_serving_bench(path, engine)
    raws = [raw for _, raw in _records(_read(path), path)]
    return [_point(b, raw, path, setup) for b, raw in zip(benches, raws, strict=True)]


def _param(raw: dict, name: str) -> Any:
    for key in (name, name.replace("_", "-")):
        if raw.get(key) is not None:
            return raw[key]
    return None


def _whole(raw: dict, name: str, fail: Callable[..., BenchFileError]) -> int | None:
    value = _param(raw, name)
    if value is None:
        return None
    number = whole_number(value)  # --metadata tp=8 writes a string
    if number is None:
        raise fail(name, f"expected a whole number, at least 1 (at most {MAX_WHOLE:,})", value)
    return number


def _mean(tokens: int, b: ServingBenchmark) -> int:
    return max(round(tokens / b.completed), 1)


def _agree(flag: str, given: Any, key: str, found: Any, b: ServingBenchmark) -> Any:
    """The flag's value, the file's, or one line if they contradict each other."""
    if given is not None and found is not None and given != found:
        raise UsageError(f"{b.source}: field '{key}' is {found!r} but {flag} says {given!r}; they contradict")
    return given if given is not None else found


def _point(b: ServingBenchmark, raw: dict, path: Path, setup: BenchSetup) -> ServingPoint:
    def fail(key: str, problem: str, value: Any = InputError._MISSING) -> BenchFileError:
        where = b.source.removeprefix(str(path)).strip(" ()")
        return BenchFileError(path, f"{where}: {key}" if where else key, problem, value)

    def required(flag: str, value: Any, what: str) -> Any:
        if value is None:
            raise UsageError(f"{b.source}: the file does not say {what}; give {flag}")
        return value

    if b.completed == 0 or b.total_output_tokens == 0:
        raise fail("completed", "no request completed: the benchmark measured nothing", b.completed)
    tpot = b.latencies.get("tpot")
    median_tpot_ms = tpot.median_ms if tpot is not None else None
    if median_tpot_ms is None or not median_tpot_ms > 0:
        raise fail("median_tpot_ms", "missing or 0: a point needs the time per output token", median_tpot_ms)
    conc = _agree("max_concurrency", b.max_concurrency, "max-concurrency", _whole(raw, "max_concurrency", fail), b)
    if conc is None:
        raise fail("max_concurrency", "missing: the benchmark ran without --max-concurrency, so no concurrency")
    # a sweep's serve parameter, else `vllm bench serve --metadata tp=8`
    found_tp = _agree(
        "tensor_parallel_size", _whole(raw, "tensor_parallel_size", fail), "tp", _whole(raw, "tp", fail), b
    )
    tp = _agree("--tp", setup.tp, "tensor_parallel_size", found_tp, b)
    tp = required("--tp", tp, "the tensor parallel size")
    gpus = setup.gpus if setup.gpus is not None else tp
    if gpus != tp:
        raise UsageError(
            f"--gpus {gpus} with --tp {tp}: a point is one engine instance of tp GPUs "
            "(attention data parallel over them: --dp-attention); import each instance's benchmark on its own"
        )
    if setup.ep > tp:
        raise UsageError(f"--ep {setup.ep} is above --tp {tp}: an engine instance has tp GPUs")
    model = required("--model", _agree("--model", setup.model, "model_id", b.model_id, b), "the model")
    # SGLang writes random_*_len whatever the dataset; they are the lengths only for the random dataset
    nominal = raw.get("dataset_name") in (None, "random")
    isl = setup.isl or (nominal and _whole(raw, "random_input_len", fail)) or _mean(b.total_input_tokens, b)
    osl = setup.osl or (nominal and _whole(raw, "random_output_len", fail)) or _mean(b.total_output_tokens, b)
    date = setup.date
    if date is None and b.date is not None and (match := _VLLM_DATE.match(b.date)):
        date = "-".join(match.groups())
    run = _param(raw, "run_number")
    notes = [f"{b.engine} benchmark {b.source}"]
    if run is not None:
        notes.append(f"run={run}")
    if b.failed:
        notes.append(f"failed={b.failed}")
    point = ServingPoint(
        source_id=setup.source_id or path.stem,
        model=model,
        precision=required("--precision", setup.precision, "the precision"),
        hardware=required("--hardware", setup.hardware, "the hardware"),
        framework=setup.framework or ("sglang" if b.engine == "sglang" else "vllm"),
        spec_method=setup.spec_method,
        disagg=False,
        tp=tp,
        ep=setup.ep,
        dp_attention=setup.dp_attention,
        prefill_tp=None,
        prefill_ep=None,
        prefill_dp_attention=None,
        num_prefill_gpu=None,
        num_decode_gpu=None,
        isl=isl,
        osl=osl,
        conc=conc,
        median_tpot_ms=median_tpot_ms,
        tok_s_user=1000 / median_tpot_ms,
        output_tok_s_gpu=b.output_tokens_per_s / gpus,
        total_tok_s_gpu=(b.output_tokens_per_s + b.input_tokens_per_s) / gpus,
        date=date,
        kind="measured",
        notes="; ".join(notes),
    )
    problem = check_point(point)
    if problem is not None:  # every figure came from a checked field; a contradiction here is the file's
        column, text, value = problem
        raise fail(column, text, value)
    if not math.isfinite(point.output_tok_s_gpu):
        raise fail("output_throughput", "not finite", point.output_tok_s_gpu)
    return point
