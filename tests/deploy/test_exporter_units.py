"""Exporter pieces in-process: energy accrual across counter resets, auth files, durations, ingestion."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from meter.cli.commands.serve import duration_s
from meter.errors import UsageError
from meter.exporter.http import BasicAuth, hash_password
from meter.exporter.state import ExporterState, GpuAccount
from tests.telemetry.test_units import reading


def empty_state() -> ExporterState:
    state = ExporterState(hostname="h", usd_per_kwh=0.1, pue=1.2)
    state.accounts["gpu0"] = GpuAccount(gpu=None, key="gpu0", hardware_config=None, usd_per_hour=2.0, price_source="t")
    return state


def test_energy_accrues_across_a_counter_reset():
    state = empty_state()
    for energy in (1000.0, 1050.0, 1120.0, 20.0, 45.0):  # the driver reloads between 1120 J and 20 J
        state._on_reading("gpu0", reading(0.0, energy=energy))
    account = state.accounts["gpu0"]
    assert account.energy_since_start_j == pytest.approx(50 + 70 + 20 + 25)
    assert account.counter_resets == 1
    state._on_reading("gpu0", reading(0.0, energy=None))  # unsupported: nothing changes
    assert account.energy_since_start_j == pytest.approx(165)


def test_ingest_takes_measured_cases_and_skips_the_rest():
    state = empty_state()
    doc = {
        "metadata": {"device": {"kind": "cpu", "name": "EPYC"}},
        "cases": [
            {
                "id": "a",
                "status": "ok",
                "case": {"model": "m", "phase": "train"},
                "metrics": {"achieved_tflops": 1.0, "tokens_per_s": 5.0, "mfu": None},
            },
            {"id": "b", "status": "oom", "case": {"model": "m", "phase": "train"}},
            {"id": "c", "status": "ok", "case": {"model": "m"}, "metrics": {}},
        ],
        "projections": [
            {"model": "m", "phase": "decode", "batch": 8, "seq": 0, "context": 64, "time_per_token_s": 0.5}
        ],
    }
    assert state.ingest(doc) == 1
    assert state.results.cases[("m", "a", "train")]["device"] == "CPU (EPYC)"  # never mistaken for a GPU
    assert state.results.projections[("m", "decode", "b8-ctx64")]["tokens_per_second"] == 2.0


def test_basic_auth_file(tmp_path: Path):
    path = tmp_path / "users"
    path.write_text(f"# users\nprometheus:{hash_password('pw')}\n")
    auth = BasicAuth.from_file(path)

    def header(user, password):
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert auth.allows(header("prometheus", "pw"))
    assert not auth.allows(header("prometheus", "nope")) and not auth.allows(header("root", "pw"))
    assert not auth.allows(None) and not auth.allows("Bearer x") and not auth.allows("Basic !!!")
    path.write_text("prometheus:plaintext\n")
    with pytest.raises(UsageError, match="line 1"):
        BasicAuth.from_file(path)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400), ("45", 45)])
def test_durations(text, seconds):
    assert duration_s(text) == seconds


def test_bad_durations():
    import argparse

    for text in ("soon", "0h", "-1m"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration_s(text)
