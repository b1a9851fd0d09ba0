"""The exporter against the fake NVML driver, scraped by a real Prometheus server.

Every dashboard panel query and every rule expression must parse on that server and return data:
the whole expression where the test fleet trips it, and every series selector inside it always.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from meter.exporter.app import push_run
from tests.conftest import require_executable, require_module
from tests.cost.test_from_run_and_cli import synthetic_run
from tests.exporter.conftest import DEPLOY, free_port, query, run_prometheus, stop, wait_for

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gpu-cost-meter.json"
RULES = [DEPLOY / "prometheus" / "rules" / "meter-recording.yml", DEPLOY / "prometheus" / "rules" / "meter-alerts.yml"]
# Dashboard template variables, as Grafana would substitute them for "All".
VARIABLES = {"$hostname": ".*", "$gpu": ".*", "$__rate_interval": "5s", "$__interval": "1s", "$__range": "5m"}
# Alerts the test fleet cannot trip in a few seconds; their selectors must still return data.
QUIET = {"MeterTelemetryStale", "MeterNvmlDown", "MeterGpuEccUncorrectable"}


def dashboard_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for p in doc["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"]
            for k, v in VARIABLES.items():
                expr = expr.replace(k, v)
            out.append((f"panel '{p['title']}' {t['refId']}", expr))
    return out


DCGM_DASHBOARD = Path(__file__).parent / "fixtures" / "dcgm-exporter-dashboard.json"


def dcgm_dashboard_queries() -> list[tuple[str, str]]:
    """The panel queries of NVIDIA's dcgm-exporter dashboard, its variables set to "All"."""
    doc = json.loads(DCGM_DASHBOARD.read_text())
    out = []
    for p in doc["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"].replace("$instance", ".*").replace("$gpu", ".*")
            out.append((f"dcgm-exporter dashboard panel '{p['title']}'", expr))
    assert len(out) >= 8
    return out


def rule_expressions() -> list[tuple[str, str]]:
    out = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((rule.get("record") or rule.get("alert"), rule["expr"]))
    return out


def selectors(expr: str) -> list[str]:
    promql_parser = require_module("promql_parser", "pip install -e '.[test]' (parses PromQL offline)")
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append(str(node))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_exposition_passes_promtool_and_fields_are_absent_not_zero(exporter):
    promtool = require_executable("promtool", "apt-get install prometheus")
    wait_for(exporter.url + "/metrics", ok=lambda b: b"meter_gpu_power_watts" in b)
    text = exporter.metrics()
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout == "" and check.stderr == "", check.stdout + check.stderr
    assert 'meter_gpu_info{architecture="hopper"' in text and 'hardware_config="h800-sxm"' in text
    # the fake's gpu 0 alternates 650 and 700 W: a loaded machine may sample either
    power = re.search(r'meter_gpu_power_watts\{[^}]*gpu="0"[^}]*\} ([0-9.]+)', text)
    assert power and 650.0 <= float(power.group(1)) <= 700.0, power
    assert re.search(r'meter_gpu_clock_event_reason_active\{[^}]*gpu="0"[^}]*reason="sw_power_cap"[^}]*\} 1\.0', text)
    assert re.search(r'meter_gpu_price_usd_per_hour\{[^}]*gpu="0"', text) and "meter_gpu_rental_usd_total" in text
    # gpu 2 is lost after 80 NVML calls: it keeps meter_gpu_up 0 and nothing else it cannot read
    deadline = time.monotonic() + 20
    while not re.search(r'meter_gpu_up\{[^}]*gpu="2"[^}]*\} 0\.0', text):
        assert time.monotonic() < deadline, "gpu 2 was never reported lost"
        time.sleep(0.5)
        text = exporter.metrics()
    # a lost GPU keeps its identity, accrues no dollars and exports nothing it can no longer read
    assert re.search(r'meter_gpu_info\{[^}]*gpu="2"', text)
    for gone in ("meter_gpu_power_watts", "meter_gpu_rental_usd_total", "meter_gpu_price_usd_per_hour"):
        assert not re.search(gone + r'\{[^}]*gpu="2"', text), gone


