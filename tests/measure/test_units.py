"""The arithmetic of a measured job, the token ledger and the log counter, against numbers written out here."""

from __future__ import annotations

import re

import pytest

from meter.measure.child import ChildResult, TokenCounter
from meter.measure.figures import Prices, WorkModel, cost_figures, join_segments, work_figures
from meter.measure.ledger import Ledger
from meter.measure.run import command_from_argv
from meter.results import JobWindow, TelemetryWindow


def _segment(start: float, seconds: float, watts: float, *, util: float, clock: float, samples: int, **extra):
    return TelemetryWindow(
        name="meter:job",
        duration_s=seconds,
        energy_j=watts * seconds,
        energy_method="counter",
        energy_counter_j=watts * seconds,
        energy_integrated_j=watts * seconds * 1.02,
        avg_power_w=watts,
        peak_power_w=watts + 50,
        avg_utilization_ratio=util,
        avg_sm_clock_hz=clock,
        min_sm_clock_hz=clock - 1e8,
        n_samples=samples,
        counter_updates=int(seconds * 10),
        device="gpu0",
        start_s=start,
        end_s=start + seconds,
        **extra,
    )


def test_segments_join_into_one_window_over_the_job():
    a = _segment(0.0, 60.0, 400.0, util=1.0, clock=1.9e9, samples=600, throttle_reasons=["sw_power_cap"])
    b = _segment(60.0, 30.0, 100.0, util=0.4, clock=1.5e9, samples=300)
    c = _segment(90.0, 0.5, 200.0, util=0.0, clock=1.2e9, samples=5, low_confidence=True,
                 low_confidence_reasons=["only 5 telemetry samples (fewer than 10)"])  # fmt: skip
    w = join_segments("job", [a, b, c], counter_period_s=0.1)
    assert w.duration_s == pytest.approx(90.5) and w.start_s == 0.0 and w.end_s == 90.5
    assert w.energy_j == pytest.approx(400 * 60 + 100 * 30 + 200 * 0.5)
    assert w.avg_power_w == pytest.approx((400 * 60 + 100 * 30 + 100) / 90.5)
    assert w.energy_disagreement == pytest.approx(0.02)
    assert w.peak_power_w == 450 and w.min_sm_clock_hz == pytest.approx(1.1e9)
    assert w.avg_utilization_ratio == pytest.approx((600 * 1.0 + 300 * 0.4) / 905)  # weighted by samples
    assert w.avg_sm_clock_hz == pytest.approx((600 * 1.9e9 + 300 * 1.5e9 + 5 * 1.2e9) / 905)
    assert w.throttle_reasons == ["sw_power_cap"] and w.n_samples == 905
    assert not w.low_confidence  # the short last segment alone had too few samples, the job does not


def test_a_segment_without_energy_leaves_the_job_without_energy():
    a = _segment(0.0, 60.0, 400.0, util=1.0, clock=1.9e9, samples=600)
    b = TelemetryWindow(name="meter:job", duration_s=60.0, device="gpu0", n_samples=600, start_s=60.0, end_s=120.0,
                        low_confidence=True, low_confidence_reasons=["device lost: gone"])  # fmt: skip
    w = join_segments("job", [a, b], counter_period_s=0.1)
    assert w.energy_j is None and w.avg_power_w is None  # a partial sum would pass for the whole
    assert w.low_confidence and w.low_confidence_reasons == ["device lost: gone"]


def test_two_gpus_join_per_gpu_then_add_up():
    def two(start, w0, w1):
        d0 = _segment(start, 10.0, w0, util=1.0, clock=1.9e9, samples=100)
        d1 = _segment(
            start,
            10.0,
            w1,
            util=1.0,
            clock=1.9e9,
            samples=100,
        )
        d1 = TelemetryWindow(**{**d1.__dict__, "device": "gpu1"})
        return TelemetryWindow(name="meter:job", duration_s=10.0, energy_j=(w0 + w1) * 10, start_s=start,
                               end_s=start + 10, devices={"gpu0": d0, "gpu1": d1})  # fmt: skip

    w = join_segments("job", [two(0.0, 300, 500), two(10.0, 100, 700)], counter_period_s=0.1)
    assert w.devices["gpu0"].energy_j == pytest.approx(4000) and w.devices["gpu1"].energy_j == pytest.approx(12000)
    assert w.energy_j == pytest.approx(16000) and w.avg_power_w == pytest.approx(800)


MODEL = WorkModel(model="m", phase="train", seq=4096, flops_per_token=6e9, peak_flops_per_gpu=1e15, basis="b")


