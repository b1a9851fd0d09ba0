"""``meter acceptance``, the whole run: steps under the budget, one run file, one results page.

Order: environment and ops (CUDA starts here), ceilings, the steady load (power, clocks, energy,
nvidia-smi), the sampler's overhead, then the workload table through one
:class:`meter.bench.session.BenchSession`, each case its own step. The run file is written
before the first step (an unwritable directory is refused before anything is measured), after
every case, and last with the steps and checks (``kind: acceptance``); then the page.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meter.acceptance import checks as K
from meter.acceptance.page import page_name, render
from meter.acceptance.steps import StepRunner
from meter.acceptance.table import table, table_checks
from meter.device.select import ComputeDevice
from meter.results.acceptance import AcceptanceReport, Check
from meter.results.document import RunDocument
from meter.results.records import TimingSettings

GPU_SETTINGS = TimingSettings(warmup_s=0.2, min_warmup_calls=3, min_time_s=0.4, min_repeats=10, max_repeats=500)
CPU_SETTINGS = TimingSettings(warmup_s=0.02, min_warmup_calls=1, min_time_s=0.05, min_repeats=3, max_repeats=30)


@dataclass(frozen=True)
class AcceptanceOptions:
    device: ComputeDevice
    out_dir: Path
    budget_s: float
    dry_run: bool
    steady_s: float
    command: str = "meter acceptance"

    @property
    def telemetry_source(self) -> str:
        # A dry run on the CPU reads the GPUs NVML shows (the fake driver in CI), not the CPU's RAPL.
        return "nvml" if self.device.kind == "cpu" else "auto"

    def timeout(self, step: str) -> float:
        gpu = {"environment": 120, "ceilings": 120, "steady": self.steady_s + 30, "overhead": 60, "case": 90}
        cpu = {"environment": 60, "ceilings": 90, "steady": self.steady_s + 20, "overhead": 30, "case": 45}
        return float((cpu if self.device.kind == "cpu" else gpu)[step])


def run_acceptance(opts: AcceptanceOptions, say: Callable[[str], None] = lambda m: print(m, file=sys.stderr)):
    """Every step; returns (the run document, the page's path)."""
    from meter.bench.session import BenchSession, TelemetryRequest, default_ceilings, ops_info, run_metadata
    from meter.config.models import load_model
    from meter.results.runfile import default_run_path

    device, cpu = opts.device, opts.device.kind == "cpu"
    t = table(opts.dry_run)
    models = {t.model: load_model(t.model).args}
    settings = CPU_SETTINGS if cpu else GPU_SETTINGS
    runner = StepRunner(opts.budget_s)
    state: dict[str, object] = {}
    rows: list[Check] = []

    def measured_ceilings():
        return state.get("ceilings") or default_ceilings(device, say=say)

    path = default_run_path(opts.out_dir, "acceptance")
    session = BenchSession(
        device,
        models,
        run_metadata(device, settings, models, None, cuda_graphs=True),
        output=path,
        settings=settings,
        telemetry=TelemetryRequest(source=opts.telemetry_source, sample_hz=10.0),
        ceilings=measured_ceilings,
        say=say,
    )
    session.open_run_file()  # refuses an unwritable directory before anything is measured

    def environment() -> None:
        from meter.results.metadata import software_info

        env_rows, env = K.environment(device, ops_info(device), software_info())
        rows.extend(env_rows)
        state["environment"] = env

    def ceilings() -> None:
        from meter.bench.ceilings import measure

        state["ceilings"] = measure(device)
        rows.extend(K.ceilings(device, state["ceilings"]))

    def steady() -> None:
        monitor = _monitor(device, opts.telemetry_source, 0.01)
        with monitor:
            rows.extend(K.steady_load_checks(device, monitor, opts.steady_s))

    def overhead() -> None:
        from meter.telemetry.monitor import DEFAULT_COUNTER_PERIOD_S

        _monitor(device, opts.telemetry_source, 0.01).__exit__(None, None, None)  # telemetry at all, or why not
        make = lambda interval: _monitor(device, opts.telemetry_source, interval, DEFAULT_COUNTER_PERIOD_S)  # noqa: E731
        rounds, trial = (2, 0.4) if cpu else (3, 1.5)
        rows.extend(K.overhead(device, make, rounds=rounds, trial_s=trial))

    say(
        f"meter acceptance on {device.label}: {opts.budget_s:.0f} s budget" + (" (CPU dry run)" if opts.dry_run else "")
    )
    for name, key, fn in (
        ("environment and ops", "environment", environment),
        ("ceilings (copy, bf16 and fp8 GEMM)", "ceilings", ceilings),
        (f"steady load ({opts.steady_s:g} s): power, clocks, energy, nvidia-smi", "steady", steady),
        ("sampler overhead at 100 Hz", "overhead", overhead),
    ):
        say(f"  {name}")
        runner.run(name, opts.timeout(key), fn)
    with session:
        for case in t.cases:
            say(f"  workload {case.id}")
            runner.run(f"workload {case.id}", opts.timeout("case"), lambda c=case: session.run([c]))
    results = {r.id: r for r in session.results}
    peak = device.hardware.peak_flops("bf16") if device.hardware else None
    rows.extend(table_checks(t, results, session.ceilings, peak, cpu=cpu))
    report = AcceptanceReport(
        budget_s=opts.budget_s,
        elapsed_s=round(runner.elapsed_s, 1),
        dry_run=opts.dry_run,
        steps=runner.records,
        checks=rows,
        environment=state.get("environment") or {},  # type: ignore[arg-type]
    )
    doc: RunDocument = session.doc
    page = opts.out_dir / page_name(dataclasses.replace(doc, acceptance=report))
    report = dataclasses.replace(report, page=str(page))
    session.update(kind="acceptance", acceptance=report)
    from meter.results.atomic import write_text_atomic

    write_text_atomic(page, render(session.doc, str(path), opts.command))
    return session.doc, path, page


def _monitor(device: ComputeDevice, source: str, interval_s: float, counter_period_s: float | None = None):
    from meter.telemetry.monitor import monitor_for_device

    monitor, why = monitor_for_device(device, source=source, interval_s=interval_s, counter_period_s=counter_period_s)
    if monitor is None:
        raise TelemetryMissing(why)
    return monitor


class TelemetryMissing(RuntimeError):
    """No telemetry for a step that measures it; the step is recorded as failed with this reason."""