def test_posted_runs_become_results_and_priced_projections(exporter, tmp_path: Path):
    answer = push_run(exporter.url, synthetic_run(tmp_path / "run.json"))
    assert answer["accepted_cases"] == 9 and answer["priced"] == ["serve", "train"]
    text = exporter.metrics()
    assert re.search(r'meter_benchmark_mfu_ratio\{case="moe.train.b1-s4096.bf16".*model="deepseek-v3"', text)
    assert re.search(
        r'meter_cost_training_usd\{device="NVIDIA H800",hardware="h800-sxm",hostname="test",'
        r'model="deepseek-v3",scenario="deepseek-v3",uuid=""\}',
        text,
    )
    assert re.search(r'meter_cost_serving_usd_per_million_tokens\{device="NVIDIA H800",direction="output"', text)
    # anything that is not a run file is refused with a reason, and nothing else changes
    bad = urllib.request.Request(exporter.url + "/api/v1/runs", data=b'{"schema": "other"}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad)
    assert info.value.code == 400 and b"not a gpu-cost-meter run file" in info.value.read()


@pytest.mark.slow
def test_every_dashboard_query_and_rule_expression_returns_data(exporter, tmp_path: Path):
    push_run(exporter.url, synthetic_run(tmp_path / "run.json"))
    dead = f"127.0.0.1:{free_port()}"  # a target that is down, so MeterExporterDown has data too
    prom, url = run_prometheus(tmp_path, [f"127.0.0.1:{exporter.port}", dead], RULES)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = query(url, "count(meter_gpu_up)")["data"]["result"]
            rates = query(url, "meter:gpu_power_watts:rate5m")["data"]["result"]
            xids = query(url, "increase(meter_gpu_xid_events_total[1m]) > 0")["data"]["result"]
            if ready and rates and xids:
                break
            time.sleep(1)
        time.sleep(2)
        problems = []
        for name, expr in dashboard_queries() + rule_expressions() + dcgm_dashboard_queries():
            answer = query(url, expr)
            if answer.get("status") != "success":
                problems.append(f"{name}: does not parse/evaluate: {answer.get('error')}")
                continue
            for selector in selectors(expr):
                if not query(url, selector)["data"]["result"]:
                    problems.append(f"{name}: selector {selector} returns no data")
            if not answer["data"]["result"] and name not in QUIET:
                problems.append(f"{name}: expression returns no data: {expr}")
        assert not problems, "\n".join(problems)
        # the recording rules are evaluated by the server and the alerts' conditions hold
        for record in (
            "meter:fleet_usd_per_hour:sum",
            "meter:idle_gpu_usd_per_hour:sum",
            "meter:fleet_power_watts:sum",
        ):
            assert query(url, record)["data"]["result"], record
        # two GPUs answer at $2.50; the lost one is not priced any more
        assert float(query(url, "meter:fleet_usd_per_hour:sum")["data"]["result"][0]["value"][1]) == pytest.approx(5.0)
        assert float(query(url, "meter:idle_gpu_usd_per_hour:sum")["data"]["result"][0]["value"][1]) == pytest.approx(
            2.5
        )
        # dcgm-exporter's names come in its units, with its labels
        util = query(url, 'DCGM_FI_DEV_GPU_UTIL{gpu="0"}')["data"]["result"][0]
        assert float(util["value"][1]) == pytest.approx(97.0)  # percent
        assert {"gpu", "UUID", "modelName", "Hostname", "hostname", "device", "instance"} <= set(util["metric"])
        assert util["metric"]["modelName"] == "NVIDIA H800" and util["metric"]["device"] == "nvidia0"
        assert util["metric"]["namespace"] == "team-a"  # the owner labels carry over
        for record, value in (
            ("DCGM_FI_DEV_FB_USED", 10240.0),  # MiB
            ("DCGM_FI_DEV_SM_CLOCK", 1980.0),  # MHz
            ("DCGM_FI_DEV_GPU_TEMP", 55.0),
            ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 0.55),  # a ratio, as dcgm's profiling fields
        ):
            got = query(url, f'{record}{{gpu="0"}}')["data"]["result"]
            assert got and float(got[0]["value"][1]) == pytest.approx(value), record
        # the pod holding gpu0 owns its rental; the Slurm job owns both GPUs it runs on
        owned = query(url, 'meter:gpu_rental_usd_per_hour:sum_by_owner{namespace="team-a",pod="train-0"}')
        assert float(owned["data"]["result"][0]["value"][1]) == pytest.approx(2.5)
        by_job = query(url, 'meter:gpu_rental_usd_per_hour:sum_by_job{scheduler="slurm",job_id="4711"}')
        assert float(by_job["data"]["result"][0]["value"][1]) == pytest.approx(5.0)  # on gpu0 and gpu1
    finally:
        stop(prom)


