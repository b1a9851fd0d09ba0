"""``meter serve --web.config.file``: a real Prometheus scraping over TLS with bcrypt basic auth, and over
mutual TLS; every refusal (401, a refused handshake, an expired client certificate, plain HTTP to the
TLS port, 429 over the rate limit) while valid scrapes keep answering; certificates rotated live."""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import require_module
from tests.cost.test_from_run_and_cli import synthetic_run
from tests.exporter.certs import Pair, TestCa
from tests.exporter.conftest import query, run_prometheus, start_exporter, stop
from tests.exporter.test_exporter_prometheus import RULES
from tests.fake_nvml import Scenario

bcrypt = require_module("bcrypt", "pip install -e '.[test]' (the web config's bcrypt basic_auth_users)")

PASSWORD = "s3cret pass"
RATE = {"interval": "200ms", "burst": 10}  # 5 a second: far above Prometheus' one scrape a second


def client_context(ca: TestCa, pair: Pair | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.root.cert))
    if pair is not None:
        context.load_cert_chain(str(pair.cert), str(pair.key))
    return context


def request(
    port: int,
    context: ssl.SSLContext,
    path: str = "/metrics",
    password: str | None = None,
    body: bytes | None = None,
) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one HTTPS request; an OSError (ssl.SSLError) when TLS refuses us."""
    headers = {}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode()
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=20)
    try:
        connection.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def served_certificate(port: int, ca: TestCa) -> bytes:
    """The DER of the certificate the exporter presents now."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.getpeercert(binary_form=True)


def der(pair: Pair) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pair.cert.read_text())


def write_config(path: Path, config: dict) -> Path:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config))  # JSON is YAML
    os.replace(tmp, path)  # atomically, as a Secret update or a config manager would
    return path


def wait_healthy(e, context: ssl.SSLContext) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if request(e.port, context, "/healthz")[0] == 200:
                return
        except OSError:
            pass
        if e.process.poll() is not None or time.monotonic() > deadline:
            e.process.kill()
            raise AssertionError(e.process.communicate()[1][-2000:])
        time.sleep(0.3)