def test_work_figures_written_out():
    w = work_figures(tokens=3.6e6, source="--tokens", duration_s=3600, gpus=4, energy_j=4 * 500 * 3600, model=MODEL)
    assert w.tokens_per_s == 1000
    assert w.achieved_tflops == pytest.approx(1000 * 6e9 / 4 / 1e12)  # 1.5 TFLOP/s per GPU
    assert w.mfu == pytest.approx(1.5e12 / 1e15)
    assert w.joules_per_token == pytest.approx(2.0)  # 2,000 W for 1,000 tokens/s
    none = work_figures(tokens=10, source="api", duration_s=0.0, gpus=0, energy_j=None, model=MODEL)
    assert none.tokens_per_s is None and none.mfu is None and none.joules_per_token is None


def test_cost_figures_written_out():
    prices = Prices(usd_per_gpu_hour=2.5, usd_per_kwh=0.10, pue=1.2)
    c = cost_figures(gpus=8, duration_s=1800, energy_j=8 * 700 * 1800, prices=prices)
    assert c.gpu_hours == 4.0 and c.gpu_usd == 10.0
    assert c.energy_kwh == pytest.approx(2.8)  # 5.6 kW for half an hour
    assert c.energy_usd == pytest.approx(2.8 * 1.2 * 0.10) and c.total_usd == pytest.approx(10.336)
    absent = cost_figures(gpus=8, duration_s=1800, energy_j=None, prices=Prices())
    assert absent.gpu_usd is None and absent.energy_kwh is None and absent.total_usd is None


def _w(name: str, tokens: float | None = None) -> JobWindow:
    return JobWindow(name=name, start_s=0.0, end_s=1.0, duration_s=1.0, tokens=tokens, energy_j=10.0, usd=0.5)


def test_ledger_counts_nested_tokens_once():
    led = Ledger()
    led.begin("epoch")
    for i in range(3):
        led.begin(f"step{i}")
        led.end(_w(f"step{i}", 100))
    led.end(_w("epoch", 1000))  # the epoch's own count replaces its steps'
    assert led.tokens == 1000
    led.begin("epoch2")
    for _ in range(2):
        led.begin("s")
        led.end(_w("s", 50))
    led.end(_w("epoch2"))  # no count of its own: its steps' stand
    assert led.tokens == 1100
    led.begin("a")
    led.begin("b")
    led.end(_w("a", 7))  # overlapping, not nested: both count
    led.end(_w("b", 5))
    assert led.tokens == 1112
    totals = {t.name: t for t in led.totals()}
    assert totals["s"].count == 2 and totals["s"].tokens == 100 and totals["s"].energy_j == 20.0
    assert totals["epoch2"].tokens is None and totals["epoch2"].usd == 0.5


def test_ledger_keeps_at_most_max_windows_but_totals_them_all():
    led = Ledger(max_windows=3)
    for _ in range(5):
        led.begin("step")
        led.end(_w("step", 1))
    assert len(led.kept) == 3 and led.not_kept == 2 and led.totals()[0].count == 5 and led.tokens == 5


def test_token_counter_reads_the_log():
    last = TokenCounter(re.compile(r"tokens=([\d,.]+[KMB]?)"))
    for line in ["step 1 tokens=1,024", "noise", "step 2 tokens=2.5K", "tokens=oops"]:
        last.feed(line)
    assert last.total == 2500 and last.unreadable == 0  # 'oops' does not match [\d,.]
    named = TokenCounter(re.compile(r"(?P<step>\d+): (?P<tokens>\d+) tok"), aggregate="sum")
    named.feed("1: 100 tok, 2: 200 tok")
    assert named.total == 300
    empty = TokenCounter(re.compile(r"tokens=(\S+)"))
    empty.feed("tokens=n/a")
    assert empty.total is None and empty.unreadable == 1


def test_exit_codes_follow_the_shell():
    assert ChildResult(3, [], []).exit_code == 3
    assert ChildResult(-15, ["SIGTERM"], ["SIGTERM"]).exit_code == 143
    assert ChildResult(-9, [], []).killed_by == "SIGKILL"


def test_the_command_after_the_separator():
    assert command_from_argv(["--", "python", "-c", "x"]) == ["python", "-c", "x"]
    assert command_from_argv(["python", "--", "x"]) == ["python", "--", "x"]
    assert command_from_argv([]) == []


def test_the_overhead_benchmark_runs_and_reports_each_setting(fake_nvml):
    from tests.fake_nvml import FakeGpu, Scenario, run_python

    out = run_python(
        "import json; from scripts.window_overhead import measure; print(json.dumps(measure(20, 500)))",
        fake_nvml(Scenario(gpus=[FakeGpu(), FakeGpu()])),
    )
    assert out["gpus"] == 2 and out["ring_fill"] == 500
    for key in ("no_gpu", "nvml_ring_empty", "nvml_ring_full"):
        assert out[key]["pairs"] > 0 and 0 < out[key]["median_us"] <= out[key]["p99_us"]
        assert out[key]["windows"] > 0 and out[key]["summary_us"] > 0


