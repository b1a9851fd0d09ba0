"""Fixtures that start real processes: the exporter on the fake NVML driver, and a Prometheus server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, require_executable
from tests.fake_nvml import FakeGpu, Scenario, env

DEPLOY = REPO / "deploy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout_s: float = 30.0, ok=lambda body: True) -> bytes:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                body = r.read()
                if ok(body):
                    return body
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up in {timeout_s} s: {last}")


def fleet(job_pid: int | None = None) -> Scenario:
    """A fleet that trips every alert it can: gpu0 busy, power-capped and hardware-slowed, with XIDs
    8 and 20 s in and a row remap pending, held by a pod; gpu1 idle with a failed row remap; Slurm
    job ``job_pid`` on both; gpu2 lost mid-run."""
    return Scenario(
        gpus=[
            FakeGpu(
                name="NVIDIA H800",
                power_mw=[650_000, 700_000],
                util=[97],
                throttle=[0x4 | 0x8],
                sm_activity=[80],
                tensor_activity=[55],
                dram_bw=[40],
                xid=[(8000, 79), (20_000, 13)],  # while Prometheus scrapes: increase() sees them
                remapped=(1, 0, 1, 0),
                processes=[(job_pid, 2**30)] if job_pid else [],
            ),
            FakeGpu(
                name="NVIDIA H100 80GB HBM3",
                power_mw=[90_000],
                util=[0],
                throttle=[0x1],
                remapped=(0, 2, 0, 1),
                processes=[(job_pid, 2**20)] if job_pid else [],  # the job holds an idle GPU too
            ),
            FakeGpu(name="NVIDIA H100 80GB HBM3", lost_after_calls=80),
        ]
    )


FLEET = fleet()
OWNER = ("team-a", "train-0", "trainer")


class Exporter:
    def __init__(self, process: subprocess.Popen, port: int, scheme: str = "http", scenario_path: Path | None = None):
        self.process, self.port, self.scheme, self.scenario_path = process, port, scheme, scenario_path

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def metrics(self) -> str:
        return urllib.request.urlopen(self.url + "/metrics", timeout=5).read().decode()


def start_exporter(lib_dir: Path, tmp: Path, scenario: Scenario, *extra: str, scheme: str = "http") -> Exporter:
    port = free_port()
    scenario_path = scenario.write(tmp / f"fleet-{port}.txt")
    fake = env(lib_dir, scenario_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "meter", "serve", "--port", str(port), "--interval", "0.2", "--price", "2.5", *extra],
        env={**os.environ, **fake},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    exporter = Exporter(process, port, scheme, scenario_path)
    if scheme == "http" and "--basic-auth-file" not in extra:
        try:
            wait_for(exporter.url + "/healthz")
        except AssertionError:
            process.kill()
            raise AssertionError(process.communicate()[1]) from None
    return exporter


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def exporter(fake_nvml_lib, tmp_path):
    """The fleet's exporter, with gpu0 held by a pod (a fake kubelet) and running a Slurm job."""
    from tests.fake_kubelet import FakeKubelet

    job = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], env={**os.environ, "SLURM_JOB_ID": "4711"}
    )
    kubelet = FakeKubelet([(*OWNER, "nvidia.com/gpu", ["GPU-fa4e0000-0000-0000-0000-000000000000"])])
    try:
        e = start_exporter(fake_nvml_lib, tmp_path, fleet(job.pid), "--pod-resources-socket", str(kubelet.socket))
        yield e
        stop(e.process)
    finally:
        kubelet.stop()
        job.kill()
        job.wait()


def run_prometheus(
    tmp: Path, targets: list[str], rule_files: list[Path], **scrape: object
) -> tuple[subprocess.Popen, str]:
    """A real Prometheus on 127.0.0.1 scraping ``targets`` every second, with ``rule_files`` loaded.

    ``scrape``: more settings of the scrape config (``scheme``, ``tls_config``, ``basic_auth``).
    """
    binary = require_executable("prometheus", "apt-get install prometheus (Debian's package has server and promtool)")
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        json.dumps(
            {  # JSON is YAML
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(p) for p in rule_files],
                "scrape_configs": [{"job_name": "gpu-cost-meter", "static_configs": [{"targets": targets}], **scrape}],
            }
        )
    )
    data = tmp / "tsdb"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/-/ready", timeout_s=60)
    except AssertionError:
        process.kill()
        raise AssertionError(process.communicate()[1][-2000:]) from None
    return process, url


def query(prom_url: str, expr: str) -> dict:
    data = urllib.parse.urlencode({"query": expr}).encode()
    request = urllib.request.Request(prom_url + "/api/v1/query", data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read() or b"{}") or {"status": "error", "error": str(exc)}
