"""Telemetry end to end against the fake libnvidia-ml.so.1, loaded by pynvml's real bindings."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from meter.results import load_run
from tests.conftest import run_meter
from tests.fake_nvml import FakeGpu, Scenario, run_python

MONITOR = textwrap.dedent("""
    import json, time
    from meter.jsonable import to_jsonable
    from meter.device.gpu import Selection, open_gpus
    from meter.telemetry.monitor import Monitor
    from meter.telemetry.sources import GpuSource
    fleet = open_gpus(Selection(all_gpus=True))
    sources = [GpuSource(gpu) for gpu in fleet.gpus]
    out = {{}}
    with Monitor(sources, interval_s={interval}, fleet=fleet) as mon:
        time.sleep({lead})
        with mon.window("w") as w:
            time.sleep({seconds})
    out["window"] = w.summary()
    out["describe"] = mon.describe()
    out["events"] = [m for _, m in mon.sampler.events]
    out["ticks"] = mon.sampler.ticks
    print(json.dumps(to_jsonable(out)))
""")


def monitor(env: dict, seconds: float = 2.0, interval: float = 0.02, lead: float = 0.0) -> dict:
    """The window and description the monitor made in a subprocess, read back through the run-file types."""
    from meter.config.schema import build_dataclass
    from meter.results import TelemetryInfo, TelemetryWindow

    out = run_python(MONITOR.format(seconds=seconds, interval=interval, lead=lead), env)
    out["window"] = build_dataclass(TelemetryWindow, out["window"], path=None)
    out["describe"] = build_dataclass(TelemetryInfo, out["describe"], path=None)
    return out


def test_pynvml_reads_the_fake_driver(fake_nvml):
    env = fake_nvml(Scenario(gpus=[FakeGpu(name="NVIDIA H800", power_mw=[100_000, 700_000])]))
    out = run_python(
        textwrap.dedent("""
        import json, time, pynvml as nv
        nv.nvmlInit()
        h = nv.nvmlDeviceGetHandleByIndex(0)
        e0 = nv.nvmlDeviceGetTotalEnergyConsumption(h); time.sleep(1.0); e1 = nv.nvmlDeviceGetTotalEnergyConsumption(h)
        print(json.dumps({"name": nv.nvmlDeviceGetName(h), "count": nv.nvmlDeviceGetCount(), "energy_mj": e1 - e0}))
    """),
        env,
    )
    assert out["name"] == "NVIDIA H800" and out["count"] == 1
    assert out["energy_mj"] == pytest.approx(400_000, rel=0.15)  # 1 s alternating 100/700 W, 100 ms counter steps


def test_counter_energy_matches_integrated_power_on_a_steady_load(fake_nvml):
    env = fake_nvml(Scenario(gpus=[FakeGpu(power_mw=[650_000])]))
    out = monitor(env, seconds=2.5, lead=0.3)
    w = out["window"]
    assert w.energy_method == "counter" and not w.low_confidence, w.low_confidence_reasons
    assert w.energy_j == pytest.approx(650 * w.duration_s, rel=0.06)  # within one 100 ms counter step
    assert w.energy_disagreement < 0.06 and w.avg_power_w == pytest.approx(650, rel=0.06)
    d = out["describe"]
    assert d.counter_period_s == pytest.approx(0.1, rel=0.2) and d.counter_period == "measured"
    assert d.devices[0].power_semantics.startswith("instant")


def test_window_with_a_varying_load_and_throttling(fake_nvml):
    env = fake_nvml(
        Scenario(gpus=[FakeGpu(power_mw=[200_000, 700_000], throttle=[0, 0x4 | 0x1], sm_clock_mhz=[1980, 1600])])
    )
    w = monitor(env, seconds=2.0)["window"]
    assert w.energy_j == pytest.approx(450 * w.duration_s, rel=0.08)
    assert w.peak_power_w == 700.0
    assert w.throttle_reasons == ["sw_power_cap"] and "gpu_idle" in w.clock_event_reasons
    assert 1.6e9 <= w.avg_sm_clock_hz <= 1.98e9 and w.min_sm_clock_hz == 1.6e9


def test_unsupported_fields_are_absent_not_zero(fake_nvml):
    env = fake_nvml(Scenario(gpus=[FakeGpu(unsupported=["energy", "power_instant", "temperature", "clocks"])]))
    out = monitor(env, seconds=1.5)
    w, dev = out["window"], out["describe"].devices[0]
    assert w.energy_method == "integrated power" and w.energy_counter_j is None
    assert w.energy_j == pytest.approx(300 * w.duration_s, rel=0.05)
    assert w.avg_sm_clock_hz is None
    assert dev.supported["energy"] is False and dev.supported["temperature"] is False
    assert dev.power_semantics.startswith("1 s average")


def test_a_counter_reset_is_detected_and_flagged(fake_nvml):
    env = fake_nvml(Scenario(gpus=[FakeGpu(power_mw=[500_000], energy_reset_at_ms=1500, energy_offset_mj=10_000_000)]))
    w = monitor(env, seconds=2.0, lead=0.6)["window"]  # the reset falls inside the window
    assert w.counter_reset and w.low_confidence
    assert w.energy_j == pytest.approx(500 * w.duration_s, rel=0.1)  # no negative, no 10 kJ jump


def test_a_lost_gpu_is_reported_once_and_the_other_goes_on(fake_nvml):
    env = fake_nvml(Scenario(gpus=[FakeGpu(lost_after_calls=60), FakeGpu(name="NVIDIA H800")]))
    out = monitor(env, seconds=1.5)
    assert len(out["events"]) == 1 and "gpu0 was lost" in out["events"][0]
    devices = out["window"].devices
    assert devices["gpu0"].low_confidence and any("lost" in r for r in devices["gpu0"].low_confidence_reasons)
    assert devices["gpu1"].energy_j > 0 and not devices["gpu1"].low_confidence


def test_mig_gpu_has_no_utilization(fake_nvml):
    env = fake_nvml(Scenario(gpus=[FakeGpu(mig=True)]))
    out = monitor(env, seconds=1.2)
    assert out["window"].avg_utilization_ratio is None
    assert out["describe"].devices[0].mig_enabled is True
    assert out["window"].energy_j > 0  # power and energy are the whole GPU's


def test_sampler_at_100_hz_keeps_up_with_two_gpus(fake_nvml):
    env = fake_nvml(Scenario(gpus=[FakeGpu(), FakeGpu()]))
    out = monitor(env, seconds=2.0, interval=0.01)
    assert out["window"].devices["gpu0"].n_samples >= 140  # 100 Hz over 2 s, allowing a slow CI host


def test_visible_devices_are_matched_by_uuid_and_index(fake_nvml):
    gpus = [FakeGpu(uuid=f"GPU-aaaa{i}000-0000-0000-0000-000000000000") for i in range(4)]
    env = fake_nvml(Scenario(gpus=gpus))
    out = run_python(
        textwrap.dedent("""
        import json
        from meter.device.nvml import NvmlSession
        from meter.device.visible import visible_nvml_indices as v
        with NvmlSession() as s:
            print(json.dumps({
                "none": v(s, None), "empty": v(s, ""), "indices": v(s, "2,0"),
                "uuid_prefix": v(s, "GPU-aaaa3,1"), "bare_prefix": v(s, "aaaa1"),
                "stops_at_invalid": v(s, "1,7,2"), "torch_uuids": v(s, "0", ["GPU-aaaa2000-0000-0000-0000-000000000000"]),
            }))
    """),
        env,
    )
    assert out == {
        "none": [0, 1, 2, 3],
        "empty": [],
        "indices": [2, 0],
        "uuid_prefix": [3, 1],
        "bare_prefix": [1],
        "stops_at_invalid": [1],
        "torch_uuids": [2],
    }


@pytest.mark.parametrize(
    ("init_error", "fragment"),
    [
        (9, "kernel driver is not loaded"),
        (18, "driver/library version mismatch"),
    ],
)
def test_nvml_failures_give_one_clear_line(fake_nvml, init_error: int, fragment: str):
    env = fake_nvml(Scenario(init_error=init_error))
    result = run_meter("watch", "--count", "1", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and fragment in result.stderr
    doctor = json.loads(run_meter("doctor", "--json", env=env).stdout)
    assert doctor["nvml"]["available"] is False and fragment in doctor["nvml"]["reason"]


def test_no_driver_library_at_all(tmp_path: Path):
    result = run_meter("watch", "--count", "1", env={"LD_LIBRARY_PATH": str(tmp_path)})
    if result.returncode == 0:
        pytest.skip("this machine has a real NVIDIA driver")
    assert result.returncode == 2 and "libnvidia-ml.so.1 was not found" in result.stderr


def test_watch_json_lines_and_table(fake_nvml):
    env = fake_nvml(Scenario(gpus=[FakeGpu(name="NVIDIA H800", throttle=[0x40]), FakeGpu(mig=True)]))
    result = run_meter("watch", "--json", "--count", "2", "--interval", "0.1", env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4 and [r["gpu"] for r in lines] == [0, 1, 0, 1]
    assert lines[0]["power_w"] == 300.0 and lines[0]["throttling"] is True
    assert lines[0]["clock_event_reasons"] == ["hw_thermal_slowdown"]
    assert lines[1]["utilization_ratio"] is None  # MIG: absent, never 0
    table = run_meter("watch", "--count", "1", env=env)
    assert table.returncode == 0 and "NVIDIA H800" in table.stdout and "n/a" in table.stdout


def test_watch_reports_a_gpu_lost_mid_run(fake_nvml):
    env = fake_nvml(Scenario(gpus=[FakeGpu(lost_after_calls=25), FakeGpu()]))
    result = run_meter("watch", "--json", "--count", "4", "--interval", "0.05", env=env)
    assert result.returncode == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert any("lost" in r for r in rows if r["gpu"] == 0) and all("lost" not in r for r in rows if r["gpu"] == 1)
    assert result.stderr.count("was lost") == 1


def test_doctor_lists_supported_fields_and_hardware_matches(fake_nvml):
    env = fake_nvml(
        Scenario(
            gpus=[
                FakeGpu(name="NVIDIA H800"),
                FakeGpu(name="NVIDIA H100 PCIe", mig=True, unsupported=["energy"]),
                FakeGpu(name="NVIDIA RTX 9090"),
            ]
        )
    )
    doctor = json.loads(run_meter("doctor", "--json", env=env).stdout)
    gpus = doctor["nvml"]["gpus"]
    assert [g["hardware_config"] for g in gpus] == ["h800-sxm", "h100-pcie", None]
    assert gpus[0]["telemetry_supported"]["energy"] is True
    assert gpus[1]["telemetry_supported"]["energy"] is False and gpus[1]["telemetry_supported"]["utilization"] is False
    text = run_meter("doctor", env=env).stdout
    assert "NO MATCH" in text and "all but utilization, energy" in text


def test_bench_wraps_every_case_in_a_telemetry_window(fake_nvml, seeded_ceilings, tmp_path: Path):
    env = {**fake_nvml(Scenario(gpus=[FakeGpu(power_mw=[400_000], throttle=[0x4])])), **seeded_ceilings}
    out = tmp_path / "run.json"
    result = run_meter(
        "bench",
        "--model",
        "deepseek-v3-tiny",
        "--layers",
        "ffn",
        "--phase",
        "prefill,decode",
        "--batch",
        "2",
        "--seq",
        "16",
        "--telemetry",
        "nvml",
        "--sample-hz",
        "50",
        "--output",
        str(out),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    doc = load_run(out)
    tele_meta = doc.metadata.telemetry
    assert tele_meta.enabled and tele_meta.devices[0].name == "NVIDIA H100 80GB HBM3"
    for case in doc.cases:
        t = case.telemetry
        assert t.duration_s >= tele_meta.min_window_s * 0.95  # short cases repeated until long enough
        assert t.energy_j == pytest.approx(400 * t.duration_s, rel=0.1) and not t.low_confidence
        assert t.joules_per_token > 0 and t.throttle_reasons == ["sw_power_cap"]
    assert "J/token" in result.stdout and "throttled: sw_power_cap" in result.stdout
