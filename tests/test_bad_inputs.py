"""Named bad inputs, one per row: every one exits with status 2 and one line naming the file, field and value.

Each row builds its input in a fresh directory (a run file, a config file, a flag, an output path),
runs the ``meter`` command in-process (the same ``main`` the console script calls) and checks:
exit status 2, exactly one line on stderr, the fragments that name what is wrong, no traceback,
and nothing on stdout that pretends to be a result. docs/reliability.md lists the categories.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meter.cli.main import main
from tests.runs import synthetic_v3_run, tiny_run_dict, write_run


@dataclass(frozen=True)
class Bad:
    name: str
    argv: Callable[[Path], list[str]]  # builds the input under a temporary directory, returns the arguments
    fragments: tuple[str, ...]  # each must appear in the one error line


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own exit
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


# --- run files ----------------------------------------------------------------------------------------


def _set(doc: dict, path: str, value: Any) -> dict:
    """Set ``doc[path]`` where path is dotted with [i] indexes (``cases[0].metrics.mfu``); a sentinel deletes."""
    keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
    node = doc
    for k in keys[:-1]:
        node = node[k]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return doc


DELETE = object()


def run_with(path: str, value: Any) -> Callable[[Path], Path]:
    """A valid run file (the tiny CPU run) with one field changed."""

    def build(tmp: Path) -> Path:
        return write_run(tmp / "run.json", _set(tiny_run_dict(), path, value))

    return build


def raw_file(content: bytes, name: str = "run.json") -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(content)
        return path

    return build


def from_run(build: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    return lambda tmp: ["cost", "train", "--scenario", "deepseek-v3", "--from-run", str(build(tmp)), "--samples", "0"]


def report_of(build: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    return lambda tmp: ["report", str(build(tmp)), "-o", str(tmp / "r.html")]


def compare_of(build: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    return lambda tmp: ["compare", str(synthetic_v3_run(tmp / "a.json")), str(build(tmp))]


def calibrate_of(build: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    return lambda tmp: ["calibrate", str(build(tmp))]


def _timeline_mismatch(tmp: Path) -> Path:
    doc = tiny_run_dict()
    series = next(iter(doc["telemetry_timeline"]["devices"].values()))
    series["power_w"] = series["power_w"][:-1]
    return write_run(tmp / "run.json", doc)


def _no_successful_case(tmp: Path) -> Path:
    doc = tiny_run_dict()
    for case in doc["cases"]:
        case.update(status="error", reason="broken", timing=None, metrics=None, telemetry=None)
    doc["projections"] = []
    return write_run(tmp / "run.json", doc)


def _other_model(tmp: Path) -> Path:
    doc = tiny_run_dict()
    for case in doc["cases"]:
        case["case"]["model"] = "llama-3.1-405b"
    for p in doc["projections"]:
        p["model"] = "llama-3.1-405b"
    return write_run(tmp / "b.json", doc)


def _no_communication(tmp: Path) -> list[str]:
    return [
        "cost",
        "cluster",
        "--comm-run",
        str(write_run(tmp / "run.json", tiny_run_dict())),
        "--samples",
        "0",
    ]


RUN_FILES = [
    Bad("run file missing", from_run(lambda tmp: tmp / "absent.json"), ("absent.json", "no such file")),
    Bad("run file is a directory", from_run(lambda tmp: tmp), ("is a directory",)),
    Bad("run file empty", from_run(raw_file(b"")), ("run.json", "not valid JSON")),
    Bad("run file not JSON", from_run(raw_file(b"hello")), ("run.json", "not valid JSON")),
    Bad(
        "run file truncated",
        from_run(lambda tmp: raw_file(json.dumps(tiny_run_dict()).encode()[:5000])(tmp)),
        ("run.json", "not valid JSON"),
    ),
    Bad("run file Latin-1", from_run(raw_file('{"schema": "caf\xe9"}'.encode("latin-1"))), ("not UTF-8", "0xe9")),
    Bad("run file binary", from_run(raw_file(bytes(range(256)) * 4)), ("run.json", "not UTF-8")),
    Bad("run file is a JSON list", from_run(raw_file(b"[1, 2]")), ("field 'schema'", "not a gpu-cost-meter run file")),
    Bad("run file of another tool", from_run(raw_file(b'{"schema": "other"}')), ("'other'",)),
    Bad("schema version newer", from_run(run_with("schema_version", 99)), ("schema_version", "newer meter", "99")),
    Bad("schema version a string", from_run(run_with("schema_version", "2")), ("schema_version", "integer", "'2'")),
    Bad("schema version zero", from_run(run_with("schema_version", 0)), ("schema_version", "no such version", "0")),
    Bad("NaN token", from_run(raw_file(b'{"schema": "gpu-cost-meter/run", "x": NaN}')), ("NaN",)),
    Bad("Infinity token", from_run(raw_file(b'{"schema": "gpu-cost-meter/run", "x": -Infinity}')), ("Infinity",)),
    Bad("duplicate key", from_run(raw_file(b'{"schema": "a", "schema": "b"}')), ("field 'schema'", "duplicate key")),
    Bad("nested too deeply", from_run(raw_file(b"[" * 100_000)), ("run.json",)),
    Bad(
        "integer too large for a float",
        from_run(run_with("cases[0].metrics.time_per_call_s", 10**400)),
        ("cases[0].metrics.time_per_call_s", "too large"),
    ),
    Bad(
        "negative time per call",
        from_run(run_with("cases[0].metrics.time_per_call_s", -0.002)),
        ("cases[0].metrics.time_per_call_s", "greater than 0", "-0.002"),
    ),
    Bad(
        "zero median time",
        from_run(run_with("cases[1].timing.median_s", 0)),
        ("cases[1].timing.median_s", "greater than 0"),
    ),
    Bad(
        "NaN written as a string",
        from_run(run_with("cases[0].metrics.tokens_per_s", "NaN")),
        ("cases[0].metrics.tokens_per_s", "expected a number", "'NaN'"),
    ),
    Bad("status not an enum value", from_run(run_with("status", "great")), ("field 'status'", "'great'")),
    Bad("case status unknown", from_run(run_with("cases[2].status", "fine")), ("cases[2].status", "'fine'")),
    Bad("phase unknown", from_run(run_with("cases[0].case.phase", "warmup")), ("cases[0].case.phase", "'warmup'")),
    Bad("dtype unknown", from_run(run_with("cases[0].case.dtype", "fp6")), ("cases[0].case.dtype", "'fp6'")),
    Bad("metadata missing", from_run(run_with("metadata", DELETE)), ("field 'metadata'", "missing")),
    Bad("cases missing", from_run(run_with("cases", DELETE)), ("field 'cases'", "missing")),
    Bad("cases not a list", from_run(run_with("cases", {"a": 1})), ("field 'cases'", "expected a list")),
    Bad("case without an id", from_run(run_with("cases[0].id", DELETE)), ("cases[0].id", "missing")),
    Bad("ok case without metrics", from_run(run_with("cases[0].metrics", None)), ("cases[0].metrics", "status 'ok'")),
    Bad(
        "misspelt field",
        from_run(lambda tmp: write_run(tmp / "run.json", _rename(tiny_run_dict(), "cases[0].metrics", "metircs"))),
        ("cases[0].metircs", "unknown field", "did you mean 'metrics'"),
    ),
    Bad("negative MFU", from_run(run_with("cases[3].metrics.mfu", -0.5)), ("cases[3].metrics.mfu", "at least 0")),
    Bad(
        "utilization above 1",
        from_run(run_with("cases[0].telemetry.avg_utilization_ratio", 1.5)),
        ("cases[0].telemetry.avg_utilization_ratio", "at most 1", "1.5"),
    ),
    Bad(
        "negative energy",
        from_run(run_with("cases[0].telemetry.energy_j", -5.0)),
        ("cases[0].telemetry.energy_j", "at least 0"),
    ),
    Bad(
        "projection names no case",
        from_run(run_with("projections[0].layers.mla.case_id", "nope")),
        ("projections[0].layers.mla.case_id", "names no case", "'nope'"),
    ),
    Bad(
        "timeline series of different lengths", from_run(_timeline_mismatch), ("telemetry_timeline.devices", "power_w")
    ),
    Bad("impossible start date", from_run(run_with("started_at", "2026-13-45T00:00:00")), ("started_at", "ISO 8601")),
    Bad("batch zero", from_run(run_with("cases[0].case.batch", 0)), ("cases[0].case.batch", "at least 1")),
    Bad("ep as a string", from_run(run_with("cases[0].case.ep", "64")), ("cases[0].case.ep", "integer", "'64'")),
    Bad("true where a number goes", from_run(run_with("cases[0].timing.n", True)), ("cases[0].timing.n", "integer")),
    Bad("run with no successful case", from_run(_no_successful_case), ("run.json", "no successful case")),
    Bad("report of a broken run", report_of(run_with("cases[0].metrics.mfu", "high")), ("cases[0].metrics.mfu",)),
    Bad("compare runs of different models", compare_of(_other_model), ("different models",)),
    Bad("calibrate a broken run", calibrate_of(run_with("metadata.device.kind", "tpu")), ("metadata.device.kind",)),
    Bad("comm run without communication", _no_communication, ("field 'communication'", "no communication results")),
]


def _rename(doc: dict, path: str, new: str) -> dict:
    parent, _, key = path.rpartition(".")
    node = doc
    for k in parent.replace("[", ".").replace("]", "").split("."):
        node = node[int(k) if k.isdigit() else k]
    node[new] = node.pop(key)
    return doc


# --- config files -------------------------------------------------------------------------------------


def config_file(kind: str, name: str, content: bytes, command: list[str]) -> Callable[[Path], list[str]]:
    """A config directory holding one bad file; ``command`` is run with --config-dir pointing at it."""

    def build(tmp: Path) -> list[str]:
        folder = tmp / "configs" / kind
        folder.mkdir(parents=True)
        (folder / f"{name}.yaml").write_bytes(content)
        return [*command, "--config-dir", str(tmp / "configs")]

    return build


def model_yaml(append: str) -> bytes:
    """The tiny model's YAML, renamed ``bad``, with one more line at the end."""
    from meter.config.paths import builtin_config_dir

    text = (builtin_config_dir() / "models" / "deepseek-v3-tiny.yaml").read_text()
    return (text.replace("name: deepseek-v3-tiny", "name: bad") + "\n" + append + "\n").encode()