def test_a_ring_returns_a_window_from_its_newest_end():
    from meter.device.reading import Reading
    from meter.telemetry.ring import Ring

    ring = Ring(capacity=1000)
    for t in range(1500):  # the oldest 500 have fallen off
        ring.append(Reading(float(t), *([None] * 13)))
    assert [r.t_s for r in ring.between(1495.5, 1497.0)] == [1496.0, 1497.0]
    assert [r.t_s for r in ring.between(0.0, 501.0)] == [500.0, 501.0]
    assert ring.between(2000.0, 3000.0) == [] and len(ring.between(0, float("inf"))) == 1000


def test_a_deferred_window_becomes_the_window_it_stands_for_when_first_read():
    from meter.measure.record import DeferredWindow, settled

    calls = []
    window = JobWindow(name="step", start_s=1.0, end_s=3.0, duration_s=2.0, gpus=8, energy_j=1200.0, tokens=4.0)

    def work_out() -> JobWindow:
        calls.append(1)
        return window

    d = DeferredWindow("step", 4.0, work_out)
    assert isinstance(d, JobWindow) and d.name == "step" and d.tokens == 4.0 and calls == []
    assert d.energy_j == 1200.0 and d.gpus == 8 and calls == [1]  # a field with a default works it out too
    assert type(d) is JobWindow and d == window and calls == [1]  # once
    other = DeferredWindow("step", 4.0, lambda: window)
    assert other == window and settled(other) is other and type(other) is JobWindow


def test_the_ledger_reads_windows_figures_only_for_its_totals():
    from meter.measure.record import DeferredWindow

    read = []

    def window(name: str, tokens: float | None, energy: float) -> DeferredWindow:
        def work_out() -> JobWindow:
            read.append(name)
            return JobWindow(name=name, start_s=0.0, end_s=1.0, duration_s=1.0, energy_j=energy, usd=0.5, tokens=tokens)

        return DeferredWindow(name, tokens, work_out)

    ledger = Ledger(max_windows=1)
    ledger.begin("outer")
    ledger.begin("inner")
    ledger.end(window("inner", 3.0, 10.0))
    ledger.end(window("outer", None, 30.0))
    assert ledger.tokens == 3.0 and ledger.unsettled == 2 and read == [] and ledger.not_kept == 1
    totals = {t.name: t for t in ledger.totals()}
    assert read == ["inner", "outer"] and ledger.unsettled == 0
    assert totals["outer"].energy_j == 30.0 and totals["inner"].tokens == 3.0 and totals["inner"].usd == 0.5


def test_the_side_by_side_script_times_meter_and_counts_its_nvml_calls(fake_nvml_lib):
    import json
    import subprocess
    import sys

    from tests.fake_nvml import REPO

    done = subprocess.run(
        [sys.executable, "scripts/window_cost.py", "--gpus", "2", "--pairs", "5", "--rounds", "2", "--count-calls",
         "--without-zeus", "--lib-dir", str(fake_nvml_lib), "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=True,
    )  # fmt: skip
    (result,) = json.loads(done.stdout)
    assert result["gpus"] == 2 and result["meter"]["windows"] >= 10 and result["meter"]["summary_us"] > 0
    assert 0 < result["meter"]["median_us"] <= result["meter"]["p99_us"]
    # two energy reads per GPU per window (the sampler's own reads may fall inside the count)
    assert result["meter"]["nvml_calls_per_pair"] >= 4
    assert "--without-zeus" in result["zeus"]  # Zeus's side: scripts/window_cost.py run by hand (docs/measure.md)


def test_a_backlog_of_windows_is_worked_out_in_a_thread_and_the_totals_miss_none(monkeypatch):
    import warnings

    import meter
    from meter.measure import api

    monkeypatch.setattr(api, "SETTLE_EVERY", 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = meter.Meter(gpus=[], price_usd_per_gpu_hour=3.6, sync=None)
    ended = []
    for _ in range(50):
        m.begin_window("step")
        ended.append(m.end_window("step", tokens=2))
    (total,) = m.result().window_totals
    assert m._settler is not None  # noqa: SLF001 (the backlog started one)
    assert total.count == 50 and total.tokens == 100.0
    assert total.usd == pytest.approx(sum(w.usd for w in ended)) and total.duration_s == pytest.approx(
        sum(w.duration_s for w in ended)
    )
    m.close()
