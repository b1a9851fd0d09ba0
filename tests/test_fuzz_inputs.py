"""Property-based: random mutations of valid run files and configs never end in a traceback.

A mutated file either loads cleanly (and then everything that reads a run can use it) or is refused
with one :class:`meter.errors.MeterError` whose message is one line naming the file. Mutations:
keys deleted, values swapped for other types, NaN, infinities, negative, zero and huge numbers,
integers too large for a float, bytes truncated or replaced by non-UTF-8 ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import require_module

require_module("hypothesis", "pip install -e '.[test]' (random mutations of run files and configs)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from meter.errors import MeterError  # noqa: E402
from meter.results import RunDocument, parse_run  # noqa: E402
from tests.runs import tiny_run_dict  # noqa: E402

BASE_RUN = tiny_run_dict()
WHERE = "fuzz/run.json"

WEIRD_VALUES = st.sampled_from(
    [
        None,
        True,
        False,
        "",
        "x",
        "NaN",
        -1,
        0,
        -1e-300,
        1e308,
        10**400,
        -(10**30),
        [],
        {},
        [[[]]],
        {"a": None},
        "2026-13-45",
        "2026-02-30T00:00:00",
        float("nan"),
        float("inf"),
        float("-inf"),
    ]
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in a JSON document (the timeline's long series contribute their first items)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            out += _paths(v, (*prefix, i))
    return out


RUN_PATHS = _paths(BASE_RUN)


def _mutate(doc: Any, path: tuple, action: str, value: Any) -> Any:
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "delete":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    elif action == "rename" and isinstance(parent, dict):
        parent[f"{key}_x"] = parent.pop(key)
    else:
        parent[key] = value
    return doc


def _check_refusal(exc: MeterError, where: str) -> None:
    message = str(exc)
    assert "\n" not in message and len(message) < 1000, message
    assert where in message, message


def _use(doc: RunDocument) -> None:
    """What the readers do with a loaded run: none may raise anything but a MeterError."""
    from meter.cost.from_run import measured_from_doc
    from meter.report import compare, data

    try:
        measured_from_doc(doc, WHERE)
    except MeterError as exc:
        _check_refusal(exc, WHERE)
    run = data.Run(WHERE, doc)
    data.roofline(run)
    data.timelines(run)
    data.case_rows(run)
    compare.compare(doc, doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(RUN_PATHS),
    action=st.sampled_from(["delete", "replace", "rename"]),
    value=WEIRD_VALUES,
)
def test_a_mutated_run_file_loads_or_is_refused_in_one_line(path, action, value):
    doc = _mutate(json.loads(json.dumps(BASE_RUN)), path, action, value)
    try:
        text = json.dumps(doc)  # NaN and Infinity become JSON's non-standard tokens: the loader must refuse them
    except (OverflowError, ValueError):
        return
    try:
        loaded = parse_run(text, WHERE)
    except MeterError as exc:
        _check_refusal(exc, WHERE)
        return
    _use(loaded)


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(json.dumps(BASE_RUN))), junk=st.binary(min_size=1, max_size=4))
def test_truncated_or_corrupted_bytes_are_refused_in_one_line(cut, junk):
    raw = json.dumps(BASE_RUN).encode()
    for data in (raw[:cut], raw[:cut] + junk + raw[cut:], raw[:cut] + b"\xff\xfe" + raw[cut + 2 :]):
        try:
            loaded = parse_run(data, WHERE)
        except MeterError as exc:
            _check_refusal(exc, WHERE)
            continue
        _use(loaded)


# --- configs --------------------------------------------------------------------------------------------


def _builtin(kind: str, name: str) -> Any:
    from meter.config.paths import builtin_config_dir

    return yaml.safe_load((builtin_config_dir() / kind / f"{name}.yaml").read_text())


CONFIGS = {
    ("models", "deepseek-v3-tiny"): "load_model",
    ("hardware", "h800-sxm"): "load_hardware",
    ("scenarios", "deepseek-v3-day6"): "load_scenario",
    ("suites", "default-cpu"): "load_suite",
}
BASES = {key: _builtin(*key) for key in CONFIGS}


def _load(kind: str, name: str, directory: Path) -> None:
    from meter.config import hardware, models, scenarios, suites
    from meter.config.paths import ConfigLocator

    module = {"models": models, "hardware": hardware, "scenarios": scenarios, "suites": suites}[kind]
    getattr(module, CONFIGS[(kind, name)])(name, ConfigLocator.from_env([str(directory)]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.sampled_from(sorted(CONFIGS)),
    data=st.data(),
    action=st.sampled_from(["delete", "replace", "rename"]),
    value=WEIRD_VALUES,
)
def test_a_mutated_config_loads_or_is_refused_in_one_line(tmp_path_factory, which, data, action, value):
    kind, name = which
    base = json.loads(json.dumps(BASES[which], default=str))
    path = data.draw(st.sampled_from(_paths(base)))
    doc = _mutate(base, path, action, value)
    directory = tmp_path_factory.mktemp("configs")
    (directory / kind).mkdir()
    target = directory / kind / f"{name}.yaml"
    try:
        target.write_text(yaml.safe_dump(doc, allow_unicode=True))
    except (yaml.YAMLError, OverflowError):
        return
    try:
        _load(kind, name, directory)
    except MeterError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 1000, message


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(sorted(CONFIGS)), cut=st.floats(0, 1), junk=st.binary(min_size=1, max_size=8))
def test_corrupted_config_bytes_are_refused_in_one_line(tmp_path_factory, which, cut, junk):
    kind, name = which
    raw = yaml.safe_dump(BASES[which], allow_unicode=True).encode()
    at = int(cut * len(raw))
    directory = tmp_path_factory.mktemp("configs")
    (directory / kind).mkdir()
    (directory / kind / f"{name}.yaml").write_bytes(raw[:at] + junk + raw[at:])
    try:
        _load(kind, name, directory)
    except MeterError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 1000 and f"{name}.yaml" in message, message


# --- run-file consistency rules (issue 21) ----------------------------------------------------------------


def _v3_run() -> dict:
    import tempfile

    from tests.runs import synthetic_v3_run

    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(synthetic_v3_run(Path(tmp) / "v3.json").read_text())


V3_RUN = _v3_run()
# Figures tied to others: scaling one alone by more than the tolerance must be refused, naming it (or
# the figure it is checked against).
TIED = [
    (("cases", 0, "metrics", "tokens_per_s"), "cases[0].metrics", "both"),
    (("cases", 0, "metrics", "achieved_tflops"), "cases[0].metrics", "both"),
    (("cases", 0, "metrics", "mfu"), "cases[0].metrics.mfu", "both"),
    (("cases", 1, "timing", "min_s"), "cases[1].timing", "up"),  # a lower minimum is still in order
    (("cases", 1, "timing", "max_s"), "cases[1].timing", "down"),
    (("cases", 1, "timing", "median_s"), "cases[1].timing", "both"),
    (("projections", 0, "time_per_token_s"), "projections[0]", "both"),
    (("projections", 0, "layers", "moe", "time_per_token_s"), "projections[0]", "both"),
    (("metadata", "hardware", "peak_tflops", "bf16"), "metadata.hardware.peak_tflops.bf16", "both"),
]


@settings(max_examples=200, deadline=None)
@given(which=st.sampled_from(TIED), up=st.floats(2.0, 1e6), down=st.floats(1e-6, 0.5), pick_up=st.booleans())
def test_a_figure_that_disagrees_with_the_ones_it_follows_from_is_refused(which, up, down, pick_up):
    path, field, direction = which
    factor = up if direction == "up" or (direction == "both" and pick_up) else down
    doc = json.loads(json.dumps(V3_RUN))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] *= factor
    try:
        parse_run(json.dumps(doc), WHERE)
    except MeterError as exc:
        _check_refusal(exc, WHERE)
        assert field in str(exc), (field, str(exc))
        return
    raise AssertionError(f"{'.'.join(map(str, path))} x {factor} was accepted")


@settings(max_examples=150, deadline=None)
@given(
    samples=st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=50),
    flops=st.floats(0, 1e12),
    tokens=st.integers(1, 1 << 20),
    power_w=st.floats(1.0, 2000.0),
    window_s=st.floats(0.1, 100.0),
)
def test_honest_measurements_always_load(samples, flops, tokens, power_w, window_s):
    """Whatever a timer measured, the harness's own statistics and rates of it are accepted."""
    import dataclasses

    from meter.bench.metrics import case_metrics
    from meter.bench.stats import summarize
    from meter.config.hardware import load_hardware
    from meter.jsonable import to_jsonable

    timing = summarize(samples)
    hw = load_hardware("h800-sxm")
    flops = min(flops, timing.median_s * hw.peak_flops("fp8"))  # what the GPU can do in the time
    metrics = case_metrics(
        median_s=timing.median_s,
        flops_per_call=flops,
        bytes_per_call=1e6,
        tokens_per_call=tokens,
        dtype="bf16",
        fp8=False,
        hardware=hw,
        ceilings=None,
    )
    doc = json.loads(json.dumps(V3_RUN))
    case = doc["cases"][2]
    case["timing"], case["metrics"] = to_jsonable(timing), to_jsonable(metrics)
    energy = power_w * window_s
    case["telemetry"] = to_jsonable(
        dataclasses.replace(_window(), duration_s=window_s, energy_j=energy, avg_power_w=energy / window_s)
    )
    doc["projections"] = [
        p for p in doc["projections"] if case["id"] not in {v["case_id"] for v in p["layers"].values()}
    ]
    parse_run(json.dumps(doc), WHERE)


