"""The exporter in a real fleet: no driver yet, lost GPUs, health counters, GPM, owners, processes.

Each test runs ``meter serve`` in a subprocess on the fake NVML driver (and a fake kubelet where it
says so) and reads its /metrics as Prometheus would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

from tests.cost.test_from_run_and_cli import synthetic_run
from tests.exporter.conftest import start_exporter, stop, wait_for
from tests.fake_nvml import FakeGpu, Scenario

GPU0, GPU1 = "GPU-fa4e0000-0000-0000-0000-000000000000", "GPU-fa4e0000-0000-0000-0000-000000000001"


def series(text: str, name: str, **labels: str) -> list[float]:
    """Values of the samples of ``name`` whose labels include ``labels``."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        body, value = line[len(name) + 1 :].rsplit("} ", 1)
        have = dict(re.findall(r'(\w+)="([^"]*)"', body))
        if all(have.get(k) == v for k, v in labels.items()):
            out.append(float(value))
    return out


def test_the_exporter_stays_up_without_nvml_and_recovers_when_the_driver_arrives(fake_nvml_lib, tmp_path):
    e = start_exporter(fake_nvml_lib, tmp_path, Scenario(init_error=9), "--nvml-retry", "1")
    try:
        text = e.metrics()
        assert series(text, "meter_nvml_up") == [0.0] and "meter_gpu_up{" not in text
        assert urllib_status(e.url + "/healthz") == 200  # probes pass: the pod does not crash-loop
        Scenario(gpus=[FakeGpu(), FakeGpu()]).write(e.scenario_path)  # the driver finished installing
        wait_for(e.url + "/metrics", ok=lambda b: b"meter_nvml_up{" in b and b'"} 1.0' in b and b"meter_gpu_up{" in b)
        text = e.metrics()
        assert series(text, "meter_nvml_up") == [1.0] and series(text, "meter_gpu_up") == [1.0, 1.0]
    finally:
        stop(e.process)
    log = e.process.stderr.read()
    assert log.count("kernel driver is not loaded") == 1 and "Traceback" not in log  # said once, not per retry
    assert "GPU telemetry up: 2 GPU(s)" in log


def urllib_status(url: str) -> int:
    import urllib.request

    return urllib.request.urlopen(url, timeout=5).status


def test_health_gpm_processes_and_owners_are_exported(fake_nvml_lib, tmp_path):
    job = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], env={**os.environ, "SLURM_JOB_ID": "4711"}
    )
    from tests.conftest import require_module

    require_module("grpc", "pip install -e '.[test]' (the kubelet's pod-resources gRPC API)")
    from tests.fake_kubelet import FakeKubelet

    kubelet = FakeKubelet([("team-a", "train-0", "trainer", "nvidia.com/gpu", [GPU0])])
    scenario = Scenario(
        gpus=[
            FakeGpu(
                sm_activity=[70],
                tensor_activity=[45],
                dram_bw=[30],
                xid=[(0, 79)],
                ecc=(5, 1, 50, 2),
                remapped=(3, 1, 1, 0),
                processes=[(job.pid, 3 * 2**30)],
            ),
            FakeGpu(name="NVIDIA A100-SXM4-80GB", arch=7, unsupported=["energy", "ecc"]),
        ]
    )
    e = start_exporter(fake_nvml_lib, tmp_path, scenario, "--pod-resources-socket", str(kubelet.socket))
    try:
        wait_for(e.url + "/metrics", ok=lambda b: b"meter_gpu_tensor_activity_ratio{" in b and b"job_id" in b)
        text = e.metrics()
    finally:
        stop(e.process)
        kubelet.stop()
        job.kill()
        job.wait()
    owner = {"namespace": "team-a", "pod": "train-0", "container": "trainer"}
    # every per-GPU series of gpu 0 carries its pod; gpu 1 belongs to nobody
    assert series(text, "meter_gpu_power_watts", gpu="0", **owner) == [300.0]
    assert series(text, "meter_gpu_power_watts", gpu="1", namespace="", pod="", container="") == [300.0]
    assert series(text, "meter_gpu_tensor_activity_ratio", gpu="0") == [0.45]
    assert series(text, "meter_gpu_sm_activity_ratio", gpu="0") == [0.7]
    assert series(text, "meter_gpu_dram_bandwidth_utilization_ratio", gpu="0") == [0.3]
    assert series(text, "meter_gpu_tensor_activity_ratio", gpu="1") == []  # Ampere: no GPM, absent not 0
    assert series(text, "meter_gpu_xid_errors_total", gpu="0", xid="79") == [1.0]
    assert series(text, "meter_gpu_ecc_errors_total", gpu="0", error_type="uncorrected", counter="volatile") == [1.0]
    assert series(text, "meter_gpu_ecc_errors_total", gpu="0", error_type="corrected", counter="aggregate") == [50.0]
    assert series(text, "meter_gpu_ecc_errors_total", gpu="1") == []
    assert series(text, "meter_gpu_remapped_rows_total", gpu="0", cause="correctable") == [3.0]
    assert series(text, "meter_gpu_row_remap_pending", gpu="0") == [1.0]
    assert series(text, "meter_gpu_row_remap_failure", gpu="0") == [0.0]
    # no energy counter: no energy dollars and no energy-resets series, rather than a 0 that means nothing
    assert series(text, "meter_gpu_energy_resets_total", gpu="1") == []
    assert series(text, "meter_gpu_energy_usd_total", gpu="1") == []
    assert series(text, "meter_gpu_energy_resets_total", gpu="0") == [0.0]
    process = {"pid": str(job.pid), "scheduler": "slurm", "job_id": "4711"}
    assert series(text, "meter_gpu_process_info", gpu="0", **process, **owner) == [1.0]
    assert series(text, "meter_gpu_process_memory_used_bytes", gpu="0", **process) == [3.0 * 2**30]
    assert series(text, "meter_gpu_processes", gpu="0") == [1.0] and series(text, "meter_gpu_processes", gpu="1") == [
        0.0
    ]