def wait_scraped(prom_url: str, after: float, timeout_s: float = 30) -> None:
    """Until Prometheus has a successful scrape of meter (up 1) taken after ``after`` (a Unix time)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = query(prom_url, f"up == 1 and timestamp(up) > {after} and on() count(meter_gpu_up) > 0")
        if last.get("status") == "success" and last["data"]["result"]:
            return
        time.sleep(0.5)
    targets = query(prom_url, "up")
    raise AssertionError(f"no successful scrape after {after}: {last} {targets}")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict:
    ca = TestCa(tmp_path_factory.mktemp("pki"))
    return {
        "ca": ca,
        "server": ca.issue("server"),
        "rotated": ca.issue("server rotated"),
        "prometheus": ca.issue("prometheus", "DNS:prometheus"),
        "intruder": ca.issue("intruder", "DNS:intruder"),
        "expired": ca.issue("prometheus expired", "DNS:prometheus", expired=True),
    }


@pytest.mark.slow
def test_prometheus_scrapes_over_tls_with_bcrypt_basic_auth(fake_nvml_lib, tmp_path: Path, pki):
    ca, server = pki["ca"], pki["server"]
    live = Pair(tmp_path / "tls.crt", tmp_path / "tls.key")  # the files a Secret mounts, rotated below
    live.cert.write_bytes(server.cert.read_bytes())
    live.key.write_bytes(server.key.read_bytes())
    config = {
        "tls_server_config": {"cert_file": "tls.crt", "key_file": "tls.key", "min_version": "TLS12"},
        "basic_auth_users": {"prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()},
        "rate_limit": RATE,
        "http_server_config": {"headers": {"X-Content-Type-Options": "nosniff"}},
    }
    web = write_config(tmp_path / "web-config.yml", config)
    e = start_exporter(fake_nvml_lib, tmp_path, Scenario(), "--web.config.file", str(web), scheme="https")
    context = client_context(ca)
    wait_healthy(e, context)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    prom, prom_url = run_prometheus(
        tmp_path,
        [f"127.0.0.1:{e.port}"],
        RULES,
        scheme="https",
        tls_config={"ca_file": str(ca.root.cert)},
        basic_auth={"username": "prometheus", "password_file": str(password_file)},
    )
    try:
        wait_scraped(prom_url, after=0)
        status, headers, body = request(e.port, context, password=PASSWORD)
        assert status == 200 and b"meter_gpu_up" in body and headers["X-Content-Type-Options"] == "nosniff"
        # the refusals, each its own
        assert request(e.port, context)[0] == 401
        status, headers, _ = request(e.port, context, password="wrong")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        run = synthetic_run(tmp_path / "run.json").read_bytes()
        assert request(e.port, context, "/api/v1/runs", None, run)[0] == 401  # pushing needs credentials too
        assert request(e.port, context, "/api/v1/runs", "wrong", run)[0] == 401
        assert request(e.port, context, "/api/v1/runs", PASSWORD, run)[0] == 202
        plain = http.client.HTTPConnection("127.0.0.1", e.port, timeout=10)
        plain.request("GET", "/metrics")
        answer = plain.getresponse()
        assert answer.status == 400 and b"HTTP request to an HTTPS server" in answer.read()
        plain.close()

        # a burst far above the rate limit: 60 requests can take at most 10 + 5 a second of tokens
        started = time.time()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: request(e.port, context, password=PASSWORD)[0], range(60)))
        elapsed_s = time.time() - started  # under 10 s, at least 60 - 10 - 5 * elapsed_s of them got 429
        assert statuses.count(429) >= 1 and set(statuses) <= {200, 429}, (statuses, elapsed_s)
        assert request(e.port, context, "/healthz")[0] == 200  # probes are never limited
        # valid scrapes keep answering: ours once tokens are back (bounded), and Prometheus'
        deadline = time.monotonic() + 10
        while (status := request(e.port, context, password=PASSWORD)[0]) == 429 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == 200
        wait_scraped(prom_url, after=time.time())

        # a rotated certificate is served without a restart, and Prometheus goes on scraping
        assert served_certificate(e.port, ca) == der(server)
        rotated = pki["rotated"]
        for source, target in ((rotated.key, live.key), (rotated.cert, live.cert)):
            target.with_suffix(".new").write_bytes(source.read_bytes())
            os.replace(target.with_suffix(".new"), target)
        deadline = time.monotonic() + 15
        while served_certificate(e.port, ca) != der(rotated):
            assert time.monotonic() < deadline, "the rotated certificate was never served"
            time.sleep(0.3)
        wait_scraped(prom_url, after=time.time())

        # a broken new config is refused in the log; the last good one keeps serving
        (tmp_path / "web-config.yml").write_text("basic_auth_users: {prometheus: [unclosed\n")
        time.sleep(1.0)  # past the exporter's check interval: it has seen the broken file by now
        assert request(e.port, context, password=PASSWORD)[0] == 200
        assert request(e.port, context, password="wrong")[0] == 401
        wait_scraped(prom_url, after=time.time())
        reload_ok = query(prom_url, "meter_web_config_last_reload_successful")["data"]["result"]
        assert reload_ok and reload_ok[0]["value"][1] == "0"  # an alert can tell
        body = request(e.port, context, password=PASSWORD)[2].decode()
        text = "".join(line + "\n" for line in body.splitlines() if "meter_web_config_" in line)
        assert text.count("# TYPE") == 2
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout == check.stderr == "", check.stdout + check.stderr
    finally:
        stop(prom)
        stop(e.process)
    log = e.process.communicate()[1]
    assert "web config not reloaded, still serving with the previous one" in log and "malformed YAML" in log, log
    assert log.count("web config reloaded") >= 1, log  # the rotation


@pytest.mark.slow
def test_prometheus_scrapes_over_mutual_tls(fake_nvml_lib, tmp_path: Path, pki, monkeypatch):
    ca = pki["ca"]
    config = {
        "tls_server_config": {
            "cert_file": str(pki["server"].cert),
            "key_file": str(pki["server"].key),
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": str(ca.root.cert),
            "client_allowed_sans": ["prometheus"],
        },
        "rate_limit": RATE,
    }
    web = write_config(tmp_path / "web-config.yml", config)
    e = start_exporter(fake_nvml_lib, tmp_path, Scenario(), "--web-config-file", str(web), scheme="https")
    with_cert = client_context(ca, pki["prometheus"])
    wait_healthy(e, with_cert)
    prom, prom_url = run_prometheus(
        tmp_path,
        [f"127.0.0.1:{e.port}"],
        RULES,
        scheme="https",
        tls_config={
            "ca_file": str(ca.root.cert),
            "cert_file": str(pki["prometheus"].cert),
            "key_file": str(pki["prometheus"].key),
        },
    )
    try:
        wait_scraped(prom_url, after=0)
        run = synthetic_run(tmp_path / "run.json").read_bytes()
        for name, context in (
            ("no client certificate", client_context(ca)),
            ("an expired client certificate", client_context(ca, pki["expired"])),
            ("a certificate without an allowed SAN", client_context(ca, pki["intruder"])),
        ):
            for path, body in (("/metrics", None), ("/api/v1/runs", run)):  # a push is refused at the TLS layer too
                with pytest.raises(OSError):
                    status = request(e.port, context, path, body=body)[0]
                    pytest.fail(f"{name}: {path} answered {status}")
        assert request(e.port, with_cert)[0] == 200
        assert request(e.port, with_cert, "/api/v1/runs", body=run)[0] == 202
        # meter bench --push / meter measure --push: the CA and a client certificate from the environment
        from meter.exporter.app import push_run

        monkeypatch.setenv("METER_PUSH_CA", str(ca.root.cert))
        with pytest.raises(OSError):
            push_run(e.url, tmp_path / "run.json")
        monkeypatch.setenv("METER_PUSH_CERT", str(pki["prometheus"].cert))
        monkeypatch.setenv("METER_PUSH_KEY", str(pki["prometheus"].key))
        assert push_run(e.url, tmp_path / "run.json")["accepted_cases"] == 9
        wait_scraped(prom_url, after=time.time())
    finally:
        stop(prom)
        stop(e.process)


def test_serve_refuses_a_bad_web_config_at_start(fake_nvml, tmp_path: Path, pki):
    """The exporter does not start on a broken file: one line naming the file and key, status 2."""
    from tests.conftest import run_meter

    env = fake_nvml(Scenario())
    mismatched = {"cert_file": str(pki["server"].cert), "key_file": str(pki["prometheus"].key)}
    # (the other failure modes run in process: tests/test_bad_inputs.py)
    for config, fragment in (({"tls_server_config": mismatched}, "key does not match the certificate"),):
        web = write_config(tmp_path / "web.yml", config)
        r = run_meter("serve", "--web.config.file", str(web), env=env)
        assert r.returncode == 2 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run_meter("serve", "--web.config.file", str(web), "--basic-auth-file", "users", env=env)
    assert r.returncode == 2 and "one or the other" in r.stderr


def test_hash_password_prints_a_bcrypt_hash_the_exporter_takes(tmp_path: Path):
    import sys

    from tests.conftest import REPO

    def hash_of(text: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "meter", "serve", "--hash-password"]
        return subprocess.run(command, input=text, capture_output=True, text=True, cwd=REPO, timeout=60)

    r = hash_of("s3cret\n")
    assert r.returncode == 0, r.stderr
    hashed = r.stdout.strip()
    assert hashed.startswith("$2b$10$") and bcrypt.checkpw(b"s3cret", hashed.encode())
    web = write_config(tmp_path / "web.yml", {"basic_auth_users": {"prometheus": hashed}})
    from meter.exporter.webconfig import load_web_config
    from meter.exporter.webguard import BcryptUsers

    users = BcryptUsers(dict(load_web_config(web).users))
    assert users.allows("Basic " + base64.b64encode(b"prometheus:s3cret").decode())
    for text, fragment in (("x" * 73 + "\n", "at most 72"),):  # an empty one: test_serve_refuses_bad_options
        r = hash_of(text)
        assert r.returncode == 2 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_deprecated_flags_still_serve_and_say_so(fake_nvml_lib, tmp_path: Path, pki):
    import hashlib

    ca, server = pki["ca"], pki["server"]
    users = tmp_path / "users"
    users.write_text(f"prometheus:{hashlib.sha256(PASSWORD.encode()).hexdigest()}\n")
    e = start_exporter(
        fake_nvml_lib,
        tmp_path,
        Scenario(),
        "--tls-cert",
        str(server.cert),
        "--tls-key",
        str(server.key),
        "--basic-auth-file",
        str(users),
        scheme="https",
    )
    context = client_context(ca)
    try:
        wait_healthy(e, context)
        assert request(e.port, context, password=PASSWORD)[0] == 200
        assert request(e.port, context, password="wrong")[0] == 401
    finally:
        stop(e.process)
    log = e.process.communicate()[1]
    assert "--tls-cert/--tls-key are deprecated" in log and "--basic-auth-file is deprecated" in log, log


def test_promtool_checks_the_rules_as_before():
    from tests.conftest import require_executable

    promtool = require_executable("promtool", "apt-get install prometheus")
    for rules in RULES:
        check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
