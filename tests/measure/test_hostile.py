"""Hostile inputs to ``meter measure`` and ``meter.Meter``: nothing measured is lost, no device is replaced."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from meter.results import load_run
from tests.conftest import run_meter

PY = sys.executable


def test_token_counts_that_overflow_are_absent_with_the_reason_and_the_job_is_recorded(tmp_path: Path):
    out = tmp_path / "j.json"
    child = "print('tokens=1e308'); print('tokens=1e308')"
    r = run_meter(
        "measure",
        "-o",
        str(out),
        "--tokens-from-log",
        r"tokens=(\S+)",
        "--tokens-aggregate",
        "sum",
        "--",
        PY,
        "-c",
        child,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    job = load_run(out).job
    assert load_run(out).status == "complete" and job.exit_status == 0 and job.duration_s > 0
    assert job.work is None and any("beyond what a float holds" in n for n in job.notes), job.notes


def test_a_count_of_1e400_is_not_a_count(tmp_path: Path):
    out = tmp_path / "j.json"
    r = run_meter(
        "measure", "-o", str(out), "--tokens-from-log", r"tokens=(\S+)", "--", PY, "-c", "print('tokens=1e400')"
    )
    assert r.returncode == 0, r.stderr
    assert load_run(out).job.work is None and "held no number" in r.stderr


def test_two_jobs_given_one_output_are_both_kept(tmp_path: Path):
    out = tmp_path / "j.json"
    first = run_meter("measure", "-o", str(out), "--", PY, "-c", "print(1)")
    second = run_meter("measure", "-o", str(out), "--", PY, "-c", "import sys; sys.exit(3)")
    assert first.returncode == 0 and second.returncode == 3
    assert "already exists" in second.stderr
    files = sorted(tmp_path.glob("j*.json"))
    assert len(files) == 2, files
    statuses = sorted(load_run(f).job.exit_status for f in files)
    assert statuses == [0, 3]
    assert load_run(out).job.exit_status == 0  # the first file is untouched


@pytest.mark.parametrize("device", ["/dev/null"])
def test_dev_null_is_written_through_never_replaced(device: str):
    before = os.stat(device)
    r = run_meter("measure", "-o", device, "--", PY, "-c", "pass")
    after = os.stat(device)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_dev_full_is_one_line_and_status_2():
    r = run_meter("measure", "-o", "/dev/full", "--", PY, "-c", "pass")
    assert r.returncode == 2 and "No space left" in r.stderr and "Traceback" not in r.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_fifo_as_output_is_refused_before_the_job_runs(tmp_path: Path):
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    marker = tmp_path / "ran"
    r = run_meter("measure", "-o", str(fifo), "--", PY, "-c", f"open({str(marker)!r}, 'w')", timeout=60)
    assert r.returncode == 2 and "is a FIFO" in r.stderr and not marker.exists()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_meter_refuses_one_gpu_listed_twice():
    import meter

    with pytest.raises(ValueError, match="more than once"):
        meter.Meter(gpus=[0, 0])


def test_save_keeps_windows_whose_token_rates_overflow(tmp_path: Path):
    import meter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = meter.Meter(gpus=[], sync=None, price_usd_per_gpu_hour=2.0)
    for _ in range(2):
        m.begin_window("step")
        m.end_window("step", tokens=1e308)
    m.close()
    path = m.save(tmp_path / "api.json")
    job = load_run(path).job
    assert len(job.windows) == 2 and all(w.tokens == 1e308 for w in job.windows)
    assert job.work is None and any("beyond what a float holds" in n for n in job.notes), job.notes


def test_a_regex_that_backtracks_forever_does_not_stall_the_job(tmp_path: Path):
    out = tmp_path / "j.json"
    child = "import sys; print('a' * 30, flush=True); print('after', flush=True)"
    r = subprocess.run(
        [PY, "-m", "meter", "measure", "-o", str(out), "--tokens-from-log", "(a+)+b", "--", PY, "-c", child],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert r.returncode == 0 and "after" in r.stdout, r.stderr  # the output went on being forwarded
    doc = load_run(out)
    assert doc.status == "complete" and doc.job.work is None
    assert any("still matching" in n for n in doc.job.notes), doc.job.notes


def test_save_keeps_the_windows_when_the_job_wide_figures_are_refused(tmp_path: Path, monkeypatch):
    import dataclasses

    import meter
    import meter.measure.api as api
    from meter.results.job import JobWork

    real = api.job_result

    def contradicting(*args, **kwargs):  # a job whose tokens_per_s is not its tokens over its duration
        result = real(*args, **kwargs)
        return dataclasses.replace(result, work=JobWork(tokens=10.0, tokens_source="api", tokens_per_s=1e9))

    monkeypatch.setattr(api, "job_result", contradicting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = meter.Meter(gpus=[], sync=None, price_usd_per_gpu_hour=2.0)
        m.begin_window("step")
        m.end_window("step", tokens=100)
        m.close()
        path = m.save(tmp_path / "api.json")
    job = load_run(path).job
    assert len(job.windows) == 1 and job.windows[0].tokens == 100 and job.work is None
    assert any("job.work.tokens_per_s" in n for n in job.notes), job.notes