def _window():
    from meter.results.records import TelemetryWindow

    return TelemetryWindow(name="case", duration_s=1.0)


# --- the exporter renders every run the loader accepts ------------------------------------------------------

TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), min_size=1, max_size=12)
STRING_PATHS = [
    ("cases", 0, "id"),
    ("cases", 0, "case", "model"),
    ("metadata", "device", "name"),
    ("metadata", "device", "uuid"),
    ("metadata", "host", "hostname"),
    ("projections", 0, "model"),
]


@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from(STRING_PATHS), text=TEXT)
def test_the_exporter_renders_every_run_the_loader_accepts(path, text):
    """Any string (control characters, quotes, backslashes, surrogates): refused by the loader, or rendered."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    from meter.exporter.collector import MeterCollector
    from meter.exporter.state import ExporterState

    doc = json.loads(json.dumps(V3_RUN))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent[path[-1]], str) or parent[path[-1]] is None:
        parent[path[-1]] = text
    try:
        loaded = parse_run(json.dumps(doc), WHERE)
    except MeterError as exc:
        _check_refusal(exc, WHERE)
        return
    state = ExporterState(hostname="fuzz", usd_per_kwh=None, pue=1.0)
    state.ingest(loaded)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MeterCollector(state))
    for body in (generate_latest(registry), generate_openmetrics(registry)):
        body.decode("utf-8")