def builtin_model_yaml(model: str, old: str, new: str) -> bytes:
    """A built-in model's YAML, renamed ``bad``, with one text replacement (which must apply)."""
    from meter.config.paths import builtin_config_dir

    text = (builtin_config_dir() / "models" / f"{model}.yaml").read_text().replace(f"name: {model}", "name: bad")
    assert old in text, old
    return text.replace(old, new, 1).encode()


def hardware_yaml(date: str) -> bytes:
    from meter.config.paths import builtin_config_dir

    text = (builtin_config_dir() / "hardware" / "h100-sxm.yaml").read_text().replace("name: h100-sxm", "name: bad")
    first = text.index("date: ")
    end = text.index("\n", first)
    return (text[:first] + f"date: {date}" + text[end:]).encode()


BOMB = b"""a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
"""

FLOPS_BAD = ["flops", "bad"]
CONFIGS = [
    Bad(
        "model YAML in Latin-1",
        config_file("models", "bad", "name: caf\xe9\n".encode("latin-1"), FLOPS_BAD),
        ("bad.yaml", "not UTF-8"),
    ),
    Bad("model YAML binary", config_file("models", "bad", b"\x00\x01\x02\xff" * 64, FLOPS_BAD), ("bad.yaml",)),
    Bad(
        "model YAML duplicate key",
        config_file("models", "bad", model_yaml(append="dim: 512"), FLOPS_BAD),
        ("bad.yaml", "field 'dim'", "duplicate key"),
    ),
    Bad(
        "model YAML syntax error",
        config_file("models", "bad", b"name: [bad\n", FLOPS_BAD),
        ("bad.yaml", "malformed YAML"),
    ),
    Bad("model YAML empty", config_file("models", "bad", b"", FLOPS_BAD), ("bad.yaml", "an empty file")),
    Bad("alias bomb", config_file("models", "bad", BOMB, FLOPS_BAD), ("bad.yaml", "aliases expand")),
    Bad(
        "DSA top-k 0",
        config_file(
            "models", "bad", builtin_model_yaml("deepseek-v3.2", "index_topk: 2048", "index_topk: 0"), FLOPS_BAD
        ),
        ("bad.yaml", "sparse_attention.index_topk", "greater than 0"),
    ),
    Bad(
        "DSA on a model without MLA",
        config_file(
            "models",
            "bad",
            model_yaml("sparse_attention: {index_n_heads: 4, index_head_dim: 16, index_topk: 8}")
            .replace(b"kv_lora_rank: 64", b"kv_lora_rank: 0")
            .replace(b"q_lora_rank: 96", b"q_lora_rank: 0"),
            FLOPS_BAD,
        ),
        ("bad.yaml", "kv_lora_rank", "sparse_attention"),
    ),
    Bad(
        "V4 compress_ratios of the wrong length",
        config_file("models", "bad", builtin_model_yaml("deepseek-v4-flash", "[0, 0, 4,", "[4,"), FLOPS_BAD),
        ("bad.yaml", "compressed_attention.compress_ratios", "has 42 entries"),
    ),
    Bad(
        "V4 negative compress ratio",
        config_file("models", "bad", builtin_model_yaml("deepseek-v4-flash", "[0, 0, 4,", "[0, -4, 4,"), FLOPS_BAD),
        ("bad.yaml", "compressed_attention.compress_ratios", "at least 0"),
    ),
    Bad(
        "V4 o_groups not dividing the heads",
        config_file("models", "bad", builtin_model_yaml("deepseek-v4-flash", "o_groups: 8", "o_groups: 7"), FLOPS_BAD),
        ("bad.yaml", "compressed_attention.o_groups", "must divide n_heads"),
    ),
    Bad(
        "hardware date 2026-02-30",
        config_file("hardware", "bad", hardware_yaml("2026-02-30"), ["hardware", "--json"]),
        ("bad.yaml", "date", "'2026-02-30'"),
    ),
    Bad(
        "hardware date 2026-13-45",
        config_file("hardware", "bad", hardware_yaml("2026-13-45"), ["hardware", "--json"]),
        ("bad.yaml", "'2026-13-45'"),
    ),
    Bad(
        "hardware device_names and its old name nvml_names both",
        config_file(
            "hardware",
            "bad",
            hardware_yaml("2025-01-01").replace(b"device_names:", b"nvml_names: [NVIDIA H100X]\ndevice_names:"),
            ["hardware", "--json"],
        ),
        ("bad.yaml", "nvml_names", "old name of device_names"),
    ),
    Bad(
        "hardware peak too large for a float",
        config_file(
            "hardware",
            "bad",
            hardware_yaml("2025-01-01").replace(b"bf16: 989.4", b"bf16: " + str(10**400).encode()),
            ["hardware", "--json"],
        ),
        ("bad.yaml", "peak_tflops.bf16", "too large"),
    ),
    Bad(
        "suite batch zero",
        config_file(
            "suites",
            "bad",
            b"name: bad\ndescription: x\nmodel: deepseek-v3-tiny\ngrids:\n  - {batch: [0]}\n",
            ["bench", "--suite", "bad"],
        ),
        ("bad.yaml", "grids[0].batch", "at least 1"),
    ),
    Bad(
        "suite ep that does not divide the experts",
        config_file(
            "suites",
            "bad",
            b"name: bad\ndescription: x\nmodel: deepseek-v3-tiny\ngrids:\n  - {layers: [moe], ep: [3]}\n",
            ["bench", "--suite", "bad"],
        ),
        ("bad.yaml", "grids[0].ep", "does not divide", "3"),
    ),
    Bad(
        "suite unknown axis",
        config_file(
            "suites",
            "bad",
            b"name: bad\ndescription: x\nmodel: deepseek-v3-tiny\ngrids:\n  - {bacth: 4}\n",
            ["bench", "--suite", "bad"],
        ),
        ("bad.yaml", "grids[0].bacth", "did you mean 'batch'"),
    ),
]


