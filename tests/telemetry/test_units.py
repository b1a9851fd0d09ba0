"""Telemetry arithmetic and machinery in-process: windows, ring, sampler cadence, RAPL, visibility."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from meter.device.nvidia.nvml import GpuLost, decode_clock_events
from meter.device.rapl import open_rapl
from meter.device.reading import Reading
from meter.results.document import TelemetrySource
from meter.telemetry.monitor import Monitor, infer_counter_period
from meter.telemetry.ring import Ring
from meter.telemetry.sampler import Sampler
from meter.telemetry.window import Edge, counter_energy, integrated_energy, summarize_window


def reading(t: float, power: float | None = 300.0, energy: float | None = None, **kw) -> Reading:
    base = dict(
        utilization_ratio=1.0,
        memory_utilization_ratio=0.5,
        power_w=power,
        power_instant_w=power,
        power_average_w=power,
        energy_j=energy,
        sm_clock_hz=1.98e9,
        mem_clock_hz=2.6e9,
        clock_event_mask=0,
        memory_used_bytes=1,
        memory_total_bytes=2,
        temperature_c=50.0,
        power_limit_w=700.0,
    )
    base.update(kw)
    return Reading(t_s=t, **base)


def test_counter_energy_sums_increments_and_survives_a_reset():
    assert counter_energy([(0, 100.0), (1, 150.0), (2, 210.0)]) == (110.0, False)
    # 100 -> 150, reset, then 20 since the reset: 50 + 20
    assert counter_energy([(0, 100.0), (1, 150.0), (2, 20.0)]) == (70.0, True)
    assert counter_energy([(0, 1.0)]) == (None, False)


def test_integrated_energy_is_the_trapezoid_held_to_the_edges():
    points = [(1.0, 100.0), (2.0, 300.0)]
    # [0,1] at 100 W (held), [1,2] trapezoid 200 W, [2,3] at 300 W (held): 100 + 200 + 300
    assert integrated_energy(points, 0.0, 3.0) == pytest.approx(600.0)
    assert integrated_energy([], 0.0, 1.0) is None


def test_window_summary_agrees_for_a_steady_load():
    readings = [reading(0.1 * i, 300.0, 1000.0 + 30.0 * i, clock_event_mask=0x4 if i == 5 else 0) for i in range(21)]
    s = summarize_window("w", Edge(0.0, 1000.0), Edge(2.0, 1600.0), readings, counter_period_s=0.1)
    assert s.energy_j == pytest.approx(600.0) and s.energy_method == "counter"  # 300 W for 2 s
    assert s.energy_integrated_j == pytest.approx(600.0) and not s.counter_reset
    assert s.energy_disagreement == pytest.approx(0.0, abs=1e-9)
    assert s.avg_power_w == pytest.approx(300.0) and s.peak_power_w == 300.0
    assert s.throttle_reasons == ["sw_power_cap"] and not s.low_confidence


def test_short_or_sparse_windows_are_low_confidence():
    short = summarize_window("w", Edge(0.0, 10.0), Edge(0.05, 10.0), [reading(0.02)], counter_period_s=0.1)
    assert short.low_confidence
    assert any("shorter than the energy counter" in r for r in short.low_confidence_reasons)
    sparse = summarize_window("w", Edge(0.0, 0.0), Edge(5.0, 500.0), [reading(1.0), reading(2.0)], counter_period_s=0.1)
    assert sparse.low_confidence and any("only 2 telemetry samples" in r for r in sparse.low_confidence_reasons)


def test_unsupported_fields_stay_none_never_zero():
    readings = [reading(0.1 * i, power=None, utilization_ratio=None, sm_clock_hz=None) for i in range(20)]
    s = summarize_window("w", Edge(0.0, None), Edge(2.0, None), readings, counter_period_s=0.1)
    for key in ("energy_j", "avg_power_w", "peak_power_w", "avg_utilization_ratio", "avg_sm_clock_hz"):
        assert getattr(s, key) is None, key
    assert s.low_confidence and any("no energy" in r for r in s.low_confidence_reasons)


def test_decode_clock_events():
    assert decode_clock_events(0x1 | 0x4 | 0x40) == ["gpu_idle", "sw_power_cap", "hw_thermal_slowdown"]
    assert decode_clock_events(0x1000) == ["unknown_0x1000"]
    assert decode_clock_events(None) == [] and decode_clock_events(0) == []


def test_ring_is_bounded_and_slices_by_time():
    ring = Ring(3)
    for i in range(5):
        ring.append(reading(float(i)))
    assert len(ring) == 3 and ring.dropped == 2
    assert [r.t_s for r in ring.between(2.5, 10)] == [3.0, 4.0]
    assert ring.latest().t_s == 4.0
    with pytest.raises(ValueError):
        Ring(0)


class ScriptedSource:
    def __init__(self, key: str, lose_after: int | None = None):
        self.key, self.calls, self.lose_after, self.energy = key, 0, lose_after, 0.0

    def read(self) -> Reading:
        self.calls += 1
        if self.lose_after is not None and self.calls > self.lose_after:
            raise GpuLost("fell off the bus")
        self.energy += 1.0
        return reading(time.monotonic(), energy=self.energy)

    def read_energy_j(self) -> float:
        return self.energy

    def describe(self) -> TelemetrySource:
        return TelemetrySource(kind="gpu", power_semantics="scripted")


@pytest.mark.parametrize("hz", [10, 100])
def test_sampler_keeps_its_cadence(hz: int):
    source = ScriptedSource("a")
    with Sampler([source], 1.0 / hz):
        time.sleep(1.0)
    # A sampler that spins flat out (Zeus's old bug) or stalls fails this.
    assert 0.7 * hz <= source.calls <= 1.1 * hz + 2


def test_sampler_rejects_rates_above_100_hz():
    with pytest.raises(ValueError):
        Sampler([ScriptedSource("a")], 0.001)


def test_a_lost_source_is_dropped_once_and_the_others_go_on():
    events = []
    lost, ok = ScriptedSource("lost", lose_after=3), ScriptedSource("ok")
    sampler = Sampler([lost, ok], 0.01, on_event=events.append)
    for _ in range(10):
        sampler.sample_once()
    assert lost.calls == 4 and ok.calls == 10
    assert list(sampler.lost) == ["lost"] and len(events) == 1 and "fell off the bus" in events[0]


def test_monitor_windows_and_edges():
    source = ScriptedSource("a")
    synced = []
    with Monitor([source], interval_s=0.01, counter_period_s=0.01, sync=lambda: synced.append(1)) as mon:
        with mon.window("case") as w:
            time.sleep(0.3)
        with pytest.raises(RuntimeError):
            with mon.window("open") as w2:
                w2.summary()
    s = w.summary()
    assert len(synced) >= 2 and s.device == "a" and s.n_samples >= 10
    assert s.energy_method == "counter" and s.energy_j > 0
    assert mon.min_window_s >= 1.0


def test_infer_counter_period_from_a_stepping_counter():
    start = time.monotonic()
    period = infer_counter_period(lambda: float(int((time.monotonic() - start) / 0.05)), max_s=0.5)
    assert period == pytest.approx(0.05, rel=0.3)
    assert infer_counter_period(lambda: None) is None


def make_rapl(root: Path, zones: dict[str, tuple[str, int, int]]) -> None:
    for zone, (name, energy, max_range) in zones.items():
        d = root / zone
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{energy}\n")
        (d / "max_energy_range_uj").write_text(f"{max_range}\n")


def test_rapl_counts_packages_and_handles_wraparound(tmp_path: Path):
    make_rapl(
        tmp_path,
        {
            "intel-rapl:0": ("package-0", 900_000, 1_000_000),
            "intel-rapl:0:0": ("core", 5, 1_000_000),  # a sub-domain: not counted
            "intel-rapl:1": ("package-1", 100, 1_000_000),
        },
    )
    counter, why = open_rapl(tmp_path)
    assert why is None and counter.names == ["package-0", "package-1"]
    assert counter.read_energy_j() == 0.0
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("50000\n")  # wrapped: +150,000 uJ
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text("200100\n")  # +200,000 uJ
    assert counter.read_energy_j() == pytest.approx(0.35)


def test_rapl_unavailable_says_why(tmp_path: Path):
    counter, why = open_rapl(tmp_path / "absent")
    assert counter is None and "does not exist" in why
    (tmp_path / "empty").mkdir()
    counter, why = open_rapl(tmp_path / "empty")
    assert counter is None and "no RAPL package domain" in why


def test_validation_pairs_nvidia_smi_with_the_nearest_sample():
    from meter.telemetry.validate import compare

    pairs = [
        (
            {
                "power.draw": 500.0,
                "clocks.sm": 1980.0,
                "utilization.gpu": 100.0,
                "temperature.gpu": None,
                "memory.used": 1024.0,
            },
            reading(
                0.0,
                power=510.0,
                sm_clock_hz=1.98e9,
                utilization_ratio=1.0,
                memory_used_bytes=1024 * 2**20,
                temperature_c=60.0,
            ),
        )
    ]
    c = compare(pairs)
    assert c["power.draw"]["median_abs_diff"] == pytest.approx(10.0) and c["power.draw"]["median_rel_diff"] == 0.02
    assert c["clocks.sm"]["median_abs_diff"] == 0 and c["utilization.gpu"]["median_abs_diff"] == 0
    assert c["memory.used"]["median_abs_diff"] == 0 and c["temperature.gpu"]["n"] == 0  # n/a is skipped, not 0


@pytest.mark.gpu
def test_validation_tool_runs_on_a_gpu(tmp_path: Path):
    import shutil

    from scripts.validate_telemetry import main

    if shutil.which("nvidia-smi") is None:
        pytest.skip("nvidia-smi is not installed")
    assert main(["--seconds", "3", "--out", str(tmp_path / "v.json")]) == 0
    import json

    report = json.loads((tmp_path / "v.json").read_text())
    assert report["nvidia_smi_pairs"] >= 3 and report["window"]["energy_j"] > 0


def test_a_closed_window_summarised_later_is_the_one_summarised_at_its_end():
    # the deferred summary (meter.Meter's hot path) reads what the rings held when the window ended,
    # however many readings came after, and gives the figures an immediate summary gives
    source = ScriptedSource("a")
    mon = Monitor([source], interval_s=0.01, counter_period_s=0.01)
    mon.t0 = 0.0
    ring = mon.sampler.rings["a"]
    for t in range(10):
        ring.append(reading(100.0 + t, energy=float(t)))
    mon._open["w"] = [(100.5, 0.0)]  # noqa: SLF001 (edges at known times)
    mon._edges = lambda: [(108.5, 9.0)]  # noqa: SLF001
    closed = mon.close_window("w")
    now = mon.summary(closed)
    ring.append(reading(108.2, energy=50.0))  # appended after the end, though timed inside it
    ring.append(reading(109.0, energy=60.0))
    later = mon.summary(closed)
    assert later == now and now.n_samples == 8 and now.start_s == 100.5 and now.end_s == 108.5
    assert now.device == "a" and now.energy_j == pytest.approx(9.0) and now.power_semantics == "scripted"
    assert [r.t_s for r in ring.between(100.5, 108.5)][-1] == 108.2  # without the count it would be in
