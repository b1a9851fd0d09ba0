"""From a job meter's measurements to the run file's typed job section and metadata."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from meter.config.hardware import HardwareSpec
from meter.measure.core import JobMeter, Span
from meter.measure.figures import Prices, WorkModel, cost_figures, device_windows, mean_utilization, work_figures
from meter.measure.gpus import WatchedGpu
from meter.results.document import DeviceInfo, RunMetadata, TelemetryInfo
from meter.results.job import JobResult, JobWindow, JobWindowTotal

T = TypeVar("T")


@dataclass(frozen=True)
class JobSetup:
    """What the job is priced and rated against, decided before it starts."""

    prices: Prices
    model: WorkModel | None = None
    hardware: HardwareSpec | None = None  # the GPUs' config, matched by NVML name or given
    stated_gpus: int | None = None  # GPUs the job used, when NVML cannot see them
    no_telemetry: str | None = None  # why there is no GPU telemetry
    notes: list[str] = field(default_factory=list)

    def gpu_count(self, meter: JobMeter) -> int:
        return len(meter.gpus) if meter.gpus else (self.stated_gpus or 0)


class DeferredWindow(JobWindow):
    """A :class:`JobWindow` whose figures are worked out when first read, then a plain ``JobWindow``.

    Ending a window only reads the energy counters; summarising the samples in between is most of
    a window's cost, and a loop that meters every step rarely reads every step's figures. The
    first attribute read fills in every field and turns the object into the ``JobWindow`` it
    stands for (equal, printable and serialisable as one). ``name`` and ``tokens`` are known
    at once.
    """

    def __init__(self, name: str, tokens: float | None, work_out: Callable[[], JobWindow]):  # noqa: D107
        object.__setattr__(self, "__dict__", {"name": name, "tokens": tokens, "_work_out": work_out})

    def __getattribute__(self, attribute: str):
        # the fields with defaults are also class attributes, so every read is looked at here (only
        # until the figures are in: the object is then a plain JobWindow)
        if attribute in _DEFERRED_FIELDS:
            _work_out(self)
        return object.__getattribute__(self, attribute)

    def __eq__(self, other: object) -> bool:
        return settled(self) == (settled(other) if isinstance(other, JobWindow) else other)

    __hash__ = JobWindow.__hash__


_WORK_OUT_LOCK = threading.Lock()
_FIELDS = tuple(f.name for f in dataclasses.fields(JobWindow))
_DEFERRED_FIELDS = frozenset(_FIELDS) - {"name", "tokens"}


def _work_out(window: DeferredWindow) -> None:
    with _WORK_OUT_LOCK:
        state = object.__getattribute__(window, "__dict__")
        work_out = state.get("_work_out")
        if work_out is None:
            return  # another thread just did
        figures = work_out()
        for name in _FIELDS:
            object.__setattr__(window, name, getattr(figures, name))
        del state["_work_out"]
        object.__setattr__(window, "__class__", JobWindow)


def settled(window: JobWindow) -> JobWindow:
    """``window`` with its figures worked out (a no-op for a plain ``JobWindow``)."""
    if type(window) is DeferredWindow:
        window.energy_j  # noqa: B018 (the first read works the figures out)
    return window


def window_record(span: Span, name: str, tokens: float | None, *, gpus: int, setup: JobSetup) -> JobWindow:
    """One API window: time, energy, dollars and, given tokens, its rates."""
    tele = span.telemetry
    energy = tele.energy_j if tele is not None else None
    cost = cost_figures(gpus=gpus, duration_s=span.duration_s, energy_j=energy, prices=setup.prices)
    work = None
    if tokens is not None:
        work = work_figures(
            tokens=tokens, source="api", duration_s=span.duration_s, gpus=gpus, energy_j=energy, model=setup.model
        )
        work, _ = finite_figures(work, [])
    return JobWindow(
        name=name,
        start_s=span.start_s,
        end_s=span.end_s,
        duration_s=span.duration_s,
        gpus=gpus,
        energy_j=energy,
        usd=cost.gpu_usd,
        energy_usd=cost.energy_usd,
        tokens=tokens,
        tokens_per_s=work.tokens_per_s if work else None,
        joules_per_token=work.joules_per_token if work else None,
        achieved_tflops=work.achieved_tflops if work else None,
        mfu=work.mfu if work else None,
        telemetry=tele,
    )


def job_result(
    meter: JobMeter,
    setup: JobSetup,
    *,
    source: str,
    command: list[str] | None = None,
    exit_status: int | None = None,
    signal: str | None = None,
    interrupted: bool = False,
    tokens: float | None = None,
    tokens_source: str | None = None,
    windows: list[JobWindow] | None = None,
    window_totals: list[JobWindowTotal] | None = None,
    windows_not_kept: int = 0,
    notes: list[str] | None = None,
) -> JobResult:
    """The job section of the run file, from everything measured so far."""
    window = meter.job_window()
    duration = meter.elapsed_s()
    if window is not None and window.start_s is not None and window.end_s is not None:
        duration = window.end_s - window.start_s  # wall-clock, first segment to last
    energy = window.energy_j if window is not None else None
    gpus = setup.gpu_count(meter)
    extra = list(notes or [])
    work = None
    if tokens is not None and not math.isfinite(tokens):
        extra.append(f"token count {tokens} is beyond what a float holds; tokens and rates absent")
        tokens = None
    if tokens is not None:
        work = work_figures(
            tokens=tokens,
            source=tokens_source or source,
            duration_s=duration,
            gpus=gpus,
            energy_j=energy,
            model=setup.model,
        )
        work, extra = finite_figures(work, extra)
    if work is not None and work.mfu is not None and work.mfu > 1:
        extra.append(
            f"MFU {work.mfu:.3g} is above 1: the token count, the model or the sequence length is not the job's"
        )
    return JobResult(
        source=source,  # type: ignore[arg-type]
        duration_s=duration,
        command=list(command or []),
        exit_status=exit_status,
        signal=signal,
        interrupted=interrupted,
        gpus=meter.gpu_records(window),
        telemetry=window,
        energy_reason=_energy_reason(window, setup),
        avg_utilization_ratio=mean_utilization(list(device_windows(window).values())) if window else None,
        work=work,
        cost=cost_figures(gpus=gpus, duration_s=duration, energy_j=energy, prices=setup.prices),
        windows=list(windows or []),
        window_totals=[finite_figures(t, extra)[0] for t in window_totals or []],
        windows_not_kept=windows_not_kept,
        notes=list(setup.notes) + extra,
    )


def finite_figures(record: T, notes: list[str]) -> tuple[T, list[str]]:
    """``record`` with every optional figure that overflowed (inf) or could not be computed (NaN) set to
    None, and a note per figure saying so: what was measured is written, never refused for one figure."""
    changes = {}
    for f in dataclasses.fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        if isinstance(value, float) and not math.isfinite(value) and f.default is None:
            changes[f.name] = None
            notes.append(f"{type(record).__name__} {f.name} could not be computed ({value}); recorded as absent")
    return (dataclasses.replace(record, **changes) if changes else record), notes  # type: ignore[type-var]


def without_totals(result: JobResult, why: str) -> JobResult:
    """The job with its windows but without the job-wide figures (work, cost, GPUs' telemetry): the first
    fallback when the full record is refused, so that windows are never what is lost."""
    return dataclasses.replace(
        result,
        gpus=[],
        telemetry=None,
        avg_utilization_ratio=None,
        work=None,
        cost=None,
        notes=[*result.notes, f"job-wide figures left out of this file: {why}"],
    )


def bare_job(result: JobResult, why: str) -> JobResult:
    """The job with only what cannot contradict itself: its time, how it ended, its command.

    The last resort when the full record is refused by the run-file checks (``why``): the run file
    still gets the job's duration and exit status, and says what was left out and why.
    """
    return dataclasses.replace(
        result,
        gpus=[],
        telemetry=None,
        avg_utilization_ratio=None,
        work=None,
        cost=None,
        windows=[],
        window_totals=[],
        notes=[*result.notes, f"figures left out of this file: {why}"],
    )


def _energy_reason(window, setup: JobSetup) -> str | None:
    if window is None:
        return setup.no_telemetry or "no GPU telemetry"
    if window.energy_j is None:
        return "; ".join(window.low_confidence_reasons) or "no energy reading"
    return None


def job_metadata(
    gpus: list[WatchedGpu], telemetry: TelemetryInfo | None, setup: JobSetup, *, command: list[str], software
) -> RunMetadata:
    """Where the job ran: its first GPU (or the stated hardware, or the host), host, software, git."""
    from meter.device import host as probe
    from meter.results import metadata as md

    if telemetry is None:
        telemetry = TelemetryInfo(enabled=False, reason=setup.no_telemetry)
    return RunMetadata(
        device=_device(gpus, setup),
        hardware=md.hardware_summary(setup.hardware),
        software=software,
        git=probe.git_info(),
        host=probe.host_info(),
        command=command,
        telemetry=telemetry,
    )


def _device(gpus: list[WatchedGpu], setup: JobSetup) -> DeviceInfo:
    if gpus:
        first = gpus[0]
        return DeviceInfo(
            kind="cuda",
            torch_device="cuda:0",
            name=first.name,
            uuid=first.uuid,
            hardware_config=first.hardware.name if first.hardware else None,
            memory_bytes=first.memory_total_bytes,
        )
    hw = setup.hardware
    if hw is not None and hw.kind == "gpu":
        return DeviceInfo(
            kind="cuda",
            torch_device="cuda",
            name=f"{hw.display_name} (stated, not seen through NVML)",
            hardware_config=hw.name,
        )
    from meter.device.host import cpu_model

    return DeviceInfo(kind="cpu", torch_device="cpu", name=cpu_model(), hardware_config=hw.name if hw else None)
