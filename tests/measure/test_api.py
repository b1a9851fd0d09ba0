"""The Python API, ``meter.Meter``: windows nested, overlapping and from threads, against the fake driver."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from meter.results import load_run
from tests.conftest import REPO
from tests.fake_nvml import FakeGpu, Scenario, run_python

# gpu0 at 200 and 800 W in turn (100 ms each): 500 W on average; gpu1 steady at 250 W
TWO_GPUS = Scenario(gpus=[FakeGpu(power_mw=[200_000, 800_000]), FakeGpu(name="NVIDIA H800", power_mw=[250_000])])

WINDOWS = textwrap.dedent("""
    import json, threading, time
    import meter
    from meter.jsonable import to_jsonable
    m = meter.Meter(price_usd_per_gpu_hour=2.0, interval_s=0.02, segment_s={segment_s})
    out = {{}}
    m.begin_window("a")                    # a and b overlap; c is inside b
    time.sleep(0.8)
    m.begin_window("b")
    time.sleep(0.8)
    out["a"] = m.end_window("a", tokens=1000)
    with m.window("c") as c:
        time.sleep(1.2)
        c.tokens = 600
    time.sleep(0.4)
    out["b"] = m.end_window("b", tokens=2400)
    out["c"] = c.result
    out["job"] = m.result()
    out["path"] = str(m.save({path!r}))
    m.close()
    print(json.dumps(to_jsonable(out)))
""")


def _windows(fake_nvml, tmp_path: Path, segment_s: float = 60.0) -> dict:
    from meter.config.schema import build_dataclass
    from meter.results import JobResult, JobWindow

    env = fake_nvml(TWO_GPUS)
    out = run_python(WINDOWS.format(segment_s=segment_s, path=str(tmp_path / "api.json")), env)
    for name in "abc":
        out[name] = build_dataclass(JobWindow, out[name], path=None)
    out["job"] = build_dataclass(JobResult, out["job"], path=None)
    return out


def test_nested_and_overlapping_windows_measure_the_trace(fake_nvml, tmp_path: Path):
    out = _windows(fake_nvml, tmp_path)
    for name, seconds in (("a", 1.6), ("b", 2.4), ("c", 1.2)):
        w = out[name]
        assert w.duration_s == pytest.approx(seconds, abs=0.25)
        devices = w.telemetry.devices
        assert devices["gpu0"].energy_j == pytest.approx(500 * w.duration_s, rel=0.1)
        assert devices["gpu1"].energy_j == pytest.approx(250 * w.duration_s, rel=0.1)
        assert w.energy_j == pytest.approx(devices["gpu0"].energy_j + devices["gpu1"].energy_j)
        assert w.gpus == 2 and w.usd == pytest.approx(2 * w.duration_s / 3600 * 2.0)
    a, b, c = out["a"], out["b"], out["c"]
    assert a.start_s < b.start_s < a.end_s < c.start_s < c.end_s < b.end_s  # overlapping, then nested
    assert a.tokens_per_s == pytest.approx(1000 / a.duration_s)
    assert c.joules_per_token == pytest.approx(c.energy_j / 600)
    assert a.mfu is None  # no model given
    # the job: tokens of nested windows counted once (b's 2400 replaces c's 600), overlapping ones both
    job = out["job"]
    assert job.work.tokens == 1000 + 2400
    assert [g.key for g in job.gpus] == ["gpu0", "gpu1"]
    assert job.gpus[0].telemetry.energy_j == pytest.approx(500 * job.duration_s, rel=0.08)
    doc = load_run(out["path"])
    assert doc.kind == "job" and doc.job.source == "api" and [w.name for w in doc.job.windows] == ["a", "c", "b"]
    assert doc.status == "running"  # saved before close: the job was still going


def test_a_long_job_measured_in_segments_adds_up(fake_nvml, tmp_path: Path):
    out = _windows(fake_nvml, tmp_path, segment_s=0.25)  # ~14 segments over the 3.2 s
    job = out["job"]
    gpu0 = job.gpus[0].telemetry
    # each segment starts at the edges the last one ended on: their durations add up to the job's time
    assert gpu0.duration_s == pytest.approx(job.duration_s, abs=1e-3) and job.duration_s >= 3.2
    assert gpu0.energy_j == pytest.approx(500 * job.duration_s, rel=0.08)
    assert gpu0.energy_integrated_j == pytest.approx(gpu0.energy_j, rel=0.08)
    assert job.gpus[1].telemetry.avg_power_w == pytest.approx(250, rel=0.05)
    assert not gpu0.low_confidence, gpu0.low_confidence_reasons  # judged on the whole job, not each segment


THREADS = textwrap.dedent("""
    import json, threading, time
    import meter
    m = meter.Meter(price_usd_per_gpu_hour=1.0, model="deepseek-v3-tiny", seq=256, interval_s=0.02)
    errors = []
    def work(t):
        try:
            for i in range(25):
                with m.window(f"t{t}.step{i}", tokens=512):
                    time.sleep(0.004)
        except Exception as exc:
            errors.append(repr(exc))
    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads: th.start()
    for th in threads: th.join()
    job = m.result()
    print(json.dumps({"errors": errors, "windows": len(m.windows), "tokens": job.work.tokens,
                      "mfu": [w.mfu for w in m.windows[:3]], "tps": [w.tokens_per_s for w in m.windows[:3]],
                      "durations": [w.duration_s for w in m.windows[:3]], "totals": len(job.window_totals)}))
