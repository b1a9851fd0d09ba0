"""Property-based: random mutations of a valid job run file load or are refused in one line, and every
reader of a loaded job (the report's job section, the cost model's job rate) raises nothing but a MeterError."""

from __future__ import annotations

import json

from tests.conftest import require_module

require_module("hypothesis", "pip install -e '.[test]' (random mutations of job run files)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from meter.errors import MeterError  # noqa: E402
from meter.results import RunDocument, parse_run  # noqa: E402
from tests.runs import job_run_dict  # noqa: E402
from tests.test_fuzz_inputs import WEIRD_VALUES, _check_refusal, _mutate, _paths  # noqa: E402

BASE_JOB = job_run_dict(gpus=2)
BASE_JOB["job"]["windows"] = [
    {"name": "step", "start_s": 1.0, "end_s": 2.0, "duration_s": 1.0, "tokens": 100.0, "energy_j": 800.0}
]
WHERE = "fuzz/job.json"
JOB_PATHS = _paths(BASE_JOB)


def _use(doc: RunDocument) -> None:
    from meter.cost.from_job import job_rate
    from meter.cost.from_run import measured_from_doc
    from meter.report import data
    from meter.report import job as job_view

    for reader in (lambda: job_rate(doc, WHERE), lambda: measured_from_doc(doc, WHERE)):
        try:
            reader()
        except MeterError as exc:
            _check_refusal(exc, WHERE)
    run = data.Run(WHERE, doc)
    job_view.job_summary(run)
    data.timelines(run)
    if doc.job is not None:
        for g in doc.job.gpus:
            [fn(g) for _, fn in job_view.JOB_GPU_COLUMNS]
        for w in doc.job.windows:
            [fn(w) for _, fn in job_view.JOB_WINDOW_COLUMNS]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(JOB_PATHS),
    action=st.sampled_from(["delete", "replace", "rename"]),
    value=WEIRD_VALUES,
)
def test_a_mutated_job_file_loads_or_is_refused_in_one_line(path, action, value):
    doc = _mutate(json.loads(json.dumps(BASE_JOB)), path, action, value)
    try:
        text = json.dumps(doc)
    except (OverflowError, ValueError):
        return
    try:
        loaded = parse_run(text, WHERE)
    except MeterError as exc:
        _check_refusal(exc, WHERE)
        return
    _use(loaded)
