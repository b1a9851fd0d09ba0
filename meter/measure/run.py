"""``meter measure -- CMD``: run a command, meter its GPUs, write a job run file.

The run file is created (status ``running``) before the command starts, so an unwritable path is
refused before anything runs; it is rewritten with the job so far every minute (a job killed with
SIGKILL leaves everything up to the last minute), and at the end with the exit status. The job's
exit status becomes meter's.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from meter.config.hardware import HardwareSpec, list_hardware, load_hardware
from meter.config.paths import ConfigLocator
from meter.errors import UsageError
from meter.measure.child import SignalRelay, TokenCounter, start_child, wait_child
from meter.measure.core import SEGMENT_S, JobMeter
from meter.measure.gpus import WatchedGpu, open_gpu_monitor
from meter.measure.inputs import resolve_prices, work_model
from meter.measure.record import JobSetup, bare_job, job_metadata, job_result
from meter.results.document import RunDocument, SoftwareInfo
from meter.results.job import JobResult
from meter.results.load import RunFileError
from meter.results.runfile import RunRecorder, RunWriteError, default_run_path
from meter.telemetry.monitor import Monitor


@dataclass(frozen=True)
class MeasureRequest:
    """Everything ``meter measure`` was asked, already parsed and checked by the command line."""

    command: list[str]
    output: Path | None = None
    tokens: float | None = None
    tokens_regex: re.Pattern[str] | None = None
    tokens_aggregate: str = "last"
    model: str | None = None
    phase: str = "train"
    seq: int = 4096
    hardware: str | None = None
    gpus: int | None = None  # stated, for a job whose GPUs NVML cannot see
    price: float | None = None
    tier: str | None = None
    usd_per_kwh: float | None = None
    pue: float | None = None
    interval_s: float = 0.1
    segment_s: float = SEGMENT_S
    meter_command: list[str] = field(default_factory=list)  # meter's own command line, for the metadata


@dataclass(frozen=True)
class MeasureOutcome:
    doc: RunDocument
    path: Path
    exit_code: int  # the job's exit status, which is meter's

    @property
    def job(self) -> JobResult:
        assert self.doc.job is not None
        return self.doc.job


def measure(req: MeasureRequest, locator: ConfigLocator, say: Callable[[str], None]) -> MeasureOutcome:
    if not req.command:
        raise UsageError("give the command to measure after --, e.g. meter measure -- python train.py")
    if req.tokens is not None and req.tokens_regex is not None:
        raise UsageError("--tokens and --tokens-from-log are two sources of the same count; give one")
    with SignalRelay() as relay:  # before any thread starts, so that none of them takes a signal
        job = _prepare(req, locator, say)
        counter = TokenCounter(req.tokens_regex, req.tokens_aggregate) if req.tokens_regex is not None else None
        meter = JobMeter(
            job.monitor, job.gpus, segment_s=req.segment_s, on_segment=lambda: _checkpoint(job, meter, req, say)
        )
        meter.start()
        try:
            proc = start_child(req.command, relay, capture=counter is not None)
        except BaseException:
            meter.stop()
            job.recorder.update(job=job_result(meter, job.setup, source="measure", command=req.command))
            job.recorder.finish("failed")
            raise
        relay.attach(proc)
        child = wait_child(proc, relay, counter)
        meter.stop()
    return _finish(req, job, meter, child, counter, say)


@dataclass
class _Job:
    """A job about to run: its GPUs' monitor, what it is priced against, and its run file."""

    monitor: Monitor | None
    gpus: list[WatchedGpu]
    setup: JobSetup
    software: SoftwareInfo
    recorder: RunRecorder


def _prepare(req: MeasureRequest, locator: ConfigLocator, say: Callable[[str], None]) -> _Job:
    """Everything that can be refused, refused before the command starts (and NVML released if so)."""
    specs = list_hardware(locator)
    stated = load_hardware(req.hardware, locator) if req.hardware else None
    monitor, gpus, why = open_gpu_monitor(None, specs=specs, interval_s=req.interval_s, say=say)
    try:
        setup = _setup(req, locator, stated or _matched_hardware(gpus), gpus, why)
        software = _software()
        recorder = RunRecorder(
            req.output or default_run_path(Path("runs"), "job"),
            metadata=job_metadata(gpus, None, setup, command=req.meter_command, software=software),
            kind="job",
            job=JobResult(source="measure", duration_s=0.0, command=list(req.command)),
            keep_existing=True,  # two jobs given one -o: both are kept
        )
        if recorder.moved_from is not None:
            say(f"meter: {recorder.moved_from} already exists; this job is written to {recorder.path}")
    except BaseException:
        if monitor is not None:
            monitor.__exit__(None, None, None)  # nothing was started; this releases NVML
        raise
    if why:
        say(f"meter: {why}; measuring time only (energy absent, not 0)")
    return _Job(monitor, gpus, setup, software, recorder)


