"""The GPU seam (meter.device.gpu): the factory, and what the NVIDIA backend reads through it.

GPM, XID events, ECC and row-remap counters and the process list are read from the fake
libnvidia-ml.so.1 through pynvml's real bindings; the factory's fallback over backends in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from meter.device.gpu import GpuUnavailable, Selection, open_gpus
from meter.device.jobs import JobRef, job_of
from tests.fake_nvml import FakeGpu, Scenario, run_python

READ_TWICE = textwrap.dedent("""
    import json, time
    from dataclasses import asdict
    from meter.device.gpu import Selection, open_gpus
    with open_gpus(Selection(all_gpus=True)) as fleet:
        first = [g.read() for g in fleet.gpus]
        time.sleep({pause})
        second = [g.read() for g in fleet.gpus]
        health = [asdict(g.health()) for g in fleet.gpus]
        print(json.dumps({{
            "first": [r.as_dict() for r in first], "second": [r.as_dict() for r in second],
            "health": [{{k: ({{str(c): n for c, n in v.items()}} if isinstance(v, dict) else v)
                        for k, v in h.items()}} for h in health],
            "describe": [asdict(g.describe()) for g in fleet.gpus],
            "processes": [[asdict(p) for p in g.processes()] for g in fleet.gpus],
            "unopened": fleet.unopened,
            "system": asdict(fleet.system()),
        }}))
