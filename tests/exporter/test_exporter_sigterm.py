"""``meter serve`` stops cleanly on SIGTERM (what Docker and Kubernetes send): exit 0, no traceback,
the runs directory whole (the pushed run kept, no temporary files), and a restart takes it in again."""

from __future__ import annotations

import re
import signal

from tests.exporter.conftest import start_exporter
from tests.fake_nvml import Scenario


def test_sigterm_stops_the_exporter_with_status_0_and_the_runs_directory_intact(fake_nvml_lib, tmp_path):
    from meter.exporter.app import push_run
    from meter.results import load_run
    from tests.exporter.test_exporter_units import typed_run

    runs = tmp_path / "runs"
    run, _ = typed_run(tmp_path, "a", hardware="h800-sxm", uuid="GPU-aaaa", run_id="run-1")
    e = start_exporter(fake_nvml_lib, tmp_path, Scenario(), "--runs-dir", str(runs))
    try:
        answer = push_run(e.url, run)
        assert answer["stored"].startswith("pushed-"), answer
    finally:
        e.process.send_signal(signal.SIGTERM)
        code = e.process.wait(30)
    log = e.process.stderr.read()
    assert code == 0, log
    assert "Traceback" not in log and "stopped" in log, log
    kept = list(runs.glob("*.json"))
    assert len(kept) == 1 and load_run(kept[0]).run_id == "run-1"
    assert not list(runs.glob(".*"))  # atomic writes leave no temporary files

    again = start_exporter(fake_nvml_lib, tmp_path, Scenario(), "--runs-dir", str(runs))
    try:
        assert re.search(r"^meter_results_runs_ingested_total 1\.0$", again.metrics(), re.M)
    finally:
        again.process.send_signal(signal.SIGTERM)
        assert again.process.wait(30) == 0
