"""Serving benchmarks' result files, read into one typed :class:`ServingBenchmark` per result.

Three formats, with the field names their own source writes (read there, 2026-12):

- ``vllm``: ``vllm bench serve --save-result`` (vllm/benchmarks/serve.py): one JSON object, or one per
  line with ``--append-result``; ``date endpoint_type backend label model_id tokenizer_id num_prompts
  request_rate burstiness max_concurrency duration completed failed total_input_tokens
  total_output_tokens request_throughput request_goodput output_throughput total_token_throughput
  max_output_tokens_per_s max_concurrent_requests`` and ``{mean,median,std,pNN}_{ttft,tpot,itl,e2el}_ms``;
  ``request_rate`` is the string ``"inf"`` for an unlimited rate; ``--metadata KEY=VALUE`` adds keys.
- ``vllm-legacy``: the older ``benchmarks/benchmark_serving.py --save-result``: the same without
  ``endpoint_type``, ``label`` and ``failed`` (early versions: ``input_throughput``, ``best_of``).
- ``sglang``: ``python -m sglang.bench_serving`` (python/sglang/bench_serving.py), one JSON object per
  line appended to ``--output-file``: ``backend dataset_name request_rate max_concurrency duration
  completed total_input_tokens total_output_tokens total_output_tokens_retokenized request_throughput
  input_throughput output_throughput concurrency accept_length`` and ``{mean,median,std,pNN}_{ttft,
  tpot,itl}_ms``, ``*_e2e_latency_ms``; Python's ``json.dumps`` writes an unlimited rate as ``Infinity``,
  and a run that replays a trace's timestamps writes ``"request_rate": "trace"``.
- ``vllm bench sweep serve`` (vllm/benchmarks/sweep/serve.py): each combination's directory holds
  ``run=N.json`` (a ``vllm bench serve`` result plus ``run_number`` and the swept parameters) and
  ``summary.json``, a JSON list of those; ``warmup.json`` and ``*.failure.json`` beside them are not
  results. A ``summary.json`` is read as several points; a sweep directory as every ``run=N.json``
  under it (:func:`vllm_sweep_runs`, shared with ``meter import vllm``).

A result with no completed request is refused with the reason (it has nothing to price).

Unknown keys are kept out (a file's own metadata); the fields meter uses are checked: types, finite
and non-negative numbers, and the throughputs against the counts and the duration they summarise.
A bad file is refused with one line naming the file, the field and the value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from meter.config.schema import DuplicateJsonKey, no_duplicate_keys, read_input_text
from meter.errors import InputError

Engine = Literal["vllm", "vllm-legacy", "sglang"]
ENGINES: tuple[str, ...] = Engine.__args__  # type: ignore[attr-defined]
MIN_DURATION_S = 1e-3  # one request's round trip through a served model takes longer
MAX_BENCH_BYTES = 512 * 2**20  # a --save-detailed file holds every generated text
THROUGHPUT_TOLERANCE = 0.01  # a throughput the file states may differ this much from counts / duration

# Our metric name -> the names the engines use for it, in the {stat}_{name}_ms keys.
LATENCY_NAMES = {"ttft": ("ttft",), "tpot": ("tpot",), "itl": ("itl",), "e2el": ("e2el", "e2e_latency")}
_LATENCY_KEY = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el|e2e_latency)_ms$")


class BenchFileError(InputError):
    """A serving benchmark's result file that cannot be used."""


@dataclass(frozen=True)
class LatencyStats:
    """One latency metric over the benchmark's requests, in milliseconds as the engine reported it."""

    mean_ms: float | None = None
    median_ms: float | None = None
    std_ms: float | None = None
    percentiles_ms: Mapping[str, float] = field(default_factory=dict)  # "p99" -> 412.0


@dataclass(frozen=True)
class ServingBenchmark:
    """One serving benchmark result: what was sent, what came back, how fast, how long each request waited."""

    engine: Engine
    source: str  # the file, and the record in it
    duration_s: float
    completed: int
    total_input_tokens: int
    total_output_tokens: int
    failed: int | None = None
    model_id: str | None = None
    backend: str | None = None
    label: str | None = None
    date: str | None = None
    num_prompts: int | None = None
    request_rate_per_s: float | None = None  # None: every request sent at once ("inf"), or a trace's pacing
    paced_by: Literal["none", "rate", "trace"] = "none"  # what set when requests were sent
    max_concurrency: int | None = None
    latencies: Mapping[str, LatencyStats] = field(default_factory=dict)  # ttft, tpot, itl, e2el

    @property
    def output_tokens_per_s(self) -> float:
        return self.total_output_tokens / self.duration_s

    @property
    def input_tokens_per_s(self) -> float:
        return self.total_input_tokens / self.duration_s


