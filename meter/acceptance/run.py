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
from meter.acceptance.page import page_name, render, render_plain
from meter.acceptance.steps import StepRunner, failure_reason
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
        return "gpu" if self.device.kind == "cpu" else "auto"

    def timeout(self, step: str) -> float:
        gpu = {
            "environment": 120,
            "ceilings": 90,
            "steady": self.steady_s + 30,
            "overhead": 60,
            "session": 60,
            "case": 90,
        }
        cpu = {
            "environment": 60,
            "ceilings": 30,
            "steady": self.steady_s + 20,
            "overhead": 30,
            "session": 30,
            "case": 45,
        }
        return float((cpu if self.device.kind == "cpu" else gpu)[step])


def run_acceptance(opts: AcceptanceOptions, say: Callable[[str], None] = lambda m: print(m, file=sys.stderr)):
    """Every step; returns (the run document, the run file's path, the page's path).

    Everything that measures runs under the step runner, so the budget holds: a step that fails or
    times out is recorded and the next one runs. The ceilings are measured once, in their step (the
    workload session takes them from there, or goes without). The run file and the page are written
    whatever failed; a page that cannot be rendered is replaced by a plain one that says why.
    """
    from meter.bench.session import BenchSession, TelemetryRequest, ops_info, run_metadata
    from meter.config.models import load_model
    from meter.results.runfile import default_run_path

    device, cpu = opts.device, opts.device.kind == "cpu"
    t = table(opts.dry_run)
    models = {t.model: load_model(t.model).args}
    settings = CPU_SETTINGS if cpu else GPU_SETTINGS
    runner = StepRunner(opts.budget_s)
    state: dict[str, object] = {}
    rows: list[Check] = []

    path = default_run_path(opts.out_dir, "acceptance")
    session = BenchSession(
        device,
        models,
        run_metadata(device, settings, models, None, cuda_graphs=True),
        output=path,
        settings=settings,
        telemetry=TelemetryRequest(source=opts.telemetry_source, sample_hz=10.0),
        ceilings=lambda: state.get("ceilings"),  # measured in their step, never again here
        say=say,
        remeasure_exceeded=False,  # a case past them flags them; nothing is measured outside a step
    )
    session.open_run_file()  # refuses an unwritable directory before anything is measured

    def environment() -> None:
        from meter.device.host import software_info

        env_rows, env = K.environment(device, ops_info(device), software_info())
        rows.extend(env_rows)
        state["environment"] = env

    def ceilings() -> None:
        from meter.bench.ceilings import measure, needed_dtypes

        # the table's precisions and the two the checks judge
        dtypes = sorted({*needed_dtypes(t.cases), "bf16", "fp8"})
        state["ceilings"] = measure(device, dtypes=dtypes, say=say)
        rows.extend(K.ceilings(device, state["ceilings"]))

    def no_gpu_telemetry(section: str, name: str, exc: TelemetryMissing) -> None:
        """A dry run on a machine without an NVIDIA driver: nothing to sample, which is not a failure of
        the plumbing it proves (CI runs these steps against the fake NVML driver)."""
        if not opts.dry_run:
            raise exc
        rows.append(Check(section, name, "n/a", detail=f"not checked in this dry run: {exc}"))

    def steady() -> None:
        try:
            monitor = _monitor(device, opts.telemetry_source, 0.01)
        except TelemetryMissing as exc:
            return no_gpu_telemetry("power and clocks", "steady load", exc)
        with monitor:
            rows.extend(K.steady_load_checks(device, monitor, opts.steady_s))

    def overhead() -> None:
        from meter.telemetry.monitor import DEFAULT_COUNTER_PERIOD_S

        try:
            _monitor(device, opts.telemetry_source, 0.01).__exit__(None, None, None)  # telemetry at all, or why not
        except TelemetryMissing as exc:
            return no_gpu_telemetry("telemetry", "sampler overhead at 100 Hz", exc)
        make = lambda interval: _monitor(device, opts.telemetry_source, interval, DEFAULT_COUNTER_PERIOD_S)  # noqa: E731
        rounds, trial = (2, 0.4) if cpu else (3, 1.5)
        rows.extend(K.overhead(device, make, rounds=rounds, trial_s=trial))

    def start_session() -> bool:
        session.__enter__()  # the ops probe, the telemetry sampler, the run file's metadata
        return True

    say(
        f"meter acceptance on {device.label}: {opts.budget_s:.0f} s budget" + (" (CPU dry run)" if opts.dry_run else "")
    )
    entered = False
    try:
        for name, key, fn in (
            ("environment and ops", "environment", environment),
            ("ceilings (copy, bf16 and fp8 GEMM)", "ceilings", ceilings),
            (f"steady load ({opts.steady_s:g} s): power, clocks, energy, nvidia-smi", "steady", steady),
            ("sampler overhead at 100 Hz", "overhead", overhead),
        ):
            say(f"  {name}")
            runner.run(name, opts.timeout(key), fn)
        say("  workload session")
        entered = bool(runner.run("workload session (ops probe, telemetry)", opts.timeout("session"), start_session))
        for case in t.cases:
            say(f"  workload {case.id}")
            if entered:
                runner.run(f"workload {case.id}", opts.timeout("case"), lambda c=case: session.run([c]))
            else:
                runner.skip(f"workload {case.id}", opts.timeout("case"), "the workload session did not start")
    finally:
        # Leaving (even on Ctrl-C): telemetry stops, the cases so far and the status are written.
        session.__exit__(*sys.exc_info())
        doc, page = _finish(opts, session, runner, t, rows, state, path, cpu)
    return doc, path, page


def _finish(opts, session, runner: StepRunner, t, rows: list[Check], state, path: Path, cpu: bool):
    """The table's checks, the report in the run file and the page: each written whatever failed before."""
    from meter.results.atomic import write_text_atomic
    from meter.results.runfile import RunWriteError

    results = {r.id: r for r in session.results}
    peak = opts.device.hardware.peak_flops("bf16") if opts.device.hardware else None
    try:
        rows.extend(table_checks(t, results, session.ceilings, peak, cpu=cpu))
    except Exception as exc:  # a bug in judging must not cost the figures: the page says what failed
        rows.append(Check("workloads", "workload table checks", "fail", detail=f"not judged: {failure_reason(exc)}"))
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
    try:
        session.update(kind="acceptance", acceptance=report)
    except RunWriteError as exc:  # the page still says what was measured, and that the file is behind
        report = dataclasses.replace(report, checks=[*report.checks, _write_failed(exc)])
    doc = dataclasses.replace(session.doc, kind="acceptance", acceptance=report)
    try:
        text = render(doc, str(path), opts.command)
    except Exception as exc:
        text = render_plain(doc, str(path), opts.command, failure_reason(exc))
    write_text_atomic(page, text)
    return doc, page


def _write_failed(exc: BaseException) -> Check:
    return Check("environment", "run file", "fail", detail=f"the last write of the run file failed: {exc}")


def _monitor(device: ComputeDevice, source: str, interval_s: float, counter_period_s: float | None = None):
    from meter.telemetry.monitor import monitor_for_device

    monitor, why = monitor_for_device(device, source=source, interval_s=interval_s, counter_period_s=counter_period_s)
    if monitor is None:
        raise TelemetryMissing(why)
    return monitor


class TelemetryMissing(RuntimeError):
    """No telemetry for a step that measures it; the step is recorded as failed with this reason."""
