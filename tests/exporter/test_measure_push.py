"""meter measure --push: the job run file reaches a running exporter, which prices it at the job's MFU."""

from __future__ import annotations

import re
import time
from pathlib import Path

from meter.results import load_run
from tests.conftest import run_meter
from tests.exporter.conftest import free_port

JOB = ["--tokens", "2000", "--model", "deepseek-v3", "--hardware", "h800-sxm", "--gpus", "8"]


def test_a_measured_job_is_pushed_and_priced(exporter, tmp_path: Path):
    out = tmp_path / "job.json"
    no_nvml = {"LD_LIBRARY_PATH": str(tmp_path)}  # the job's own GPUs: stated, not seen
    r = run_meter("measure", "-o", str(out), *JOB, "--push", exporter.url, "--", "sleep", "0.3", env=no_nvml)
    assert r.returncode == 0, r.stderr
    assert f"pushed to {exporter.url}" in r.stderr
    assert load_run(out).job.work.mfu > 0
    wanted = r'meter_cost_training_usd\{[^}]*hardware="h800-sxm",[^}]*model="deepseek-v3",scenario="deepseek-v3"'
    deadline = time.monotonic() + 20  # /metrics is rendered after each sampling round
    while not re.search(wanted, exporter.metrics()):
        assert time.monotonic() < deadline, "the job's projection never reached /metrics"
        time.sleep(0.2)


def test_a_failed_push_keeps_the_run_file_and_the_exit_status(tmp_path: Path):
    out = tmp_path / "job.json"
    dead = f"http://127.0.0.1:{free_port()}"
    r = run_meter(
        "measure", "-o", str(out), "--push", dead, "--", "sh", "-c", "exit 4", env={"LD_LIBRARY_PATH": str(tmp_path)}
    )
    assert r.returncode == 4 and "could not push the run file" in r.stderr and str(out) in r.stderr
    assert load_run(out).job.exit_status == 4