def _finish(req: MeasureRequest, job: _Job, meter: JobMeter, child, counter, say) -> MeasureOutcome:
    tokens, source = _tokens(req, counter, say)
    notes = [f"no token count: {counter.incomplete}"] if counter is not None and counter.incomplete else []
    result = job_result(
        meter,
        job.setup,
        source="measure",
        command=req.command,
        exit_status=child.returncode,
        signal=child.killed_by,
        interrupted=bool(child.signals),
        tokens=tokens,
        tokens_source=source,
        notes=notes,
    )
    metadata = job_metadata(job.gpus, meter.describe(), job.setup, command=req.meter_command, software=job.software)
    try:
        job.recorder.update(job=result, telemetry_timeline=meter.timeline(), metadata=metadata)
    except (RunFileError, ValueError) as exc:  # never lose the job's time and exit status to one bad figure
        why = exc.detail() if isinstance(exc, RunFileError) else str(exc)
        say(f"meter: {why}; the run file keeps the job's time and exit status without it")
        job.recorder.update(job=bare_job(result, why), telemetry_timeline=None, metadata=metadata)
    if child.signals or child.killed_by:
        status = "interrupted"
    else:
        status = "complete" if child.returncode == 0 else "failed"
    job.recorder.finish(status)
    return MeasureOutcome(job.recorder.doc, job.recorder.path, child.exit_code)


def _software():
    from meter.device.host import software_info

    return software_info(import_torch=False)


def _matched_hardware(gpus) -> HardwareSpec | None:
    """The GPUs' hardware config when they all match the same one (MFU and price need one)."""
    names = {g.hardware.name if g.hardware else None for g in gpus}
    if len(names) == 1 and None not in names:
        return gpus[0].hardware
    return None


def _setup(req: MeasureRequest, locator: ConfigLocator, hardware, gpus, why) -> JobSetup:
    notes = []
    if gpus and hardware is None:
        seen = sorted({g.name for g in gpus})
        if len(seen) > 1:
            notes.append(f"the GPUs differ ({', '.join(seen)}): give --hardware NAME for MFU and a price")
        else:
            notes.append(f"no hardware config matches {seen[0]}: give --hardware NAME for MFU and a price")
    if gpus and req.gpus is not None and req.gpus != len(gpus):
        raise UsageError(f"--gpus {req.gpus}: NVML sees {len(gpus)} GPU(s) this job may use; drop --gpus")
    prices = resolve_prices(
        price=req.price,
        hardware=hardware,
        tier=req.tier,
        usd_per_kwh=req.usd_per_kwh,
        pue=req.pue,
        locator=locator,
    )
    if prices.usd_per_gpu_hour is None:
        notes.append("no rental price (give --price USD, or --hardware NAME of a GPU in the price table)")
    model = None
    if req.model is not None:
        model = work_model(req.model, phase=req.phase, seq=req.seq, hardware=hardware, locator=locator)
    if not gpus and not req.gpus:
        notes.append("GPU count unknown without NVML: give --gpus N for dollars and MFU")
    return JobSetup(prices=prices, model=model, hardware=hardware, stated_gpus=req.gpus, no_telemetry=why, notes=notes)


def _tokens(req: MeasureRequest, counter: TokenCounter | None, say) -> tuple[float | None, str | None]:
    if req.tokens is not None:
        return req.tokens, "--tokens"
    if counter is None:
        return None, None
    if counter.incomplete:
        say(f"meter: {counter.incomplete}; no token count, no rates")
        return None, None
    if counter.unreadable:
        say(f"meter: {counter.unreadable} match(es) of --tokens-from-log held no number and were skipped")
    if counter.total is None:
        say(f"meter: --tokens-from-log {req.tokens_regex.pattern!r} matched nothing the job printed; no rates")
        return None, None
    if not math.isfinite(counter.total):
        say(f"meter: --tokens-from-log counts add up to more than a float holds ({counter.total}); no rates")
    return counter.total, "log"  # the record notes an overflowed count as absent, with the reason


def _checkpoint(job: _Job, meter: JobMeter, req: MeasureRequest, say) -> None:
    """Rewrite the run file with the job so far (status still ``running``)."""
    try:
        job.recorder.update(job=job_result(meter, job.setup, source="measure", command=req.command))
    except (RunWriteError, RunFileError, ValueError) as exc:  # the job goes on; the final write copes
        say(f"meter: checkpoint not written ({exc})")


def command_from_argv(argv: Sequence[str]) -> list[str]:
    """The command after ``--`` (argparse keeps the separator in a REMAINDER)."""
    argv = list(argv)
    return argv[1:] if argv and argv[0] == "--" else argv


def stderr_say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