def load_serving_bench(path: Path | str, engine: str = "auto") -> list[ServingBenchmark]:
    """Every result in a vLLM or SGLang benchmark file (one JSON object, a JSON list, or JSON lines), or in a
    ``vllm bench sweep`` directory."""
    path = Path(path)
    if engine != "auto" and engine not in ENGINES:
        raise BenchFileError(None, "--engine", f"must be auto or one of {', '.join(ENGINES)}", engine)
    if path.is_dir():
        return [b for file in vllm_sweep_runs(path) for b in load_serving_bench(file, engine)]
    records = _records(_read(path), path)
    return [_benchmark(raw, path, prefix, engine) for prefix, raw in records]


_RUN_FILE = re.compile(r"^run=(\d+)\.json$")


def vllm_sweep_runs(directory: Path) -> list[Path]:
    """The ``run=<n>.json`` files of a ``vllm bench sweep serve`` output directory, in a stable order.

    Each combination's ``summary.json`` holds the same runs as a list (read when given alone);
    ``warmup.json`` (run -1) and ``run=<n>.failure.json`` are not results.
    """
    runs = sorted(
        (p for p in directory.rglob("run=*.json") if _RUN_FILE.match(p.name)),
        key=lambda p: (str(p.parent), int(_RUN_FILE.match(p.name).group(1))),  # type: ignore[union-attr]
    )
    if not runs:
        raise BenchFileError(
            directory, None, "holds no run=<n>.json files; not a vllm bench sweep serve output directory?"
        )
    return runs


def _read(path: Path) -> str:
    return read_input_text(path, max_bytes=MAX_BENCH_BYTES, error=BenchFileError, what="a benchmark result file")


def _loads(text: str) -> Any:
    # Python's json writes inf and nan as Infinity and NaN (SGLang's unlimited request rate); keep them
    # as floats here, and let each field say whether it allows them.
    return json.loads(
        text,
        parse_constant=lambda name: {"Infinity": math.inf, "-Infinity": -math.inf}.get(name, math.nan),
        object_pairs_hook=no_duplicate_keys,  # two "duration" keys: json would keep the later silently
    )


def _records(text: str, path: Path) -> list[tuple[str, dict]]:
    """(field prefix, record): the whole file as one JSON object, or one object per non-empty line."""
    try:
        whole = _loads(text)
    except DuplicateJsonKey as exc:
        raise BenchFileError(path, exc.key, "duplicate key; which one the tool meant cannot be told") from None
    except json.JSONDecodeError:
        whole = None
    except RecursionError:
        raise BenchFileError(path, None, "nested too deeply to be a benchmark result") from None
    if isinstance(whole, dict):
        return [("", whole)]
    if isinstance(whole, list):  # vllm bench sweep's summary.json: one result per run
        if not whole:
            raise BenchFileError(path, None, "holds no benchmark result (an empty list)")
        out = []
        for i, record in enumerate(whole):
            if not isinstance(record, dict):
                raise BenchFileError(
                    path, f"[{i}]", f"expected a JSON object per result, found a {type(record).__name__}"
                )
            out.append((f"[{i}]: ", record))
        return out
    if whole is not None:
        raise BenchFileError(path, None, f"expected a JSON object per result, found a {type(whole).__name__}")
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = _loads(line)
        except DuplicateJsonKey as exc:
            raise BenchFileError(path, f"line {number}: {exc.key}", "duplicate key") from None
        except json.JSONDecodeError as exc:
            raise BenchFileError(path, f"line {number}", f"not valid JSON: {exc.msg} at column {exc.colno}") from None
        except RecursionError:
            raise BenchFileError(path, f"line {number}", "nested too deeply to be a benchmark result") from None
        if not isinstance(record, dict):
            raise BenchFileError(path, f"line {number}", f"expected a JSON object, found a {type(record).__name__}")
        out.append((f"line {number}: ", record))
    if not out:
        raise BenchFileError(path, None, "holds no benchmark result (empty)")
    return out


def detect_engine(raw: Mapping[str, Any]) -> Engine | None:
    """Which engine wrote a result, from the keys only that engine writes."""
    keys = set(raw)
    if "total_output_tokens_retokenized" in keys or any(k.endswith("_e2e_latency_ms") for k in keys):
        return "sglang"
    if keys & {"endpoint_type", "label", "failed", "max_output_tokens_per_s"}:
        return "vllm"
    if keys & {"duration", "completed", "total_output_tokens", "output_throughput"} or any(
        _LATENCY_KEY.match(k) for k in keys
    ):
        return "vllm-legacy"
    return None