def scenario_with(line: str) -> Callable[[Path], list[str]]:
    from meter.config.paths import builtin_config_dir

    def build(tmp: Path) -> list[str]:
        text = (builtin_config_dir() / "scenarios" / "deepseek-v3.yaml").read_text()
        text = text.replace("name: deepseek-v3\n", "name: bad\n").replace("builds_on: deepseek-v3\n", "")
        text = text.replace("assumptions:\n", "assumptions:\n" + line + "\n", 1)
        return config_file("scenarios", "bad", text.encode(), ["cost", "train", "--scenario", "bad"])(tmp)

    return build


CONFIGS += [
    Bad(
        "scenario colocation price negative",
        scenario_with("  colocation_usd_per_kw_month: {value: -150, source: test, date: 2026-01-01, confidence: low}"),
        ("bad.yaml", "assumptions.colocation_usd_per_kw_month.value", "[0, inf]", "-150"),
    ),
    Bad(
        "scenario unknown input",
        scenario_with("  pipline_bubble: {value: 0.1, source: test, date: 2026-01-01, confidence: low}"),
        ("bad.yaml", "assumptions.pipline_bubble", "did you mean 'pipeline_bubble'"),
    ),
]

# --- flags --------------------------------------------------------------------------------------------


_FRONTIER = ("cost", "serve", "deepseek-v3", "--hardware", "h200-sxm", "--isl", "1024", "--osl", "1024")


def _points_on(tmp: Path, hardware: str) -> Path:
    """A one-point serving points file (the columns of serving-points-h200.tsv) on ``hardware``."""
    from meter.engines.points import COLUMNS

    row = {c: "" for c in COLUMNS}
    row.update(source_id="x", model="m", precision="fp8", hardware=hardware, framework="sglang", spec_method="none",
               disagg="False", tp="8", ep="1", dp_attention="False", isl="1024", osl="1024", conc="4",
               tok_s_user="100", output_tok_s_gpu="50", total_tok_s_gpu="100", kind="measured")  # fmt: skip
    path = tmp / "points.tsv"
    path.write_text("\t".join(COLUMNS) + "\n" + "\t".join(row[c] for c in COLUMNS) + "\n")
    return path


def flags(*argv: str) -> Callable[[Path], list[str]]:
    return lambda tmp: list(argv)


FLAGS = [
    Bad("sample rate zero", flags("bench", "--sample-hz", "0"), ("--sample-hz", "[1, 100]", "'0'")),
    Bad("skew NaN", flags("bench", "--skew", "nan"), ("--skew", "'nan'")),
    Bad(
        "ceilings both skipped and re-measured",
        flags("run", "--no-ceilings", "--remeasure-ceilings"),
        ("--remeasure-ceilings", "not allowed with argument --no-ceilings"),
    ),
    Bad("bench --ceilings with --no-ceilings", flags("bench", "--ceilings", "--no-ceilings"), ("--no-ceilings",)),
    Bad("sequence 1e300", flags("bench", "--seq", "1e300"), ("--seq", "'1e300'")),
    Bad("batch zero flag", flags("bench", "--batch", "0"), ("--batch", "'0'")),
    Bad("min time negative", flags("bench", "--min-time", "-1"), ("--min-time", "'-1'")),
    Bad("ep does not divide", flags("bench", "--model", "deepseek-v3-tiny", "--ep", "3"), ("--ep", "does not divide")),
    Bad(
        "ep exceeds the experts",
        flags("bench", "--model", "deepseek-v3-tiny", "--ep", "32"),
        ("--ep", "32", "exceeds the model's 16 routed experts"),
    ),
    Bad(
        "ep without an MoE layer",
        flags("bench", "--model", "deepseek-v3-tiny", "--layers", "attn", "--ep", "8"),
        ("--ep", "only MoE layers"),
    ),
    Bad("ep for a dense model", flags("bench", "--model", "llama-3.1-405b", "--ep", "8"), ("--ep", "no experts")),
    Bad(
        "bench V4's compressed attention",
        flags("bench", "--model", "deepseek-v4-flash", "--layers", "attn", "--phase", "decode"),
        ("deepseek-v4-flash", "compressed attention", "no benchmark workload"),
    ),
    Bad("watch count negative", flags("watch", "--count", "-1"), ("--count", "'-1'")),
    Bad(
        "samples above the cap",
        flags("cost", "train", "--scenario", "deepseek-v3", "--samples", "1e9"),
        ("--samples", "2,000,000"),
    ),
    Bad("seed negative", flags("cost", "train", "--scenario", "deepseek-v3", "--seed", "-1"), ("--seed", "'-1'")),
    Bad(
        "price negative",
        flags("cost", "train", "--scenario", "deepseek-v3", "--price", "-3"),
        ("usd_per_gpu_hour", "-3"),
    ),
    Bad("PUE below 1", flags("cost", "train", "--scenario", "deepseek-v3", "--assume", "pue=0.5"), ("pue", "0.5")),
    Bad(
        "depreciation zero",
        flags("cost", "train", "--scenario", "v3-on-h100-2026", "--assume", "depreciation_years=0"),
        ("depreciation_years", "(0, inf]"),
    ),
    Bad("GPUs zero", flags("cost", "serve", "--assume", "gpus=0"), ("gpus", "[1, inf]")),
    Bad(
        "decode rate zero",
        flags("cost", "serve", "--assume", "decode_tokens_per_s_per_gpu=0"),
        ("decode_tokens_per_s_per_gpu",),
    ),
    Bad("tokens infinite", flags("cost", "train", "deepseek-v3", "--tokens", "1e400"), ("--tokens", "finite")),
    Bad(
        "serving scenario to cost train",
        flags("cost", "train", "--scenario", "deepseek-v3-day6"),
        ("serve scenario", "training one"),
    ),
    Bad(
        "training scenario to cost serve",
        flags("cost", "serve", "--scenario", "deepseek-v3"),
        ("train scenario", "serve one"),
    ),
    Bad(
        "report scenario unknown",
        lambda tmp: ["report", str(synthetic_v3_run(tmp / "a.json")), "--scenario", "nope"],
        ("'nope'", "no such scenario"),
    ),
    Bad(
        "report serve scenario of the wrong kind",
        lambda tmp: ["report", str(synthetic_v3_run(tmp / "a.json")), "--serve-scenario", "deepseek-v3"],
        ("--serve-scenario", "train scenario"),
    ),
    Bad("exporter port zero", flags("serve", "--port", "0"), ("--port", "'0'")),
    Bad("frontier without --osl", flags(*_FRONTIER[:5], "--isl", "1024"), ("give both --isl and --osl",)),
    Bad("frontier without a model", flags("cost", "serve", "--isl", "1024", "--osl", "1024"), ("needs a MODEL",)),
    Bad("frontier TPOT target zero", flags(*_FRONTIER, "--tpot-ms", "0"), ("--tpot-ms", "'0'")),
    Bad("frontier acceptance above 1", flags(*_FRONTIER, "--mtp-acceptance", "2"), ("--mtp-acceptance", "'2'")),
    Bad("frontier decode GPUs alone", flags(*_FRONTIER, "--decode-gpus", "8"), ("--decode-gpus", "--prefill-gpus")),
    Bad("frontier TP not dividing the heads", flags(*_FRONTIER, "--tp", "3"), ("--tp 3", "128 attention heads")),
    Bad("frontier layout too small", flags(*_FRONTIER, "--tp", "1"), ("TP1", "546 GB short")),
    Bad("batch per GPU zero", flags("cost", "serve", "--batch-per-gpu", "0"), ("--batch-per-gpu", "'0'")),
    Bad(
        "points file missing",
        lambda tmp: [*_FRONTIER[:5], "--against", str(tmp / "absent.tsv")],
        ("absent.tsv", "no such file"),
    ),
    Bad(
        "points hardware unknown",
        lambda tmp: [*_FRONTIER[:5], "--against", str(_points_on(tmp, "tpu9"))],
        ("hardware 'tpu9'",),
    ),
]

