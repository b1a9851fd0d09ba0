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
    state = ExporterState([], hostname="h", prices={}, hardware_configs={}, usd_per_kwh=0.1, pue=1.2)
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
    from meter.results import BenchCase, CaseResult, Projection, ProjectionLayer, RunDocument
    from meter.results.document import DeviceInfo
    from meter.results.metadata import utc_now
    from tests.runs import cpu_metadata, ok_case

    state = empty_state()
    train = BenchCase("m", "ffn", "train", seq=8)
    decode = BenchCase("m", "ffn", "decode", batch=8)
    doc = RunDocument(
        run_id="r",
        status="complete",
        started_at=utc_now(),
        metadata=cpu_metadata(device=DeviceInfo(kind="cpu", torch_device="cpu", name="EPYC")),
        cases=[
            ok_case(train, per_call_s=1.6, tokens=8, flops=1.6e12),
            CaseResult(id="b", case=train, status="oom", reason="too big"),
            ok_case(decode, per_call_s=4.0, tokens=8, flops=1e9),
        ],
        projections=[
            Projection(
                model="m",
                phase="decode",
                dtype="bf16",
                batch=8,
                seq=0,
                context=64,
                layers={"ffn": ProjectionLayer(case_id=decode.id, count=1, time_per_token_s=0.5, flops_per_token=1e8)},
                time_per_token_s=0.5,
                tokens_per_s=2.0,
                flops_per_token=1e8,
            )
        ],
    )
    assert state.ingest(doc) == 2
    taken = state.results.cases[("m", train.id, "train")]
    assert taken["device"] == "CPU (EPYC)"  # never mistaken for a GPU
    assert taken["tokens_per_second"] == 5.0 and taken["tflops"] == 1.0
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
