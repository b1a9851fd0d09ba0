"""``meter acceptance`` end to end on the CPU: the dry run against the fake NVML driver and the fake
nvidia-smi (every step, the run file, the page, the JSON), the step runner's timeouts and budget,
and the refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from meter.acceptance.steps import StepRunner
from meter.results import load_run
from tests.conftest import run_meter
from tests.fake_nvml import FakeGpu, Scenario, with_fake_smi

pytestmark = pytest.mark.slow


def test_the_dry_run_proves_the_command_end_to_end(fake_nvml, tmp_path: Path):
    env = with_fake_smi(fake_nvml(Scenario(gpus=[FakeGpu(power_mw=[650_000])])), tmp_path / "bin")
    env["METER_CACHE_DIR"] = str(tmp_path / "cache")
    out = tmp_path / "results"
    r = run_meter("acceptance", "--dry-run", "-o", str(out), "--json", env=env, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert {"run_file", "page", "status", "steps", "checks", "budget_s", "elapsed_s", "dry_run", "environment"} <= set(
        report
    )
    assert report["dry_run"] is True and report["elapsed_s"] < report["budget_s"]
    assert [s["status"] for s in report["steps"]] == ["ok"] * len(report["steps"]), report["steps"]

    doc = load_run(report["run_file"])
    assert doc.kind == "acceptance" and doc.status == "complete" and doc.cpu
    acc = doc.acceptance
    assert {c.section for c in acc.checks} == {"environment", "ceilings", "power and clocks", "telemetry", "workloads"}
    by_name = {c.name: c for c in acc.checks}
    energy = next(c for c in acc.checks if c.name.startswith("energy counter vs integrated power"))
    assert energy.verdict == "pass" and energy.value < 0.05  # the fake driver's counter integrates its power
    smi = by_name["sampler vs nvidia-smi, power"]
    assert smi.verdict == "pass" and "paired readings" in smi.detail  # the fake nvidia-smi answered
    assert by_name["power under load"].value == pytest.approx(650, rel=0.05)
    assert next(c for c in acc.checks if c.name.startswith("power limit")).name.startswith("power limit 700 W")
    # every GPU target is judged n/a on a CPU, with the figure still shown
    workloads = [c for c in acc.checks if c.section == "workloads"]
    assert all(c.verdict == "n/a" for c in workloads)
    assert by_name["MoE grouped GEMM, 512 rows/expert (EP4 slice)"].value > 0
    assert "unsupported" in by_name["fp8 blockwise expert GEMMs, 512 rows/expert"].detail  # no blockwise on a CPU
    # the workload cases are in the run file, with their backends and parts
    ids = {c.id for c in doc.cases}
    assert "moe.prefill.tpe512.bf16.ep4" in ids and "mla.train.b1-s256.bf16" in ids
    moe = next(c for c in doc.cases if c.id == "moe.prefill.tpe512.bf16.ep4")
    assert moe.details.backend == "grouped_mm" and moe.parts and moe.telemetry.calls >= 1
    ceilings = doc.metadata.ceilings
    assert doc.metadata.ops.probes and (ceilings.gemm("fp8") or "no fp8 ceiling" in ceilings.method.gemm)

    page = Path(report["page"])
    assert page.parent == out and page.name.endswith("-cpu-dry-run.md")
    text = page.read_text()
    assert "CPU DRY RUN" in text and "## Workloads" in text and "| sampler vs nvidia-smi, power |" in text


def test_steps_time_out_fail_and_are_skipped_when_the_budget_is_spent():
    runner = StepRunner(budget_s=30.0, reserve_s=0.0)

    def slow():
        time.sleep(5)

    def broken():
        raise ValueError("no such thing")

    assert runner.run("slow", 1.0, slow) is None
    assert runner.run("broken", 5.0, broken) is None
    assert runner.run("fine", 5.0, lambda: 42) == 42
    [a, b, c] = runner.records
    assert (a.status, b.status, c.status) == ("timed out", "failed", "ok")
    assert a.seconds < 2.5 and "stopped after 1 s (its timeout)" in a.reason
    assert b.reason.startswith("ValueError: no such thing")

    now = [0.0]
    spent = StepRunner(budget_s=60.0, reserve_s=10.0, clock=lambda: now[0])
    now[0] = 49.5  # 0.5 s left after the reserve: less than a step needs
    assert spent.run("late", 30.0, lambda: 1) is None
    assert spent.records[0].status == "skipped" and "budget" in spent.records[0].reason


def test_a_timeout_that_something_swallows_fires_again():
    """A StepTimeout raised inside a finalizer is dropped by Python; the alarm fires again until the
    step has stopped (here the first one is swallowed on purpose)."""
    from meter.acceptance.steps import StepTimeout

    runner = StepRunner(budget_s=60.0, reserve_s=0.0)
    swallowed = []

    def stubborn():
        while True:
            try:
                time.sleep(0.01)
            except StepTimeout:
                if not swallowed:
                    swallowed.append(True)  # as a finalizer would: ignored, the loop goes on
                    continue
                raise

    runner.run("stubborn", 1.0, stubborn)
    assert swallowed and runner.records[0].status == "timed out"
    assert runner.run("after", 5.0, lambda: "ran") == "ran"


def test_the_timeout_interrupts_a_benchmark_case_and_the_next_step_runs():
    """A step that overruns inside the harness is stopped, even though the harness records broken
    cases and goes on (the timeout is not an Exception it could swallow)."""
    from meter.bench import harness
    from meter.config.hardware import list_hardware
    from meter.config.models import load_model
    from meter.device.select import select_device
    from meter.results import BenchCase, TimingSettings

    tiny = load_model("deepseek-v3-tiny").args
    cpu = select_device("cpu", list_hardware())
    endless = TimingSettings(warmup_s=0.0, min_warmup_calls=1, min_time_s=600.0, min_repeats=1, max_repeats=10**9)
    out = []
    runner = StepRunner(budget_s=60.0, reserve_s=0.0)
    case = BenchCase("deepseek-v3-tiny", "ffn", "prefill", seq=16, dtype="fp32")
    runner.run(
        "endless", 1.0, lambda: harness.run_cases([case], {case.model: tiny}, cpu, record=out.append, settings=endless)
    )
    assert runner.records[0].status == "timed out" and out == []
    assert runner.run("after", 5.0, lambda: "ran") == "ran"


def test_acceptance_refuses_what_it_cannot_do(tmp_path: Path):
    r = run_meter("acceptance", "--device", "auto", env={"CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 2 and "no CUDA device here" in r.stderr and "--dry-run" in r.stderr
    r = run_meter("acceptance", "--dry-run", "--device", "cuda")
    assert r.returncode == 2 and "--dry-run runs on the CPU" in r.stderr
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    r = run_meter("acceptance", "--dry-run", "-o", str(blocked / "sub"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    r = run_meter("acceptance", "--dry-run", "--budget", "5")
    assert r.returncode == 2 and "--budget" in r.stderr


STEPS = ("environment", "ceilings", "steady", "overhead", "session", "workload", "checks", "page", "no-nvml")


@pytest.mark.parametrize("failing", STEPS)
def test_each_step_failing_in_turn_still_leaves_the_run_file_and_the_page(tmp_path: Path, monkeypatch, failing):
    """Every step is made to fail in turn (the others replaced by quick stand-ins): the failure is
    recorded, the steps after it run, and the run file and the page are written."""
    import contextlib

    from meter.acceptance import run as R
    from meter.bench import ceilings as C
    from meter.bench import session as S
    from meter.config.hardware import list_hardware
    from meter.device.select import select_device
    from meter.results.document import OpsInfo
    from tests.runs import make_ceilings

    def part(name, value):
        def call(*args, **kwargs):
            if failing == name:
                raise RuntimeError(f"{name} broke")
            return value() if callable(value) else value

        return call

    monkeypatch.setattr(S, "ops_info", lambda device: OpsInfo(torch_version="t", probes=[]))
    monkeypatch.setattr(R.K, "environment", part("environment", ([], {"torch": "t"})))
    monkeypatch.setattr(C, "measure", part("ceilings", make_ceilings(1e10, {"bf16": 1e11})))

    def monitor(*args, **kwargs):
        if failing == "no-nvml":  # a dry run on a machine without an NVIDIA driver
            raise R.TelemetryMissing("no GPU telemetry: libnvidia-ml.so.1 was not found")
        return contextlib.nullcontext()

    monkeypatch.setattr(R, "_monitor", monitor)
    monkeypatch.setattr(R.K, "steady_load_checks", part("steady", []))
    monkeypatch.setattr(R.K, "overhead", part("overhead", []))
    monkeypatch.setattr(S.BenchSession, "_start_monitor", part("session", (None, "off in this test")))
    monkeypatch.setattr(S.BenchSession, "run", lambda self, cases, progress=None: part("workload", None)())
    monkeypatch.setattr(R, "table_checks", part("checks", []))
    monkeypatch.setattr(R, "render", part("page", "# the page\n"))
    monkeypatch.setattr(R.AcceptanceOptions, "telemetry_source", "auto")

    cpu = select_device("cpu", list_hardware())
    opts = R.AcceptanceOptions(device=cpu, out_dir=tmp_path, budget_s=120.0, dry_run=True, steady_s=0.1)
    doc, path, page = R.run_acceptance(opts, say=lambda m: None)

    assert page.is_file() and path.is_file()
    saved = load_run(path)
    assert saved.kind == "acceptance" and saved.acceptance.page == str(page)
    broken = [s for s in saved.acceptance.steps if s.status != "ok"]
    text = page.read_text()
    if failing == "no-nvml":  # not a failure of the plumbing a dry run proves: n/a, said why
        assert not broken and text == "# the page\n"
        na = [c for c in saved.acceptance.checks if c.verdict == "n/a" and "libnvidia-ml" in (c.detail or "")]
        assert {c.section for c in na} == {"power and clocks", "telemetry"}
    elif failing == "checks":
        assert not broken and any(
            c.name == "workload table checks" and c.verdict == "fail" for c in saved.acceptance.checks
        )
    elif failing == "page":
        assert not broken and "could not be rendered" in text and "page broke" in text
    elif failing == "session":
        start = next(s for s in saved.acceptance.steps if s.name.startswith("workload session"))
        assert start.status == "failed" and "session broke" in start.reason
        assert all(s.status == "skipped" for s in broken[1:]) and len(broken) == 1 + len(R.table(True).cases)
    else:
        assert broken and all(failing + " broke" in s.reason for s in broken), broken
        assert text == "# the page\n"
        later = saved.acceptance.steps[saved.acceptance.steps.index(broken[0]) + 1 :]
        assert all(s.status == "ok" for s in later if failing + " broke" not in (s.reason or ""))