def test_scrapes_stay_fast_under_load(fake_nvml_lib, tmp_path: Path):
    """100 scrapes a second with 8 GPUs (a shorter run than the documented 30 s one)."""
    from scripts.exporter_loadtest import scrape_load
    from tests.exporter.conftest import start_exporter
    from tests.fake_nvml import FakeGpu, Scenario

    e = start_exporter(fake_nvml_lib, tmp_path, Scenario(gpus=[FakeGpu() for _ in range(8)]))
    try:
        push_run(e.url, synthetic_run(tmp_path / "run.json"))
        result = scrape_load(e.url + "/metrics", rate_hz=100, seconds=5)
    finally:
        stop(e.process)
    assert result["errors"] == 0 and result["succeeded"] == 500
    # Speed lives in docs/operations.md (measured p99 of a few ms); a test on a shared 2-core machine may only
    # ask that no scrape comes near Prometheus' default scrape timeout (10 s), which would lose a sample.
    assert result["p99_s"] < 10.0


def test_basic_auth_and_tls(fake_nvml_lib, tmp_path: Path):
    import base64
    import ssl

    from meter.exporter.http import hash_password
    from tests.exporter.conftest import start_exporter
    from tests.fake_nvml import Scenario

    openssl = require_executable("openssl", "apt-get install openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    users = tmp_path / "users"
    users.write_text(f"prometheus:{hash_password('s3cret')}\n")
    e = start_exporter(
        fake_nvml_lib,
        tmp_path,
        Scenario(),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--basic-auth-file",
        str(users),
        scheme="https",
    )
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False

    def status(path: str, password: str | None = None, data: bytes | None = None) -> int:
        headers = {}
        if password is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode()
        request = urllib.request.Request(e.url + path, data=data, headers=headers, method="POST" if data else "GET")
        try:
            return urllib.request.urlopen(request, context=context, timeout=10).status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert status("/healthz") == 200  # probes carry no credentials, and need none
                break
            except OSError:
                assert time.monotonic() < deadline, (
                    e.process.stderr.read() if e.process.poll() is not None else "timeout"
                )
                time.sleep(0.3)
        for password, expected in ((None, 401), ("wrong", 401), ("s3cret", 200)):
            assert status("/metrics", password) == expected
        # the push endpoint is behind the same credentials
        run = synthetic_run(tmp_path / "run.json").read_bytes()
        assert status("/api/v1/runs", None, run) == 401 and status("/api/v1/runs", "wrong", run) == 401
        assert status("/api/v1/runs", "s3cret", run) == 202
    finally:
        stop(e.process)


def test_exporter_runs_without_torch(fake_nvml_lib, tmp_path: Path):
    """The exporter image installs no torch: nothing on the serve path may import it."""
    import os
    import sys

    from tests.fake_nvml import Scenario, env

    port = free_port()
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    fake = env(fake_nvml_lib, Scenario().write(tmp_path / "s.txt"))
    fake["PYTHONPATH"] = f"{blocker}:{fake['PYTHONPATH']}"
    process = subprocess.Popen(
        [sys.executable, "-m", "meter", "serve", "--port", str(port)],
        env={**os.environ, **fake},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = wait_for(f"http://127.0.0.1:{port}/metrics", ok=lambda b: b"meter_gpu_up" in b)
        assert b"meter_gpu_power_watts" in body
    finally:
        stop(process)


def test_serve_refuses_bad_options(fake_nvml_lib, tmp_path: Path):
    from tests.conftest import run_meter
    from tests.fake_nvml import Scenario, env

    fake = env(fake_nvml_lib, Scenario().write(tmp_path / "s.txt"))
    for argv, fragment in (
        (["--tls-cert", "x.pem"], "go together"),
        (["--bench-suite", "default-cpu"], "go together"),
        (["--basic-auth-file", "/no/such"], "--basic-auth-file"),
        (["--port", "0"], "--port"),
    ):
        r = run_meter("serve", *argv, env=fake)
        assert r.returncode == 2 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_meter("serve", "--hash-password", env=fake)
    assert r.returncode == 2 and "empty password" in r.stderr  # no stdin: nothing to hash (bcrypt: see webconfig tests)