# --- the exporter's web config (exporter-toolkit's format) ------------------------------------------------

SHA256_OF_PASSWORD = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
BCRYPT_OF_PASSWORD = (
    "$2b$04$tKB.ccApSE/0Z9t66XAJM.V8GwDfLQB58Qo7.Eft2RJtM3YtPPf4G"  # bcrypt.hashpw(b"password", gensalt(4))
)


def web_config(content: str) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        (tmp / "web.yml").write_text(content)
        return ["serve", "--web.config.file", str(tmp / "web.yml")]

    return build


def _mismatched_key(tmp: Path) -> list[str]:
    from tests.exporter.certs import TestCa

    ca = TestCa(tmp / "pki")
    server, other = ca.issue("server"), ca.issue("other")
    return web_config(f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {other.key}\n")(tmp)


WEB_CONFIGS = [
    Bad("web config missing", flags("serve", "--web.config.file", "absent.yml"), ("absent.yml", "no such file")),
    Bad("web config bad YAML", web_config("basic_auth_users: {a: [\n"), ("web.yml", "malformed YAML")),
    Bad("web config a list", web_config("- tls_server_config\n"), ("web.yml", "expected a mapping", "list")),
    Bad(
        "web config sha256 where bcrypt goes",
        web_config(f"basic_auth_users:\n  prometheus: {SHA256_OF_PASSWORD}\n"),
        ("web.yml", "basic_auth_users.prometheus", "bcrypt", "sha256"),
    ),
    Bad(
        "web config plain password",
        web_config("basic_auth_users:\n  prometheus: s3cret\n"),
        ("basic_auth_users.prometheus", "bcrypt", "plain password"),
    ),
    Bad(
        "web config unknown key",
        web_config(f"basic_auth_users:\n  prometheus: '{BCRYPT_OF_PASSWORD}'\ntls_config: {{}}\n"),
        ("web.yml", "field 'tls_config'", "unknown"),
    ),
    Bad(
        "web config unknown TLS key",
        web_config("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  ca_file: ca.pem\n"),
        ("tls_server_config.ca_file", "unknown"),
    ),
    Bad(
        "web config unverified client certificates",
        web_config(
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: RequestClientCert\n"
        ),
        ("tls_server_config.client_auth_type", "unsupported", "RequestClientCert"),
    ),
    Bad(
        "web config certificate missing",
        web_config("tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n"),
        ("tls_server_config.cert_file", "nope.pem", "no such file"),
    ),
    Bad("web config key does not match certificate", _mismatched_key, ("tls_server_config.key_file", "does not match")),
    Bad(
        "web config TLS version unknown",
        web_config("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  min_version: TLS9\n"),
        ("tls_server_config.min_version", "'TLS9'"),
    ),
    Bad(
        "web config rate limit interval",
        web_config("rate_limit:\n  interval: fast\n  burst: 5\n"),
        ("rate_limit.interval", "duration", "'fast'"),
    ),
    Bad(
        "web config header not configurable",
        web_config("http_server_config:\n  headers:\n    Set-Cookie: a=b\n"),
        ("http_server_config.headers.Set-Cookie", "cannot be configured"),
    ),
    Bad(
        "web config with deprecated flags",
        lambda tmp: [*web_config("{}\n")(tmp), "--basic-auth-file", "users"],
        ("--web.config.file", "one or the other"),
    ),
]

# --- output paths -------------------------------------------------------------------------------------


def _bench(tmp: Path, *extra: str) -> list[str]:
    return ["bench", "--model", "deepseek-v3-tiny", "--layers", "ffn", "--phase", "decode", "--no-telemetry", *extra]


def _file(tmp: Path) -> Path:
    path = tmp / "a-file"
    path.write_text("x")
    return path


OUTPUTS = [
    Bad("run file path is a directory", lambda tmp: _bench(tmp, "--output", str(tmp)), ("is a directory",)),
    Bad(
        "run file under a file",
        lambda tmp: _bench(tmp, "--output", str(_file(tmp) / "run.json")),
        ("a-file/run.json", "cannot write"),
    ),
    Bad("runs directory is a file", lambda tmp: _bench(tmp, "--out", str(_file(tmp))), ("a-file", "cannot write")),
    Bad(
        "run file on a read-only filesystem",
        lambda tmp: _bench(tmp, "--output", "/proc/meter-test/run.json"),
        ("/proc/meter-test/run.json", "cannot write"),
    ),
    Bad(
        "report into a directory",
        lambda tmp: ["report", str(synthetic_v3_run(tmp / "a.json")), "-o", str(tmp)],
        ("is a directory",),
    ),
    Bad(
        "PNG directory is a file",
        lambda tmp: [
            "report",
            str(synthetic_v3_run(tmp / "a.json")),
            "-o",
            str(tmp / "r.html"),
            "--png-dir",
            str(_file(tmp)),
        ],
        ("--png-dir", "a-file", "not a directory"),
    ),
    Bad(
        "cost report unwritable",
        flags("cost", "train", "--scenario", "deepseek-v3", "--samples", "0", "--report", "/proc/meter-test/r.md"),
        ("/proc/meter-test/r.md", "cannot write"),
    ),
]

# --- serving points: meter import inferencex / vllm / sglang -------------------------------------------


def _ix(**change: Any) -> Callable[[Path], list[str]]:
    from tests.engines.formats import inferencex_result

    def build(tmp: Path) -> list[str]:
        path = tmp / "agg.json"
        path.write_text(json.dumps(inferencex_result(**change)))
        return ["import", "inferencex", str(path), "-o", str(tmp / "p.tsv")]

    return build


def _sg(*flags_: str, **change: Any) -> Callable[[Path], list[str]]:
    from tests.engines.formats import sglang_bench_serving

    def build(tmp: Path) -> list[str]:
        path = tmp / "b.jsonl"
        path.write_text(json.dumps(sglang_bench_serving(**change)) + "\n")
        return [
            "import",
            "sglang",
            str(path),
            "--hardware",
            "h200",
            "--precision",
            "fp8",
            *flags_,
            "-o",
            str(tmp / "p.tsv"),
        ]

    return build


POINTS = [
    Bad("InferenceX conc a word", _ix(conc="many"), ("agg.json", "field 'conc'", "'many'")),
    Bad("InferenceX pipeline parallel", _ix(pp=4), ("agg.json", "field 'pp'", "is not 1")),
    Bad("InferenceX intvty vs tpot", _ix(median_intvty=3.0), ("field 'median_intvty'", "1 / median_tpot", "3.0")),
    Bad(
        "InferenceX result a list of numbers",
        lambda tmp: _raw_ix(tmp, "[1, 2]"),
        ("agg.json", "field '[0]'", "JSON object"),
    ),
    Bad("SGLang no tp", _sg("--model", "m"), ("b.jsonl", "give --tp")),
    Bad(
        "SGLang zero completed",
        _sg("--model", "m", "--tp", "8", completed=0, request_throughput=0.0),
        ("field 'completed'", "no request completed", "0"),
    ),
    Bad(
        "SGLang no concurrency",
        _sg("--model", "m", "--tp", "8", max_concurrency=None),
        ("field 'max_concurrency'", "--max-concurrency"),
    ),
    Bad("import gpus not tp", _sg("--model", "m", "--tp", "8", "--gpus", "16"), ("--gpus 16 with --tp 8",)),
    Bad("import ep above tp", _sg("--model", "m", "--tp", "8", "--ep", "16"), ("--ep 16", "above --tp 8")),
    Bad("import date not a date", _sg("--model", "m", "--tp", "8", "--date", "yesterday"), ("--date", "'yesterday'")),
    Bad(
        "points file into a directory",
        lambda tmp: [*_sg("--model", "m", "--tp", "8")(tmp)[:-1], str(tmp)],
        ("is a directory",),
    ),
]


def _raw_ix(tmp: Path, text: str) -> list[str]:
    path = tmp / "agg.json"
    path.write_text(text)
    return ["import", "inferencex", str(path), "-o", str(tmp / "p.tsv")]


# --- other tools' result files: nccl-tests / rccl-tests output, serving benchmarks ----------------------


def _nccl(mutate: Callable[[str], str], test: str = "all_reduce", style: str = "2.19") -> Callable[[Path], Path]:
    """nccl-tests output in a version's shape (tests/engines/formats.py), changed by ``mutate``."""

    def build(tmp: Path) -> Path:
        from tests.engines.formats import nccl_log

        path = tmp / "nccl.txt"
        path.write_text(mutate(nccl_log(test, [(1 << 20, 30.0), (1 << 30, 6800.0)], style=style)))
        return path

    return build


def _first_row(text: str, old: str, new: str) -> str:
    """Replace ``old`` with ``new`` in the first data row only."""
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(" ") and line.split()[0].isdigit())
    lines[i] = lines[i].replace(old, new, 1)
    return "\n".join(lines) + "\n"