def test_an_absent_or_broken_pod_resources_socket_never_stops_the_exporter(fake_nvml_lib, tmp_path):
    not_a_socket = tmp_path / "kubelet.sock"
    not_a_socket.write_text("not a socket")
    for socket in (tmp_path / "absent.sock", not_a_socket):
        e = start_exporter(fake_nvml_lib, tmp_path, Scenario(), "--pod-resources-socket", str(socket))
        try:
            wait_for(e.url + "/metrics", ok=lambda b: b"meter_gpu_power_watts{" in b)
            time.sleep(1.5)  # a few polls: the problem is logged once
            assert series(e.metrics(), "meter_gpu_up") == [1.0]
        finally:
            stop(e.process)
        log = e.process.stderr.read()
        assert log.count("pod attribution off") == 1 and str(socket) in log and "Traceback" not in log, log


def test_pushed_runs_survive_restarts_keyed_by_gpu_and_bounded(fake_nvml_lib, tmp_path):
    from meter.exporter.app import push_run
    from tests.exporter.test_exporter_units import typed_run

    runs = tmp_path / "runs"
    flags = ("--runs-dir", str(runs), "--runs-keep", "2")
    h800, _ = typed_run(tmp_path, "a", hardware="h800-sxm", uuid="GPU-aaaa", run_id="run-1")
    h100, _ = typed_run(tmp_path, "b", hardware="h100-sxm", uuid="GPU-bbbb", run_id="run-2")
    h800_again, _ = typed_run(tmp_path, "c", hardware="h800-sxm", uuid="GPU-aaaa", run_id="run-3")

    def tokens(text: str, uuid: str) -> list[float]:
        return series(text, "meter_benchmark_tokens_per_second", uuid=uuid, case="moe.decode.b128.bf16")

    e = start_exporter(fake_nvml_lib, tmp_path, Scenario(), *flags)
    try:
        for path in (h800, h100):
            answer = push_run(e.url, path)
            assert answer["accepted_cases"] == 9 and answer["stored"].startswith("pushed-"), answer
        text = e.metrics()
        assert len(tokens(text, "GPU-aaaa")) == 1 and len(tokens(text, "GPU-bbbb")) == 1  # no overwrite
    finally:
        stop(e.process)
    e = start_exporter(fake_nvml_lib, tmp_path, Scenario(), *flags)  # a restart, or a rollout
    try:
        text = e.metrics()
        assert len(tokens(text, "GPU-aaaa")) == 1 and len(tokens(text, "GPU-bbbb")) == 1
        assert re.search(r"^meter_results_runs_ingested_total 2\.0$", text, re.M)
        push_run(e.url, h800_again)  # replaces run-1's results: run-1's file goes, within --runs-keep 2
    finally:
        stop(e.process)
    kept = sorted(p.name for p in runs.glob("*.json"))
    assert len(kept) == 2 and not any("run-1" in name for name in kept), kept
    assert not list(runs.glob(".*"))  # atomic writes leave no temporary files
    e = start_exporter(fake_nvml_lib, tmp_path, Scenario(), *flags)
    try:
        text = e.metrics()
        assert len(tokens(text, "GPU-aaaa")) == 1 and len(tokens(text, "GPU-bbbb")) == 1
    finally:
        stop(e.process)


def test_bad_runs_dirs_and_files_in_them(fake_nvml_lib, tmp_path):
    from tests.conftest import run_meter
    from tests.fake_nvml import env

    fake = env(fake_nvml_lib, Scenario().write(tmp_path / "s.txt"))
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    for argv, fragment in (
        (["--runs-dir", str(a_file)], "not a directory"),
        (["--runs-keep", "0"], "--runs-keep"),
        (["--runs-max-bytes", "10"], "--runs-max-bytes"),
        (["--max-run-bytes", "-5"], "--max-run-bytes"),
        (["--interval", "0.001"], "--interval"),
        (["--nvml-retry", "soon"], "--nvml-retry"),
    ):
        r = run_meter("serve", "--port", "1", *argv, env=fake)
        assert r.returncode == 2 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr  # argparse adds its usage line
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "garbage.json").write_bytes(b"\xff\xfe not json")
    (runs / "other.json").write_text('{"schema": "something else"}')
    os.mkfifo(runs / "fifo.json")  # would block a reader that opens it plainly, before the exporter listens
    lone = json.loads(synthetic_run(tmp_path / "r.json").read_text())
    lone["cases"][0]["id"] = "case-\udc80"  # valid JSON, but no scrape could encode it
    (runs / "pushed-surrogate.json").write_text(json.dumps(lone))
    e = start_exporter(fake_nvml_lib, tmp_path, Scenario(), "--runs-dir", str(runs))
    try:
        assert series(e.metrics(), "meter_gpu_up") == [1.0]
    finally:
        stop(e.process)
    log = e.process.stderr.read()
    assert log.count("skipped") == 4 and "Traceback" not in log, log
    assert "is a FIFO" in log and "lone surrogate" in log, log
    assert (runs / "garbage.json").exists()  # someone else's file: read, never deleted
