"""The job kind of the run-file contract: valid job files load, broken ones are refused with one line."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from meter.results import RunFileError, load_run, parse_run
from tests.conftest import run_meter
from tests.runs import job_run_dict, tiny_run_dict, write_run


def test_a_job_run_round_trips_through_the_loader(tmp_path: Path):
    raw = job_run_dict(gpus=2)
    doc = parse_run(json.dumps(raw), "job.json")
    assert doc.kind == "job" and doc.metadata.method is None
    assert [g.key for g in doc.job.gpus] == ["gpu0", "gpu1"]
    assert doc.job.energy_j == pytest.approx(2 * 400 * 100)
    assert doc.job.work.mfu == pytest.approx(1000 * doc.job.work.flops_per_token / 2 / 989.4e12, rel=1e-3)


def test_a_version_2_bench_file_is_migrated_to_version_3(tmp_path: Path):
    raw = tiny_run_dict()
    raw["schema_version"] = 2
    doc = parse_run(json.dumps(raw), "old.json")
    assert doc.schema_version == 3 and doc.kind == "bench" and doc.job is None


def _set(path: str, value):
    def mutate(raw: dict) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return mutate


_DELETE = object()

# (name, mutation, field named in the message, a phrase of the message)
BROKEN = [
    ("no job section", _set("job", _DELETE), "job", "missing from a run of kind 'job'"),
    ("job in a bench run", _set("kind", "bench"), "job", "only a run of kind 'job'"),
    ("unknown kind", _set("kind", "training"), "kind", "must be one of"),
    ("negative duration", _set("job.duration_s", -5.0), "job.duration_s", "at least 0"),
    ("string duration", _set("job.duration_s", "100 s"), "job.duration_s", "expected a number"),
    (
        "negative GPU energy",
        _set("job.gpus.0.telemetry.energy_j", -1.0),
        "job.gpus[0].telemetry.energy_j",
        "at least 0",
    ),
    ("unknown energy method", _set("job.gpus.0.telemetry.energy_method", "guess"), "energy_method", "must be one of"),
    ("negative MFU", _set("job.work.mfu", -0.2), "job.work.mfu", "at least 0"),
    ("unknown phase", _set("job.work.phase", "finetune"), "job.work.phase", "must be one of"),
    ("tokens/s not tokens/duration", _set("job.work.tokens_per_s", 5.0), "job.work.tokens_per_s", "differs"),
    ("MFU without a model", _set("job.work.model", None), "job.work.model", "missing"),
    ("model without a phase", _set("job.work.phase", None), "job.work.phase", "missing"),
    ("unknown tokens source", _set("job.work.tokens_source", "guess"), "job.work.tokens_source", "must be one of"),
    ("PUE below 1", _set("job.cost.pue", 0.5), "job.cost.pue", "at least 1"),
    ("negative price", _set("job.cost.usd_per_gpu_hour", -2.0), "job.cost.usd_per_gpu_hour", "at least 0"),
    ("cost for other GPUs", _set("job.cost.gpus", 3), "job.cost.gpus", "differs from the 1 GPU"),
    ("unknown job field", _set("job.energy_kwh", 1.0), "job.energy_kwh", "unknown field"),
    ("utilization above 1", _set("job.avg_utilization_ratio", 1.5), "job.avg_utilization_ratio", "at most 1"),
    ("bool exit status", _set("job.exit_status", True), "job.exit_status", "expected an integer"),
    ("benchmark cases in a job", lambda raw: raw.__setitem__("cases", tiny_run_dict()["cases"]), "cases", "no bench"),
    ("bench run without method", lambda raw: _bench_without_method(raw), "metadata.method", "missing"),
    ("job in an import", _set("kind", "import"), "job", "only a run of kind 'job'"),
    ("import without its source", lambda r: (r.update(kind="import"), r.pop("job")), "metadata.imported", "missing"),
]


def _bench_without_method(raw: dict) -> None:
    raw.update(tiny_run_dict())
    del raw["metadata"]["method"]


def _windows(raw: dict, **window) -> None:
    base = {"name": "step", "start_s": 1.0, "end_s": 2.0, "duration_s": 1.0}
    raw["job"]["windows"] = [base, {**base, **window}]


BROKEN += [
    (
        "window ends before it starts",
        lambda r: _windows(r, end_s=0.5, duration_s=0.0),
        "job.windows[1].end_s",
        "before",
    ),
    ("window duration off", lambda r: _windows(r, duration_s=3.0), "job.windows[1].duration_s", "differs"),
    ("window negative tokens", lambda r: _windows(r, tokens=-1), "job.windows[1].tokens", "at least 0"),
    ("duplicate GPU", lambda r: r["job"]["gpus"].append(r["job"]["gpus"][0]), "job.gpus[1].key", "listed twice"),
]


@pytest.mark.parametrize(("name", "mutate", "field", "phrase"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_job_files_are_refused_naming_the_field(name, mutate, field, phrase, tmp_path: Path):
    raw = copy.deepcopy(job_run_dict())
    mutate(raw)
    path = write_run(tmp_path / "broken.json", raw)
    with pytest.raises(RunFileError) as info:
        load_run(path)
    message = str(info.value)
    assert str(path) in message and field in message and phrase in message, message
    assert "\n" not in message


def test_nan_energy_is_not_json_a_run_file_reads(tmp_path: Path):
    text = json.dumps(job_run_dict()).replace('"energy_j": 40000.0', '"energy_j": NaN', 1)
    path = tmp_path / "nan.json"
    path.write_text(text)
    with pytest.raises(RunFileError, match="NaN is not a number JSON allows"):
        load_run(path)


def test_the_cli_refuses_a_broken_job_file_with_one_line(tmp_path: Path):
    raw = job_run_dict()
    raw["job"]["duration_s"] = -1
    path = write_run(tmp_path / "broken.json", raw)
    for args in (["calibrate", str(path)], ["report", str(path), "-o", str(tmp_path / "r.html")]):
        result = run_meter(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "job.duration_s" in lines[0], result.stderr
