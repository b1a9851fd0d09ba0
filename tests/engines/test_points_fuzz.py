"""Property-based: mutated InferenceX results, engine runs and points files load or are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

from meter.engines.bench_points import BenchSetup, bench_points
from meter.engines.inferencex import load_inferencex
from meter.engines.points import format_points, read_points
from meter.errors import MeterError
from tests.conftest import require_module
from tests.engines.formats import inferencex_result, sglang_bench_serving

require_module("hypothesis", "pip install -e '.[test]' (random mutations of serving points files)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

WEIRD = st.sampled_from(
    [None, True, False, "", "x", "true", "8", "1e400", -1, 0, 0.5, 1e308, float("nan"), float("inf"),
     10**400, 10**12, [], {}, [1], {"a": 1}]
)  # fmt: skip
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _one_line_or_loads(load, path: Path) -> None:
    try:
        load(path)
    except MeterError as exc:
        message = str(exc)
        assert "\n" not in message and exc.exit_code == 2, message


@SETTINGS
@given(multinode=st.booleans(), key_index=st.integers(0, 200), value=WEIRD, delete=st.booleans())
def test_mutated_inferencex_result(tmp_path_factory, multinode, key_index, value, delete):
    record = inferencex_result(multinode=multinode)
    key = sorted(record)[key_index % len(record)]
    if delete:
        del record[key]
    else:
        record[key] = value
    path = tmp_path_factory.mktemp("ix") / "agg.json"
    path.write_text(json.dumps(record))  # NaN and Infinity as Python writes them
    _one_line_or_loads(load_inferencex, path)


@SETTINGS
@given(key_index=st.integers(0, 200), value=WEIRD, delete=st.booleans())
def test_mutated_sglang_run_to_points(tmp_path_factory, key_index, value, delete):
    record = sglang_bench_serving(max_concurrency=16)
    key = sorted(record)[key_index % len(record)]
    if delete:
        del record[key]
    else:
        record[key] = value
    path = tmp_path_factory.mktemp("sg") / "b.jsonl"
    path.write_text(json.dumps(record) + "\n")
    setup = BenchSetup(hardware="h200", precision="fp8", model="m", tp=8)
    _one_line_or_loads(lambda p: bench_points(p, setup, "sglang"), path)


@SETTINGS
@given(line=st.integers(0, 3), cell=st.integers(0, 24), text=st.sampled_from(
    ["", "x", "nan", "-1", "0", "1e400", "9" * 5000, "True", "\u00e9", "1.5", "2026-02-30"]
))  # fmt: skip
def test_mutated_points_file(tmp_path_factory, line, cell, text):
    good = tmp_path_factory.mktemp("pts") / "good.tsv"
    good.write_text(format_points(load_inferencex_points(tmp_path_factory)))
    lines = good.read_text().splitlines()
    cells = lines[line % len(lines)].split("\t")
    cells[cell % len(cells)] = text
    lines[line % len(lines)] = "\t".join(cells)
    bad = good.with_name("bad.tsv")
    bad.write_text("\n".join(lines) + "\n")
    _one_line_or_loads(read_points, bad)


def load_inferencex_points(tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    (d / "a.json").write_text(json.dumps([inferencex_result(), inferencex_result(multinode=True)]))
    return load_inferencex(d / "a.json")
