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

ALL = RUN_FILES + CONFIGS + FLAGS + OUTPUTS


def test_there_are_at_least_sixty_named_bad_inputs():
    assert len(ALL) >= 60 and len({b.name for b in ALL}) == len(ALL)


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