class _Fields:
    """Typed access to a record's fields, each refusal naming the file, the field and the value."""

    def __init__(self, raw: Mapping[str, Any], path: Path, prefix: str):
        self.raw, self.path, self.prefix = raw, path, prefix

    def fail(self, key: str, problem: str, value: Any = InputError._MISSING) -> BenchFileError:
        return BenchFileError(self.path, f"{self.prefix}{key}", problem, value)

    def number(self, key: str, *, required: bool = False, integer: bool = False) -> float | None:
        if key not in self.raw or self.raw[key] is None:
            if required:
                raise self.fail(key, "missing; not a serving benchmark result?")
            return None
        value = self.raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, "expected a number", value)
        if (isinstance(value, float) and not math.isfinite(value)) or value < 0 or value > 1e300:  # no int overflow
            raise self.fail(key, "must be a finite number, at least 0", value)
        if integer and float(value) != int(value):
            raise self.fail(key, "expected a whole number", value)
        return int(value) if integer else float(value)

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, "expected a string", value)
        return value

    def rate(self, key: str) -> float | None:
        """A request rate: a positive number, or unlimited ("inf", Infinity) or a trace's pacing ("trace") as None."""
        value = self.raw.get(key)
        if value is None or value == "inf" or value == math.inf or value == "trace":
            return None
        # compared, not converted: a 400-digit integer is refused, it does not overflow a float
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1e300:
            raise self.fail(key, 'expected a positive number or "inf"', value)
        return float(value)

    def agrees(self, key: str, expected: float) -> None:
        """A throughput the file states must be its counts over its duration."""
        stated = self.number(key)
        if stated is None:
            return
        if abs(stated - expected) > THROUGHPUT_TOLERANCE * max(abs(expected), 1e-9):
            raise self.fail(key, f"disagrees with the counts over the duration ({expected:.6g})", stated)


def _benchmark(raw: dict, path: Path, prefix: str, engine: str) -> ServingBenchmark:
    found = detect_engine(raw)
    if engine == "auto":
        if found is None:
            raise BenchFileError(path, prefix.rstrip(": ") or None, "not a vLLM or SGLang serving benchmark result")
        engine = found
    f = _Fields(raw, path, prefix)
    rate = f.rate("request_rate")
    duration = f.number("duration", required=True)
    if not duration:
        raise f.fail("duration", "must be greater than 0", raw.get("duration"))
    if duration < MIN_DURATION_S:  # 5e-324 s gives infinite rates; no benchmark of a served model is that short
        raise f.fail("duration", f"shorter than any serving benchmark ({MIN_DURATION_S:g} s)", duration)
    completed = f.number("completed", required=True, integer=True)
    if completed == 0:
        raise f.fail("completed", f"no request completed{_why_none(raw)}: nothing was served to price", 0)
    inputs = f.number("total_input_tokens", required=True, integer=True)
    outputs = f.number("total_output_tokens", required=True, integer=True)
    f.agrees("request_throughput", completed / duration)
    f.agrees("output_throughput", outputs / duration)
    f.agrees("input_throughput", inputs / duration)
    f.agrees("total_token_throughput", (inputs + outputs) / duration)
    return ServingBenchmark(
        engine=engine,  # type: ignore[arg-type]
        source=f"{path}" + (f" ({prefix.rstrip(': ')})" if prefix else ""),
        duration_s=duration,
        completed=completed,
        total_input_tokens=inputs,
        total_output_tokens=outputs,
        failed=f.number("failed", integer=True),
        model_id=f.text("model_id"),
        backend=f.text("backend"),
        label=f.text("label"),
        date=f.text("date"),
        num_prompts=f.number("num_prompts", integer=True),
        request_rate_per_s=rate,
        paced_by="trace" if raw.get("request_rate") == "trace" else ("rate" if rate is not None else "none"),
        max_concurrency=f.number("max_concurrency", integer=True),
        latencies=_latencies(f),
    )


def _why_none(raw: Mapping[str, Any]) -> str:
    """What the file says of the requests: how many were sent and failed, and the first error it kept."""
    sent = raw.get("num_prompts")
    failed = raw.get("failed")
    parts = []
    if isinstance(sent, int) and not isinstance(sent, bool):
        parts.append(f"0 of {sent} requests")
    if isinstance(failed, int) and not isinstance(failed, bool) and failed:
        parts.append(f"{failed} failed")
    errors = raw.get("errors")
    first = next((e for e in errors if isinstance(e, str) and e.strip()), None) if isinstance(errors, list) else None
    if first:
        parts.append(f"first error: {first.strip().splitlines()[-1][:160]}")
    return f" ({'; '.join(parts)})" if parts else ""


def _latencies(f: _Fields) -> dict[str, LatencyStats]:
    found: dict[str, dict[str, Any]] = {}
    for key in f.raw:
        match = _LATENCY_KEY.match(key)
        if not match:
            continue
        stat, name = match.groups()
        ours = next(m for m, names in LATENCY_NAMES.items() if name in names)
        value = f.number(key)
        if value is None:
            continue
        entry = found.setdefault(ours, {"percentiles_ms": {}})
        if stat.startswith("p"):
            entry["percentiles_ms"][stat] = value
        else:
            entry[f"{stat}_ms"] = value
    ordered = {}
    for name in LATENCY_NAMES:
        if name in found:
            entry = found[name]
            entry["percentiles_ms"] = dict(sorted(entry["percentiles_ms"].items(), key=lambda kv: float(kv[0][1:])))
            ordered[name] = LatencyStats(**entry)
    return ordered