""")


def read_twice(env: dict, pause: float = 0.5) -> dict:
    return run_python(READ_TWICE.format(pause=pause), env)


def test_gpm_activity_is_the_mean_over_the_interval_and_absent_where_unsupported(fake_nvml):
    env = fake_nvml(
        Scenario(
            gpus=[
                FakeGpu(sm_activity=[20, 80], tensor_activity=[60], dram_bw=[35]),  # Hopper: GPM
                FakeGpu(name="NVIDIA A100-SXM4-80GB", arch=7, sm_activity=[50]),  # Ampere: no GPM
                FakeGpu(mig=True, sm_activity=[50]),  # MIG on: no whole-GPU GPM
            ]
        )
    )
    out = read_twice(env)
    assert out["first"][0]["sm_activity_ratio"] is None  # one sample is not yet a rate
    hopper = out["second"][0]
    assert hopper["sm_activity_ratio"] == pytest.approx(0.5, abs=0.07)  # 20/80 alternating every 100 ms
    assert hopper["tensor_activity_ratio"] == pytest.approx(0.6)
    assert hopper["dram_bandwidth_ratio"] == pytest.approx(0.35)
    for i in (1, 2):
        r = out["second"][i]
        assert r["sm_activity_ratio"] is r["tensor_activity_ratio"] is r["dram_bandwidth_ratio"] is None
        assert out["describe"][i]["supported"]["gpm"] is False
    assert out["describe"][0]["supported"]["gpm"] is True


def test_health_counts_xid_events_once_and_reads_ecc_and_row_remapping(fake_nvml):
    env = fake_nvml(
        Scenario(
            gpus=[
                FakeGpu(xid=[(0, 79), (100, 13), (150, 13), (60_000, 48)], ecc=(3, 1, 40, 2), remapped=(2, 1, 1, 0)),
                FakeGpu(name="NVIDIA V100", arch=5, unsupported=["ecc", "xid"]),
            ]
        )
    )
    out = read_twice(env)
    h = out["health"][0]
    assert h["xid_errors"] == {"79": 1, "13": 2}  # the XID due in 60 s has not happened
    assert (h["ecc_corrected_volatile"], h["ecc_uncorrected_volatile"]) == (3, 1)
    assert (h["ecc_corrected_aggregate"], h["ecc_uncorrected_aggregate"]) == (40, 2)
    assert (h["remapped_rows_correctable"], h["remapped_rows_uncorrectable"]) == (2, 1)
    assert h["row_remap_pending"] is True and h["row_remap_failure"] is False
    v100 = out["health"][1]  # no ECC counters, no XID events, no row remapper before Ampere: absent, not 0
    assert v100["xid_errors"] is None and v100["ecc_corrected_volatile"] is None
    assert v100["remapped_rows_correctable"] is None and v100["row_remap_pending"] is None
    supported = out["describe"][1]["supported"]
    assert (supported["xid"], supported["ecc"], supported["row_remap"]) == (False, False, False)


def test_processes_and_the_jobs_they_belong_to(fake_nvml):
    sleepers = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, **extra})
        for extra in ({"SLURM_JOB_ID": "81234"}, {"TORCHELASTIC_RUN_ID": "pretrain-7"}, {})
    ]
    try:
        pids = [p.pid for p in sleepers]
        env = fake_nvml(Scenario(gpus=[FakeGpu(processes=[(pid, 2**30 * (i + 1)) for i, pid in enumerate(pids)])]))
        out = read_twice(env, pause=0.0)
        assert out["processes"][0] == [{"pid": pid, "used_memory_bytes": 2**30 * (i + 1)} for i, pid in enumerate(pids)]
        assert job_of(pids[0]) == JobRef("slurm", "81234")
        assert job_of(pids[1]) == JobRef("torchrun", "pretrain-7")
        assert job_of(pids[2]) is None
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
    assert job_of(pids[0]) is None  # gone: unknown, never a guess


def test_job_of_reads_only_a_bounded_printable_id(tmp_path):
    for pid, environ in (
        (1, b"A=1\0SLURM_JOB_ID=\0TORCHELASTIC_RUN_ID=x\0"),
        (2, b"SLURM_JOB_ID=a\nb\0"),
        (3, b"\xff\xfe"),
    ):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "environ").write_bytes(environ)
    assert job_of(1, tmp_path) == JobRef("torchrun", "x")  # an empty Slurm id is no id
    assert job_of(2, tmp_path) is None and job_of(3, tmp_path) is None and job_of(4, tmp_path) is None


def test_a_gpu_lost_before_it_is_opened_leaves_the_others(fake_nvml):
    env = fake_nvml(Scenario(gpus=[FakeGpu(lost_after_calls=2), FakeGpu(name="NVIDIA H800")]))
    out = read_twice(env, pause=0.0)
    assert [d["name"] for d in out["describe"]] == ["NVIDIA H800"]
    assert out["unopened"][0][0] == 0 and "lost" in out["unopened"][0][1].lower()
    assert out["system"] == {
        "vendor": "nvidia",
        "library": "nvml",
        "driver_version": "550.54.15",
        "library_version": "12.550.54.15",
        "runtime_version": "12.4",
    }


class _Memory:
    """A second vendor in a few lines: what an amdsmi backend would provide."""

    def __init__(self):
        self.gpus, self.unopened, self.closed = ["gpu-from-the-second-backend"], [], False

    def close(self):
        self.closed = True


def test_the_factory_falls_back_over_backends_and_names_every_reason(monkeypatch):
    import types

    def refuse(_selection):
        raise GpuUnavailable("libfirst.so was not found")

    first = types.ModuleType("first_backend")
    first.open_fleet = refuse
    second = types.ModuleType("second_backend")
    second.open_fleet = lambda selection: _Memory()
    monkeypatch.setitem(sys.modules, "first_backend", first)
    monkeypatch.setitem(sys.modules, "second_backend", second)
    fleet = open_gpus(Selection(), backends=(("first", "first_backend"), ("second", "second_backend")))
    assert fleet.gpus == ["gpu-from-the-second-backend"]
    with pytest.raises(GpuUnavailable, match=r"^first: libfirst.so was not found; first: libfirst.so"):
        open_gpus(Selection(), backends=(("first", "first_backend"), ("first", "first_backend")))


def test_the_default_selection_is_what_cuda_sees(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert Selection().visible == "1,0"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert Selection().visible is None


def test_system_info_reads_the_driver_without_opening_gpus(fake_nvml):
    code = textwrap.dedent("""
        import json
        from dataclasses import asdict
        from meter.device.gpu import system_info
        print(json.dumps(asdict(system_info())))
    """)
    # a GPU that is lost from its first call does not matter: no GPU is opened
    out = run_python(code, fake_nvml(Scenario(gpus=[FakeGpu(lost_after_calls=0)], driver_version="570.1.2")))
    assert out["driver_version"] == "570.1.2" and out["runtime_version"] == "12.4" and out["library"] == "nvml"
