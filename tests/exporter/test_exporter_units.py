"""Exporter pieces in-process: energy accrual across counter resets, auth files, durations, ingestion."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from meter.cli.commands.exporter import duration_s
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
    keys = state.ingest(doc)
    assert sorted(k[0] for k in keys) == ["case", "case", "projection"]  # the OOM case is not a result
    taken = state.results.cases[("case", "test", "", "m", train.id, "train")]  # host, GPU uuid, model, case
    assert taken.origin.device == "CPU (EPYC)"  # never mistaken for a GPU
    assert taken.tokens_per_second == 5.0 and taken.tflops == 1.0
    assert state.results.projections[("projection", "test", "", "m", "decode", "b8-ctx64")].tokens_per_second == 2.0


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


def typed_run(tmp: Path, name: str, *, hardware: str, uuid: str, run_id: str) -> tuple[Path, object]:
    """The synthetic DeepSeek-V3 run, on a given GPU, rewritten through the typed classes."""
    import dataclasses

    from meter.jsonable import to_jsonable
    from meter.results import load_run
    from meter.results.atomic import write_json_atomic
    from tests.runs import synthetic_v3_run

    doc = load_run(synthetic_v3_run(tmp / f"{name}.src.json", hardware=hardware))
    device = dataclasses.replace(doc.metadata.device, uuid=uuid)
    doc = dataclasses.replace(doc, run_id=run_id, metadata=dataclasses.replace(doc.metadata, device=device))
    path = tmp / f"{name}.json"
    write_json_atomic(path, to_jsonable(doc))
    return path, doc


def test_a_second_gpu_type_does_not_replace_the_first(tmp_path: Path):
    state = empty_state()
    _, h800 = typed_run(tmp_path, "a", hardware="h800-sxm", uuid="GPU-aaaa", run_id="r1")
    _, h100 = typed_run(tmp_path, "b", hardware="h100-sxm", uuid="GPU-bbbb", run_id="r2")
    state.ingest(h800)
    state.ingest(h100)
    devices = {(c.origin.uuid, c.origin.device) for c in state.results.cases.values()}
    assert devices == {("GPU-aaaa", "NVIDIA H800"), ("GPU-bbbb", "NVIDIA H100 80GB HBM3")}
    assert len(state.results.cases) == 2 * 9 and len(state.results.projections) == 2 * 3
    state.ingest(h100)  # the same GPU again: replaces its own figures only
    assert len(state.results.cases) == 18


def test_the_run_store_is_atomic_bounded_and_never_deletes_other_files(tmp_path: Path):
    import os

    from meter.exporter.runstore import RunStore

    store = RunStore(tmp_path / "runs", max_files=2, max_bytes=2**30)
    mine = tmp_path / "runs" / "my-own-run.json"
    mine.write_text("{}")
    os.utime(mine, ns=(1, 1))  # the oldest file of all: still never removed
    paths = []
    for i, (hardware, uuid) in enumerate((("h800-sxm", "GPU-a"), ("h100-sxm", "GPU-b"), ("h800-sxm", "GPU-a"))):
        src, doc = typed_run(tmp_path, f"r{i}", hardware=hardware, uuid=uuid, run_id=f"run-{i}")
        path = store.save(doc, src.read_bytes())
        os.utime(path, ns=(10**18 + i, 10**18 + i))
        store.record(path, [("case", uuid)])  # run-2 replaces run-0's only result
        paths.append(path)
    assert not list((tmp_path / "runs").glob(".*.tmp"))  # atomic: no half-written file left
    removed = store.prune()
    assert removed == [paths[0]]  # replaced first, though run-1 is older than run-2
    assert [p.name for p in store.files()] == ["my-own-run.json", paths[1].name, paths[2].name]
    tiny = RunStore(tmp_path / "runs", max_files=100, max_bytes=paths[2].stat().st_size)
    tiny.record(paths[1], [("case", "GPU-b")])
    tiny.record(paths[2], [("case", "GPU-a")])
    assert tiny.prune() == [paths[1]]  # over the byte bound: the oldest goes, even though it is live
    assert mine.exists()


def test_a_bad_runs_dir_is_one_line(tmp_path: Path):
    from meter.exporter.runstore import RunStore

    a_file = tmp_path / "file"
    a_file.write_text("x")
    for bad, fragment in ((a_file, "not a directory"), (a_file / "sub", "cannot create")):
        with pytest.raises(UsageError, match=fragment) as info:
            RunStore(bad)
        assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_the_exposition_renders_once_per_round_and_never_makes_a_scrape_wait_on_a_rerender():
    import threading
    import time

    from prometheus_client import CollectorRegistry
    from prometheus_client.core import GaugeMetricFamily

    from meter.exporter.http import Exposition

    renders, release = [], threading.Event()

    class Slow:
        def describe(self):
            return []

        def collect(self):
            renders.append(version[0])
            if len(renders) > 1:
                release.wait(5)  # a re-render that takes a while
            yield GaugeMetricFamily("meter_test_round", "the round rendered", value=version[0])

    version = [1]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Slow())
    exposition = Exposition(registry, lambda: version[0])
    first, _ = exposition.render(None, None)
    assert b"meter_test_round 1.0" in first and exposition.render(None, None)[0] == first and renders == [1]
    version[0] = 2
    renderer = threading.Thread(target=exposition.refresh)
    renderer.start()
    while len(renders) < 2:
        time.sleep(0.01)
    t0 = time.perf_counter()
    stale, headers = exposition.render(None, None)  # round 2 is being rendered: round 1's bytes, at once
    assert stale == first and time.perf_counter() - t0 < 0.5 and ("Content-Length", str(len(first))) in headers
    release.set()
    renderer.join(5)
    assert b"meter_test_round 2.0" in exposition.render(None, None)[0] and renders == [1, 2]
    zipped, headers = exposition.render(None, "gzip")  # each format is its own body
    assert ("Content-Encoding", "gzip") in headers and zipped[:2] == b"\x1f\x8b"