def _row_token(text: str, k: int, value: str) -> str:
    """Set token ``k`` of the first data row (0 size, 5 time, 8 the out-of-place check)."""
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith(" ") and line.split()[0].isdigit())
    tokens = lines[i].split()
    tokens[k] = value
    lines[i] = "  ".join(tokens)
    return "\n".join(lines) + "\n"


def _imports(build: Callable[[Path], Path], *extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["import", "nccl-tests", str(build(tmp)), "-o", str(tmp / "o.json"), *extra]


def _comm(build: Callable[[Path], Path], *extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["cost", "cluster", "--comm-run", str(build(tmp)), "--samples", "0", *extra]


def _vllm(**overrides) -> dict:
    from tests.engines.formats import vllm_bench_serve

    return vllm_bench_serve(**overrides)


def _bench_file(content: Callable[[], str], *extra: str) -> Callable[[Path], list[str]]:
    def argv(tmp: Path) -> list[str]:
        path = tmp / "bench.json"
        path.write_text(content())
        return ["cost", "serve", "--from-bench", str(path), "--gpus", "8", "--price", "2", *extra]

    return argv


def _dir(tmp: Path) -> Path:
    path = tmp / "sweep"
    (path / "BENCH-x").mkdir(parents=True)
    (path / "BENCH-x" / "warmup.json").write_text("{}")
    return path


REAL_FILES = [
    Bad(
        "nccl header without busbw",
        _imports(_nccl(lambda t: t.replace("busbw", "bw"))),
        ("nccl.txt", "header", "lacks the column(s) busbw"),
    ),
    Bad(
        "nccl header with fewer busbw than time columns",
        _imports(_nccl(lambda t: t.replace("busbw  #wrong", "#wrong", 1)[::-1].replace("wbsub", "", 1)[::-1])),
        ("nccl.txt", "busbw"),
    ),
    Bad(
        "nccl row cut short",
        _imports(_nccl(lambda t: _first_row(t, "     float", ""))),
        ("nccl.txt", "line"),
    ),
    Bad(
        "nccl 400-digit size",
        _imports(_nccl(lambda t: _first_row(t, "1048576", "9" * 400))),
        ("nccl.txt", "size", "64-bit"),
    ),
    Bad(
        "nccl size above 64 bits",
        _imports(_nccl(lambda t: _first_row(t, "1048576", str(2**64)))),
        ("nccl.txt", "size", "64-bit"),
    ),
    Bad(
        "nccl time 1e-320 us",
        _imports(_nccl(lambda t: _first_row(t, "30.00", "1e-320"))),
        ("nccl.txt", "time", "0.005 us"),
    ),
    Bad("nccl time NaN", _imports(_nccl(lambda t: _first_row(t, "30.00", "nan"))), ("nccl.txt", "time", "finite")),
    Bad(
        "nccl check column not a number",
        _imports(_nccl(lambda t: _row_token(t, 8, "maybe"))),
        ("nccl.txt", "#wrong", "expected a number"),
    ),
    Bad(
        "nccl log of only unmodelled tests",
        _imports(_nccl(lambda t: t, test="reduce_scatter")),
        ("nccl.txt", "holds only reduce_scatter_perf", "does not model"),
    ),
    Bad(
        "nccl untold all-to-all before 2.16.7",
        _imports(_nccl(lambda t: t, test="alltoall", style="2.13")),
        ("nccl.txt", "all_gather and all_to_all alike", "--collective"),
    ),
    Bad(
        "nccl --collective against the rows",
        _imports(_nccl(lambda t: t, style="2.13"), "--collective", "all_gather"),
        ("nccl.txt", "--collective all_gather does not fit", "all_reduce"),
    ),
    Bad(
        "nccl --collective against the program name",
        _imports(_nccl(lambda t: t), "--collective", "all_to_all"),
        ("nccl.txt", "all_reduce_perf, not all_to_all"),
    ),
    Bad(
        "comm-run untold all-to-all",
        _comm(_nccl(lambda t: t, test="alltoall", style="rccl")),
        ("nccl.txt", "rccl-tests do not", "--collective"),
    ),
    Bad(
        "cluster --collective without --comm-run",
        flags("cost", "cluster", "--collective", "all_to_all"),
        ("--comm-run",),
    ),
    Bad(
        "cluster --collective with a run file",
        lambda tmp: [
            "cost",
            "cluster",
            "--comm-run",
            str(synthetic_v3_run(tmp / "a.json")),
            "--collective",
            "all_reduce",
        ],
        ("a.json", "--collective", "run file"),
    ),
    Bad(
        "nccl busbw that is not the ranks' factor",
        _comm(_nccl(lambda t: "\n".join(x for x in t.splitlines() if not x.startswith(("#  Rank  6", "#  Rank  7"))))),
        ("nccl.txt", "busbw / algbw"),
    ),
    Bad(
        "serving run with no completed request",
        _bench_file(
            lambda: json.dumps(
                _vllm(
                    completed=0,
                    failed=500,
                    total_input_tokens=0,
                    total_output_tokens=0,
                    request_throughput=0.0,
                    output_throughput=0.0,
                    total_token_throughput=0.0,
                )
            )
        ),  # fmt: skip
        ("bench.json", "completed", "no request completed", "500 failed"),
    ),
    Bad("serving sweep summary empty", _bench_file(lambda: "[]"), ("bench.json", "empty list")),
    Bad(
        "serving sweep summary with a non-object",
        _bench_file(lambda: json.dumps([_vllm(), 3])),
        ("bench.json", "[1]", "expected a JSON object"),
    ),
    Bad(
        "serving sweep directory without results",
        lambda tmp: ["cost", "serve", "--from-bench", str(_dir(tmp)), "--gpus", "8", "--price", "2"],
        ("sweep", "holds no run=<n>.json files"),
    ),
    Bad(
        "serving request rate a word",
        _bench_file(lambda: json.dumps(_vllm(request_rate="fast"))),
        ("bench.json", "request_rate", "'fast'"),
    ),
    Bad(
        "serving --ep that does not fill --gpus",
        _bench_file(lambda: json.dumps(_vllm()), "--scenario", "deepseek-v3-day6", "--ep", "16"),
        ("--gpus 8", "prefill on 32 GPU(s)", "--tp/--ep"),
    ),
    Bad(
        "serving deployment resized to --gpus does not fit",
        _bench_file(lambda: json.dumps(_vllm()), "--scenario", "deepseek-v3-day6"),
        ("--gpus 8", "resized to the benchmark's 8 GPU(s)", "does not fit"),
    ),
]


# --- issue 21: hostile inputs -------------------------------------------------------------------------
# Non-regular paths (FIFOs, devices, sockets), strings no output can encode, files that contradict
# themselves or physics, integers too large for a number, flags that contradict each other.


def fifo(name: str = "run.json") -> Callable[[Path], Path]:
    """A FIFO with no writer: a reader that opens it plainly blocks forever."""

    def build(tmp: Path) -> Path:
        path = tmp / name
        os.mkfifo(path)
        return path

    return build


def unix_socket(name: str = "run.json") -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / name
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        _SOCKETS.append(sock)  # closed at exit; the path must exist while the command runs
        return path

    return build


_SOCKETS: list[socket.socket] = []


def v3_with(path: str, value: Any) -> Callable[[Path], Path]:
    """The synthetic H800 run (MFU, peaks, projections) with one field changed."""

    def build(tmp: Path) -> Path:
        doc = json.loads(synthetic_v3_run(tmp / "v3.json").read_text())
        return write_run(tmp / "run.json", _set(doc, path, value))

    return build


def v3_edit(edit: Callable[[dict], None]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        doc = json.loads(synthetic_v3_run(tmp / "v3.json").read_text())
        edit(doc)
        return write_run(tmp / "run.json", doc)

    return build


def tiny_edit(edit: Callable[[dict], None]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        doc = tiny_run_dict()
        edit(doc)
        return write_run(tmp / "run.json", doc)

    return build


def job_with(path: str, value: Any) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        from tests.runs import job_run_dict

        return write_run(tmp / "job.json", _set(job_run_dict(), path, value))

    return build


def report_job(build: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    return lambda tmp: ["report", str(build(tmp)), "-o", str(tmp / "r.html")]


def bench_file(content: Callable[[Path], Path], *extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["cost", "serve", "--from-bench", str(content(tmp)), "--gpus", "8", "--price", "2", *extra]


def vllm(**overrides: Any) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        from tests.engines.formats import vllm_bench_serve

        path = tmp / "bench.json"
        path.write_text(json.dumps(vllm_bench_serve(**overrides)))
        return path

    return build


def vllm_fast(duration_s: float) -> Callable[[Path], Path]:
    """A vLLM file whose counts and throughputs agree, over a duration no server reaches."""

    def build(tmp: Path) -> Path:
        from tests.engines.formats import vllm_bench_serve

        doc = vllm_bench_serve(duration=duration_s)
        for key, count in (("request_throughput", 500), ("output_throughput", 128_000)):
            doc[key] = count / duration_s
        doc["total_token_throughput"] = 640_000 / duration_s
        path = tmp / "bench.json"
        path.write_text(json.dumps(doc))
        return path

    return build


def nccl_file(tmp: Path) -> Path:
    from tests.engines.formats import nccl_output

    path = tmp / "ar.txt"
    path.write_text(nccl_output("all_reduce_perf", [(1 << 20, 30.0), (1 << 24, 200.0)]))
    return path


def _swap_timing(a: str, b: str) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        t = doc["cases"][0]["timing"]
        t[a], t[b] = t[b], t[a]

    return edit


def _duplicate_case(doc: dict) -> None:
    doc["cases"].append(json.loads(json.dumps(doc["cases"][0])))


def _projection_total(doc: dict) -> None:
    doc["projections"][0]["time_per_token_s"] *= 2


def _peak_not_the_hardwares(doc: dict) -> None:
    doc["metadata"]["hardware"]["peak_tflops"] = {
        k: v * 1e-9 for k, v in doc["metadata"]["hardware"]["peak_tflops"].items()
    }


def _energy_not_power(doc: dict) -> None:
    doc["cases"][0]["telemetry"]["energy_j"] *= 3


def _surrogate_key(doc: dict) -> None:
    doc["metadata"]["host"]["\udc80"] = "x"


BIG = 10**400
HOSTILE = [
    # non-regular paths: refused without blocking, never replaced
    Bad("run file is a FIFO", from_run(fifo()), ("run.json", "is a FIFO", "regular file")),
    Bad("run file is a socket", from_run(unix_socket()), ("run.json",)),
    Bad("run file is a character device", from_run(lambda tmp: Path("/dev/zero")), ("/dev/zero", "character device")),
    Bad("report of a FIFO", report_of(fifo()), ("is a FIFO",)),
    Bad("compare with a FIFO", compare_of(fifo("b.json")), ("b.json", "is a FIFO")),
    Bad("calibrate a FIFO", calibrate_of(fifo()), ("is a FIFO",)),
    Bad(
        "comm run is a FIFO",
        lambda tmp: ["cost", "cluster", "--comm-run", str(fifo("c.json")(tmp)), "--samples", "0"],
        ("c.json", "is a FIFO"),
    ),
    Bad("benchmark file is a FIFO", bench_file(fifo("bench.json")), ("bench.json", "is a FIFO")),
    Bad("nccl-tests output is a FIFO", lambda tmp: ["import", "nccl-tests", str(fifo("ar.txt")(tmp))], ("is a FIFO",)),
    Bad(
        "model config is a FIFO",
        lambda tmp: (
            lambda d: (d.mkdir(parents=True), fifo("bad.yaml")(d), [*FLOPS_BAD, "--config-dir", str(tmp / "c")])[2]
        )(tmp / "c" / "models"),
        ("'bad'", "no such model config"),  # the config directory lists regular files only
    ),
    Bad(
        "report output is a FIFO",
        lambda tmp: ["report", str(synthetic_v3_run(tmp / "a.json")), "-o", str(fifo("r.html")(tmp))],
        ("r.html", "is a FIFO", "regular files"),
    ),
    Bad("bench output is a FIFO", lambda tmp: _bench(tmp, "--output", str(fifo()(tmp))), ("is a FIFO",)),
    Bad(
        "import output is a FIFO",
        lambda tmp: ["import", "nccl-tests", str(nccl_file(tmp)), "-o", str(fifo("out.json")(tmp))],
        ("out.json", "is a FIFO"),
    ),
    Bad(
        "report to /dev/full",
        lambda tmp: ["report", str(synthetic_v3_run(tmp / "a.json")), "-o", "/dev/full"],
        ("/dev/full", "No space left"),
    ),
    Bad(
        "import to /dev/full",
        lambda tmp: ["import", "nccl-tests", str(nccl_file(tmp)), "-o", "/dev/full"],
        ("/dev/full", "No space left"),
    ),
    Bad(
        "cost report to /dev/full",
        flags("cost", "train", "--scenario", "deepseek-v3", "--samples", "0", "--report", "/dev/full"),
        ("/dev/full", "No space left"),
    ),
    Bad(
        "report to a character device that is not a sink",
        lambda tmp: ["report", str(synthetic_v3_run(tmp / "a.json")), "-o", "/dev/random"],
        ("/dev/random", "character device"),
    ),
    Bad("measure to /dev/full", flags("measure", "-o", "/dev/full", "--", "true"), ("/dev/full", "No space left")),
    # strings no report, file or scrape can encode
    Bad(
        "case id with a lone surrogate",
        from_run(run_with("cases[0].id", "case-\udc80")),
        ("cases[0].id", "lone surrogate"),
    ),
    Bad(
        "device name with a lone surrogate",
        from_run(run_with("metadata.device.name", "\ud800GPU")),
        ("metadata.device.name", "lone surrogate"),
    ),
    Bad("a key with a lone surrogate", from_run(tiny_edit(_surrogate_key)), ("metadata.host", "lone surrogate")),
    Bad(
        "job command with a lone surrogate",
        report_job(job_with("job.command", ["python", "\udcff.py"])),
        ("job.command[1]", "lone surrogate"),
    ),
    # run files that contradict themselves
    Bad("timing min above max", from_run(tiny_edit(_swap_timing("min_s", "max_s"))), ("cases[0].timing", "below")),
    Bad("timing p10 above p90", from_run(tiny_edit(_swap_timing("p10_s", "p90_s"))), ("cases[0].timing", "below")),
    Bad(
        "median above p90",
        from_run(
            tiny_edit(lambda d: d["cases"][0]["timing"].update(median_s=d["cases"][0]["timing"]["max_s"] * 0.999))
        ),
        ("cases[0].timing.p90_s", "below median_s"),
    ),
    Bad(
        "mean outside min and max",
        from_run(tiny_edit(lambda d: d["cases"][0]["timing"].update(mean_s=d["cases"][0]["timing"]["max_s"] * 2))),
        ("cases[0].timing.mean_s", "outside"),
    ),
    Bad(
        "part timing out of order",
        from_run(
            v3_edit(
                lambda d: d["cases"][0].update(
                    parts=[
                        {
                            "name": "experts",
                            "precision": "bf16",
                            "timing": {**d["cases"][0]["timing"], "min_s": 1.0},
                            "flops_per_call": 1.0,
                            "achieved_tflops": 1.0,
                        }
                    ]
                )
            )
        ),
        ("cases[0].parts[0].timing",),
    ),
    Bad(
        "tokens per second not 1 over time per token",
        from_run(run_with("cases[0].metrics.tokens_per_s", 5.0)),
        ("cases[0].metrics.tokens_per_s", "time_per_token_s"),
    ),
    Bad(
        "achieved TFLOP/s not FLOPs over time",
        from_run(run_with("cases[0].metrics.achieved_tflops", 50.0)),
        ("cases[0].metrics.achieved_tflops", "flops_per_call"),
    ),
    Bad("MFU of 5", from_run(v3_with("cases[0].metrics.mfu", 5.0)), ("cases[0].metrics.mfu", "5.0")),
    Bad(
        "MFU that is not achieved over peak",
        from_run(v3_with("cases[0].metrics.mfu", 0.9)),
        ("cases[0].metrics.mfu", "bf16 peak of h800-sxm"),
    ),
    Bad(
        "datasheet peak that is not the hardware's",
        calibrate_of(v3_edit(_peak_not_the_hardwares)),
        ("metadata.hardware.peak_tflops", "datasheet peak of h800-sxm"),
    ),
    Bad(
        "time per call of 5e-324",
        from_run(v3_with("cases[0].metrics.time_per_call_s", 5e-324)),
        ("cases[0].metrics.achieved_tflops", "flops_per_call / time_per_call_s"),
    ),
    Bad(
        "energy not power times time",
        from_run(tiny_edit(_energy_not_power)),
        ("cases[0].telemetry.energy_j", "avg_power_w"),
    ),
    Bad("two cases with one id", from_run(tiny_edit(_duplicate_case)), ("cases[18].id", "the id of cases[0]")),
    Bad(
        "projection layer time not its case's",
        from_run(run_with("projections[0].layers.mla.time_per_token_s", 1.0)),
        ("projections[0].layers.mla.time_per_token_s", "is not the time of case"),
    ),
    Bad(
        "projection total not its layers' sum",
        from_run(tiny_edit(_projection_total)),
        ("projections[0].time_per_token_s", "sum of its layers"),
    ),
    Bad(
        "projection tokens per second not 1 over time",
        from_run(run_with("projections[0].tokens_per_s", 1.0)),
        ("projections[0].tokens_per_s",),
    ),
    Bad(
        "projection MFU of 5",
        from_run(v3_with("projections[0].mfu", 5.0)),
        ("projections[0].mfu",),
    ),
    Bad("job MFU off its achieved rate", report_job(job_with("job.work.mfu", 0.39)), ("job.work.mfu", "0.39")),
    Bad(
        "job achieved rate off its tokens",
        report_job(job_with("job.work.achieved_tflops", 0.0003)),
        ("job.work",),
    ),
    Bad(
        "job GPU count too large for a number",
        report_job(job_with("job.cost.gpus", BIG)),
        ("job.cost.gpus", "too large"),
    ),
    # integers too large for a number, anywhere
    Bad(
        "batch too large for a number",
        calibrate_of(v3_with("cases[0].case.batch", BIG)),
        ("cases[0].case.batch", "too large"),
    ),
    Bad("timing count too large", from_run(run_with("cases[0].timing.n", BIG)), ("cases[0].timing.n", "too large")),
    Bad(
        "model dimension too large for a number",
        config_file(
            "models", "bad", model_yaml(append="").replace(b"dim: ", b"dim: " + b"9" * 400 + b" #", 1), FLOPS_BAD
        ),
        ("bad.yaml", "too large"),
    ),
    Bad("serving count too large for a number", bench_file(vllm(completed=BIG)), ("completed", "finite")),
    # serving files that contradict themselves or physics
    Bad(
        "vLLM file with two duration keys",
        bench_file(raw_file(b'{"duration": 120.0, "completed": 5, "duration": 1.0}', "bench.json")),
        ("bench.json", "field 'duration'", "duplicate key"),
    ),
    Bad("vLLM duration of 5e-324", bench_file(vllm_fast(5e-324)), ("duration", "5e-324")),
    Bad(
        "vLLM throughput above the bound",
        bench_file(vllm_fast(0.01), "--scenario", "deepseek-v3-day6", "--hardware", "h200-sxm"),
        ("bench.json", "of the bound", "is wrong"),
    ),
    # flags that contradict each other or physics
    Bad(
        "achieved TFLOP/s above the peak",
        flags("cost", "train", "deepseek-v3", "--tokens", "1T", "--hardware", "h800-sxm", "--achieved-tflops", "5000"),
        ("--achieved-tflops", "5,000", "h800-sxm"),
    ),
    Bad(
        "MFU flag above the physical limit",
        flags("cost", "train", "deepseek-v3", "--tokens", "1T", "--hardware", "h800-sxm", "--mfu", "5"),
        ("--mfu", "h800-sxm"),
    ),
    Bad("cluster ep 7 of 256 experts", flags("cost", "cluster", "--ep", "7", "--samples", "0"), ("--ep 7", "256")),
    Bad(
        "scenario with a model and tokens",
        flags("cost", "train", "deepseek-v3", "--tokens", "1T", "--scenario", "deepseek-v3"),
        ("--scenario deepseek-v3", "--tokens", "give one"),
    ),
    Bad("from-bench with efficiency", bench_file(vllm(), "--efficiency", "0.5"), ("--efficiency", "--from-bench")),
    Bad("tokens per day 0,0", flags("cost", "serve", "--tokens-per-day", "0,0"), ("--tokens-per-day", "'0,0'")),
    Bad("tokens per day negative", flags("cost", "serve", "--tokens-per-day", "-5,1"), ("--tokens-per-day",)),
    Bad(
        "plan with memory and hardware",
        flags("bench", "--plan", "--memory", "80GiB", "--hardware", "h100-sxm"),
        ("--plan", "not both"),
    ),
    Bad("push to foo", flags("measure", "--push", "foo", "--", "true"), ("--push", "'foo'")),
    Bad("push over ftp", flags("bench", "--push", "ftp://host:9401"), ("--push", "ftp://host:9401")),
    Bad("push port not a number", flags("measure", "--push", "http://host:abc", "--", "true"), ("--push", "abc")),
]


# --- Hugging Face config.json files (meter flops PATH/config.json, meter models import) ------------------

HF_DIR = Path(__file__).parent / "hf_configs"


def hf_config(base: str, change: Callable[[dict], None], command: str = "flops") -> Callable[[Path], list[str]]:
    """A real config.json from tests/hf_configs with one change, in a model directory of its own."""

    def build(tmp: Path) -> list[str]:
        data = json.loads((HF_DIR / f"{base}.json").read_text())
        change(data)
        model_dir = tmp / base
        model_dir.mkdir()
        (model_dir / "config.json").write_text(json.dumps(data))
        if command == "import":
            return ["models", "import", str(model_dir), "-o", str(tmp / "out.yaml")]
        return ["flops", str(model_dir / "config.json")]

    return build


def _hf_with_quant_file(tmp: Path, quant: dict) -> list[str]:
    """A model directory: a real config.json and NVIDIA ModelOpt's hf_quant_config.json beside it."""
    (tmp / "m").mkdir()
    (tmp / "m" / "config.json").write_bytes(
        (HF_DIR / "deepseek-v3.json").read_bytes().replace(b'"quantization_config"', b'"_q"')
    )
    (tmp / "m" / "hf_quant_config.json").write_text(json.dumps(quant))
    return ["flops", str(tmp / "m")]


def _hf_raw(content: bytes) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        (tmp / "config.json").write_bytes(content)
        return ["flops", str(tmp / "config.json")]

    return build


HF_CONFIGS = [
    Bad(
        "hf unsupported architecture",
        hf_config("qwen3-32b", lambda d: d.update(architectures=["Gemma3ForCausalLM"])),
        ("config.json", "field 'architectures'", "unsupported architecture", "Gemma3ForCausalLM"),
    ),
    Bad(
        "hf missing field",
        hf_config("deepseek-v3", lambda d: d.pop("kv_lora_rank")),
        ("config.json", "field 'kv_lora_rank'", "missing required field"),
    ),
    Bad(
        "hf missing nested field",
        hf_config("llama-4-scout", lambda d: d["text_config"].pop("num_local_experts")),
        ("config.json", "field 'text_config.num_local_experts'", "missing required field"),
    ),
    Bad(
        "hf contradicting top-k",
        hf_config("gpt-oss-120b", lambda d: d.update(experts_per_token=8)),
        ("config.json", "field 'experts_per_token'", "differs from num_experts_per_tok (4)", "8"),
    ),
    Bad(
        "hf layer_types length",
        hf_config("gpt-oss-120b", lambda d: d.update(layer_types=d["layer_types"][:-1])),
        ("config.json", "field 'layer_types'", "has 35 entries; num_hidden_layers is 36"),
    ),
    Bad(
        "hf kv heads do not divide heads",
        hf_config("mixtral-8x7b", lambda d: d.update(num_key_value_heads=5)),
        ("config.json", "field 'num_key_value_heads'", "must divide num_attention_heads (32)", "5"),
    ),
    Bad(
        "hf MLA kv heads differ",
        hf_config("kimi-k2", lambda d: d.update(num_key_value_heads=8)),
        ("config.json", "field 'num_key_value_heads'", "must equal num_attention_heads (64)", "8"),
    ),
    Bad(
        "hf top-k above experts",
        hf_config("qwen3-30b-a3b", lambda d: d.update(num_experts_per_tok=200)),
        ("config.json", "field 'num_experts_per_tok'", "between 1 and the number of experts (128)", "200"),
    ),
    Bad(
        "hf dense layers beyond depth",
        hf_config("glm-4.5", lambda d: d.update(first_k_dense_replace=93)),
        ("config.json", "field 'first_k_dense_replace'", "exceeds num_hidden_layers (92)", "93"),
    ),
    Bad(
        "hf unsupported quantization",
        hf_config("qwen3-32b", lambda d: d.update(quantization_config={"quant_method": "awq", "bits": 4})),
        ("config.json", "field 'quantization_config.quant_method'", "unsupported", "awq"),
    ),
    Bad(
        "hf bad fp8 block",
        hf_config("deepseek-v3", lambda d: d["quantization_config"].update(weight_block_size=[128])),
        ("config.json", "field 'quantization_config.weight_block_size'", "two positive integers"),
    ),
    Bad(
        "hf wrong type",
        hf_config("llama-3.1-8b", lambda d: d.update(hidden_size="4096")),
        ("config.json", "field 'hidden_size'", "expected an integer", "4096"),
    ),
    Bad(
        "hf not silu",
        hf_config("llama-3.1-8b", lambda d: d.update(hidden_act="gelu")),
        ("config.json", "field 'hidden_act'", "silu", "gelu"),
    ),
    Bad(
        "hf compress ratios length",
        hf_config("deepseek-v4-flash", lambda d: d.update(compress_ratios=d["compress_ratios"][:10])),
        ("config.json", "compress_ratios", "has 10 entries"),
    ),
    Bad(
        "hf experts not divisible into groups",
        hf_config("deepseek-v3", lambda d: d.update(n_group=7)),
        ("config.json", "field 'n_routed_experts'", "not divisible into n_expert_groups (7)", "256"),
    ),
    Bad(
        "hf dense width missing where layers are dense",
        hf_config("llama-4-maverick", lambda d: d["text_config"].pop("intermediate_size_mlp")),
        ("config.json", "field 'text_config.intermediate_size_mlp'", "missing required field"),
    ),
    Bad(
        "hf unsupported ModelOpt algorithm beside config.json",
        lambda tmp: _hf_with_quant_file(tmp, {"quantization": {"quant_algo": "W4A8_AWQ"}}),
        ("hf_quant_config.json", "field 'quantization.quant_algo'", "W4A8_AWQ"),
    ),
    Bad("hf malformed JSON", _hf_raw(b'{"architectures": ['), ("config.json", "malformed JSON at line 1")),
    Bad("hf not an object", _hf_raw(b"[1, 2]"), ("config.json", "expected a JSON object")),
    Bad(
        "hf import to a non-yaml name",
        lambda tmp: ["models", "import", str(HF_DIR / "qwen3-32b.json"), "-o", str(tmp / "out.json")],
        ("--output", "must name a .yaml file"),
    ),
    Bad(
        "hf import unsupported architecture",
        hf_config("qwen3-32b", lambda d: d.update(architectures=["FooForCausalLM"]), command="import"),
        ("config.json", "unsupported architecture", "FooForCausalLM"),
    ),
    Bad(
        "hf directory without config.json",
        lambda tmp: ["flops", str(tmp)],
        ("a directory without a config.json",),
    ),
]

ALL = RUN_FILES + CONFIGS + FLAGS + WEB_CONFIGS + OUTPUTS + POINTS + REAL_FILES + HOSTILE + HF_CONFIGS


def test_there_are_at_least_sixty_named_bad_inputs():
    assert len(ALL) >= 60 and len({b.name for b in ALL}) == len(ALL)
    assert len(HOSTILE) >= 60, len(HOSTILE)  # issue 21's hostile inputs, on top of the earlier table


@pytest.mark.parametrize("bad", ALL, ids=[b.name for b in ALL])
def test_bad_input_gets_one_line_and_status_2(bad: Bad, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("METER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(bad.argv(tmp_path))
    lines = err.strip().splitlines()
    assert code == 2, (code, err, out[-500:])
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in bad.fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Run file:" not in out  # nothing reported as a result


def test_output_that_cannot_be_written_is_one_line_and_status_2():
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "meter", "models", "--json"], stdout=full, stderr=subprocess.PIPE, text=True, env=env
        )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "No space left" in r.stderr, r.stderr
    closed = subprocess.run(  # a reader that goes away: quiet, status 0
        f"{sys.executable} -m meter hardware --json | head -c 1 >/dev/null",
        shell=True,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert closed.returncode == 0 and "Traceback" not in closed.stderr and "Exception" not in closed.stderr
