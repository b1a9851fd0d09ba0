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
