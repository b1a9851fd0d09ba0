"""The push endpoint refuses bad run files cleanly: 400 with one line, 411, 413; memory stays bounded."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

import pytest

from tests.cost.test_from_run_and_cli import synthetic_run
from tests.exporter.conftest import start_exporter, stop
from tests.fake_nvml import Scenario


@pytest.fixture(scope="module")
def exporter(fake_nvml_lib, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http")
    e = start_exporter(fake_nvml_lib, tmp, Scenario(), "--max-run-bytes", str(4 * 2**20))
    yield e
    stop(e.process)


def post(e, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", e.port, timeout=60)
    try:
        connection.request("POST", "/api/v1/runs", body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def valid(tmp: Path) -> dict:
    return json.loads(synthetic_run(tmp / "run.json").read_text())


BAD = {
    "not json": b"{nope",
    "not utf-8": b'{"schema": "\xff\xfe"}',
    "a list": b"[1, 2]",
    "a number": b"42",
    "another schema": b'{"schema": "other"}',
    "a newer version": json.dumps({"schema": "gpu-cost-meter/run", "schema_version": 99}).encode(),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_run_file_gets_400_with_one_line(exporter, name):
    status, answer = post(exporter, BAD[name])
    assert status == 400, answer
    assert "\n" not in answer["error"] and answer["error"].startswith("posted run")


def test_a_run_file_with_broken_parts_is_400_never_500(exporter, tmp_path):
    base = valid(tmp_path)
    broken = [
        {**base, "cases": "many"},
        {**base, "cases": [1, "two", None]},
        {**base, "metadata": []},
        {**base, "cases": [{**base["cases"][0], "metrics": {"achieved_tflops": "fast", "tokens_per_s": 1}}]},
        {**base, "projections": [{"model": "m"}]},
    ]
    for doc in broken:
        status, answer = post(exporter, json.dumps(doc).encode())
        assert status == 400, (doc, answer)
        assert "\n" not in answer["error"]
    status, answer = post(exporter, json.dumps(base).encode())
    assert status == 202 and answer["accepted_cases"] == 9  # and the exporter still takes good ones


def test_size_limits_and_lengths(exporter):
    status, answer = post(exporter, b"x" * (4 * 2**20 + 1))
    assert status == 413 and "limit of 4194304 bytes" in answer["error"]
    assert post(exporter, b"")[0] == 411
    # chunked: no Content-Length to check against the limit. Sent in one write, so the server's early
    # answer cannot race the client's second write (which would end in a broken pipe on a busy host).
    with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        status_line = sock.recv(64).split(b"\r\n")[0]
    assert b" 411 " in status_line, status_line


def test_a_57_mib_post_leaves_the_exporter_well_inside_its_memory_limit(exporter):
    status, _ = post(exporter, b" " * (57 * 2**20))
    assert status == 413
    status, _ = post(exporter, b"[" + b"1.5," * (2**20 - 2) + b"1]")  # just under the 4 MiB limit, all numbers
    assert status == 400
    peak = next(
        int(line.split()[1]) * 1024
        for line in Path(f"/proc/{exporter.process.pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    assert peak < 160 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"  # the DaemonSet's limit is 256 MiB


def test_other_paths_and_methods(exporter):
    connection = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=10)
    try:
        for method, path, expected in (("GET", "/api/v1/runs", 405), ("GET", "/nope", 404), ("HEAD", "/metrics", 200)):
            connection.request(method, path)
            response = connection.getresponse()
            response.read()
            assert response.status == expected, (method, path)
            connection.close()
    finally:
        connection.close()


def test_many_scrapers_at_once_all_get_answers(exporter):
    """The backlog takes 20 clients connecting together (the timing figure lives in docs/operations.md)."""
    from scripts.exporter_loadtest import concurrent_load

    result = concurrent_load(f"http://127.0.0.1:{exporter.port}/metrics", clients=20, scrapes=5)
    assert result["errors"] == 0 and result["succeeded"] == 100, result["error_examples"]


def test_a_run_no_scrape_could_render_is_refused_and_scrapes_keep_working(exporter, tmp_path):
    doc = valid(tmp_path)
    doc["cases"][0]["id"] = "case-\udc80"  # json.dumps writes the escape; the loader would have taken it
    status, answer = post(exporter, json.dumps(doc).encode())
    assert status == 400 and "lone surrogate" in answer["error"] and "cases[0].id" in answer["error"], answer
    assert exporter.metrics().startswith("#")  # /metrics still answers


@pytest.mark.parametrize("length", ["\u00b2", "\u0663", "12x", "-5"])
def test_a_content_length_that_is_not_ascii_digits_is_400(exporter, length):
    with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as sock:
        sock.sendall(f"POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
        status_line = sock.recv(64).split(b"\r\n")[0]
    assert b" 400 " in status_line, status_line


def test_a_basic_auth_file_that_is_latin_1_or_a_fifo_is_one_line_at_start(tmp_path):
    import os

    from tests.conftest import run_meter

    latin = tmp_path / "users"
    latin.write_bytes("jos\xe9:".encode("latin-1") + b"0" * 64 + b"\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, fragment in ((latin, "not UTF-8"), (fifo, "is a FIFO")):
        r = run_meter("serve", "--port", "1", "--basic-auth-file", str(path), timeout=60)
        assert r.returncode == 2 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len([line for line in r.stderr.splitlines() if "error" in line]) == 1, r.stderr