""")


def test_windows_from_several_threads_at_once(fake_nvml):
    from meter.analytic import flops as F
    from meter.config.models import load_model

    out = run_python(THREADS, fake_nvml(Scenario(gpus=[FakeGpu()])))
    assert out["errors"] == [] and out["windows"] == 100 and out["totals"] == 100
    assert out["tokens"] == 100 * 512  # parallel windows all count
    flops = F.train_flops_per_token(load_model("deepseek-v3-tiny").args, 256).total
    for mfu, tps, seconds in zip(out["mfu"], out["tps"], out["durations"]):
        assert tps == pytest.approx(512 / seconds)
        assert mfu == pytest.approx(tps * flops / 989.4e12)  # the fake GPU is an H100 SXM


def test_without_nvml_windows_are_timed_and_energy_is_absent(tmp_path: Path):
    code = textwrap.dedent("""
        import json, sys, time, warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import meter
            m = meter.Meter(gpus=[0], price_usd_per_gpu_hour=2.0)
        m.begin_window("w"); time.sleep(0.2); w = m.end_window("w", tokens=100)
        print(json.dumps({"torch": "torch" in sys.modules, "warned": [str(c.message) for c in caught],
                          "energy": w.energy_j, "usd": w.usd, "d": w.duration_s, "jpt": w.joules_per_token,
                          "reason": m.telemetry_reason, "path": str(m.save(sys.argv[1]))}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "j.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"LD_LIBRARY_PATH": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    import json

    out = json.loads(result.stdout)
    if out["reason"] is None:
        pytest.skip("this machine has a real NVIDIA driver")
    assert out["torch"] is False  # import meter, and a meter, without torch
    assert any("energy is None" in w for w in out["warned"])
    assert out["energy"] is None and out["jpt"] is None and out["d"] >= 0.2
    assert out["usd"] == pytest.approx(out["d"] / 3600 * 2.0)  # gpus=[0]: one GPU, stated
    job = load_run(out["path"]).job
    assert job.energy_j is None and job.windows[0].energy_j is None and "libnvidia-ml" in job.energy_reason


def test_import_meter_is_light():
    code = "import sys, meter; assert 'torch' not in sys.modules and 'pynvml' not in sys.modules; meter.Meter"
    code += "; assert 'torch' not in sys.modules; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip() == "ok", result.stderr


def test_bad_calls_raise_python_errors():
    import meter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = meter.Meter(gpus=[], price_usd_per_gpu_hour=1.0)
    with pytest.raises(ValueError, match="never begun"):
        m.end_window("nope")
    m.begin_window("x")
    with pytest.raises(ValueError, match="already open"):
        m.begin_window("x")
    with pytest.raises(ValueError, match="tokens must be a non-negative number"):
        m.end_window("x", tokens=float("nan"))
    with pytest.raises(ValueError, match="price_usd_per_gpu_hour"):
        meter.Meter(gpus=[], price_usd_per_gpu_hour=-1)
    m.close()
    with pytest.raises(RuntimeError, match="closed"):
        m.begin_window("y")
