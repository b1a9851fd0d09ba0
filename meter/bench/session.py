"""One benchmarking session on one device: the run file, ceilings, telemetry, the harness, projections.

``meter bench``/``meter run``, every rank of ``meter bench --distributed`` and ``meter acceptance``
all measure through this object::

    session = BenchSession(device, models, metadata, output=path, settings=settings)
    with session:                  # writes the run file, measures (or loads) ceilings, starts telemetry
        session.run(cases)         # each case recorded (and the file rewritten) as it finishes
    # leaving: timeline, projections, status (complete, interrupted on Ctrl-C, failed), last write

The run file is written before the first case (an unwritable path is refused before anything is
measured) and after every case. A later write that fails stops the session; the last valid file
stays in place and :attr:`write_error` says what failed. Leaving on an exception marks the run
``interrupted`` (KeyboardInterrupt) or ``failed`` and lets the exception go on.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernels.args import ModelArgs
from meter.bench.harness import run_cases
from meter.bench.projection import project
from meter.device.select import ComputeDevice
from meter.results.cases import BenchCase
from meter.results.document import Ceilings, OpProbeInfo, OpsInfo, RunDocument, RunMetadata, TelemetryInfo
from meter.results.records import CaseResult, TimingSettings
from meter.results.runfile import RunRecorder, RunWriteError, checked_case


@dataclass(frozen=True)
class TelemetryRequest:
    """What to sample during the cases: ``source`` auto (the run's device), nvml (every visible GPU) or rapl."""

    enabled: bool = True
    source: str = "auto"
    sample_hz: float = 10.0
    off_reason: str = "disabled"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def default_ceilings(
    device: ComputeDevice,
    dtypes: list[str] | None = None,
    *,
    remeasure: bool = False,
    say: Callable[[str], None] = _stderr,
):
    """The device's ceilings in ``dtypes`` (default: every precision it runs): cached when they can be
    trusted, else measured now under a time cap per ceiling, with a line per ceiling."""
    from meter.bench import ceilings as C

    return C.trusted(device, C.default_dtypes(device) if dtypes is None else dtypes, remeasure=remeasure, say=say)


def ops_info(device: ComputeDevice) -> OpsInfo:
    """The fused GEMM ops this torch has, each run once on the device (for the run file and tables)."""
    from kernels.ops import detect_ops, probe_ops

    names = detect_ops()
    probe = probe_ops(device.torch_device)
    return OpsInfo(
        torch_version=names.torch_version,
        grouped_mm=names.grouped_mm,
        scaled_mm=names.scaled_mm,
        scaled_grouped_mm=names.scaled_grouped_mm,
        probed_on=probe.device,
        probes=[OpProbeInfo(r.op, r.ok, r.reason, r.rel_error) for r in probe.results.values()],
    )


def run_metadata(device: ComputeDevice, settings: TimingSettings, models, suite: str | None, *, cuda_graphs: bool):
    """What every run file records about where and how it was measured."""
    from meter.results import metadata as md
    from meter.results.document import MethodInfo, ModelSummary

    return RunMetadata(
        device=device.info(),
        hardware=md.hardware_summary(device.hardware),
        software=md.software_info(),
        git=md.git_info(),
        host=md.host_info(),
        command=md.command_line(),
        suite=suite,
        models={
            name: ModelSummary(
                n_layers=a.n_layers,
                n_moe_layers=a.n_moe_layers,
                n_dense_ffn_layers=a.n_ffn_dense_layers,
                attention=a.attention,
                dim=a.dim,
            )
            for name, a in models.items()
        },
        method=MethodInfo(
            timer="cuda-events (per call, L2 flushed before each)"
            if device.kind == "cuda"
            else "wall-clock (perf_counter)",
            statistic="median of per-call times; spread = IQR / median",
            settings=settings,
            inputs="random, rotated across sets spanning twice a 64 MiB L2; decode caches random-filled",
            cuda_graphs=device.kind == "cuda" and cuda_graphs,
            flops="analytic (meter.analytic), causal attention counted as half; mfu vs dense bf16 datasheet peak",
            cpu_run=device.kind == "cpu",
        ),
    )


def _lower(first: Ceilings, again: Ceilings) -> Ceilings:
    """Of two measurements, the lower of each ceiling (beside the higher, kept as the ceilings)."""
    return dataclasses.replace(
        again,
        copy_bytes_per_s=min(first.copy_bytes_per_s, again.copy_bytes_per_s),
        gemm_flops_per_s={d: min(v, again.gemm_flops_per_s.get(d, v)) for d, v in first.gemm_flops_per_s.items()},
    )


class BenchSession:
    """Measures cases on one device into one run document (written when ``output`` is given)."""

    def __init__(
        self,
        device: ComputeDevice,
        models: Mapping[str, ModelArgs],
        metadata: RunMetadata,
        *,
        output: Path | None,
        settings: TimingSettings,
        telemetry: TelemetryRequest = TelemetryRequest(),
        cuda_graphs: bool = True,
        ceilings: Callable[[], Ceilings | None] | None = None,
        record_as: Callable[[CaseResult], CaseResult] | None = None,
        say: Callable[[str], None] = _stderr,
        remeasure_exceeded: bool = True,
        repeat_ceilings: bool = False,
    ):
        self.device, self.models, self.settings = device, dict(models), settings
        self.output, self.telemetry_request, self.cuda_graphs = output, telemetry, cuda_graphs
        self._metadata = metadata
        self._ceilings_source = ceilings or (lambda: default_ceilings(device, say=say))
        self._record_as = record_as  # how a result goes into this file (a distributed rank 0: "rank 0 only")
        self.say = say
        self.remeasure_exceeded = remeasure_exceeded  # False where a step runner owns every measurement
        self.repeat_ceilings = repeat_ceilings  # measure a CPU's ceilings again at the end: the cost bands' spread
        self.recorder: RunRecorder | None = None
        self.ceilings: Ceilings | None = None
        self.monitor = None
        self._timeline = None
        self.telemetry_info: TelemetryInfo | None = None
        self.results: list[CaseResult] = []  # as the reader will see them, whether or not a file is written
        self.status: str | None = None
        self.write_error: RunWriteError | None = None

    # --- lifetime ---

    def open_run_file(self) -> None:
        """Write the run file's first version; raises RunWriteError for a path that cannot be written."""
        if self.output is not None and self.recorder is None:
            self.recorder = RunRecorder(self.output, metadata=self._metadata)

    def __enter__(self) -> BenchSession:
        self.open_run_file()
        self.ceilings = self._ceilings_source()
        self.monitor, why = self._start_monitor()
        self.telemetry_info = self.monitor.describe() if self.monitor else TelemetryInfo(enabled=False, reason=why)
        self._metadata = dataclasses.replace(
            self._metadata, ceilings=self.ceilings, telemetry=self.telemetry_info, ops=ops_info(self.device)
        )
        self._update(metadata=self._metadata)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._check_ceilings()
        if exc_type is None:
            self.status = "complete"
        elif issubclass(exc_type, KeyboardInterrupt):
            self.status = "interrupted"
        else:
            self.status = "failed"  # a failed write, a closed output pipe, a bug: what finished is kept
            if isinstance(exc, RunWriteError):
                self.write_error = exc
        self.monitor_stop()
        if self.recorder is not None:
            doc = self.recorder.doc
            if self._timeline is not None:
                doc.telemetry_timeline = self._timeline
            doc.projections = self.projections(doc.cases)
            try:
                self.recorder.finish(self.status)
            except RunWriteError as err:
                self.status, self.write_error = "failed", self.write_error or err

    def _check_ceilings(self) -> None:
        """A case past a ceiling by more than 10% puts the ceiling in doubt. Measured here (not by a
        step runner with its own budget), it is measured again and each ceiling taken as the higher of
        the two; a case still past it flags it in the run file and drops it from the cache."""
        from meter.bench import ceilings as C

        past = C.exceeded(self.ceilings, self.results)
        # On a CPU the machine's speed moves between runs (other work): the ceilings are measured
        # again at the end, and the cost bands carry the two measurements' difference.
        repeat = self.repeat_ceilings and self.device.kind == "cpu" and any(r.ok for r in self.results)
        if self.ceilings is None or not (past or repeat):
            return
        if self.remeasure_exceeded:
            why = f"ceilings in doubt: {past[0]}; measuring them again" if past else "ceilings: measuring them again"
            self.say(why + (" (the cost bands carry how far they moved)" if repeat else ""))
            try:
                again = C.measure(self.device, dtypes=list(self.ceilings.gemm_flops_per_s), say=self.say, save=False)
            except Exception as exc:  # the figures measured so far matter more than a second try
                self.say(f"ceilings: measuring again failed ({exc})" + ("; flagged instead" if past else ""))
            else:
                first = self.ceilings
                self.ceilings = C.best_of(first, again) if past else first
                self.ceilings = C.with_repeat(self.ceilings, again if self.ceilings is first else _lower(first, again))
                self.results = [C.rebased(r, self.ceilings) for r in self.results]
                if self.recorder is not None:
                    self.recorder.doc.cases = [C.rebased(r, self.ceilings) for r in self.recorder.doc.cases]
                past = C.exceeded(self.ceilings, self.results)
                if not past and not self.ceilings.flags:
                    C.store(self.device, dataclasses.replace(self.ceilings, repeat=None))
        if past:
            self.say(
                f"ceilings in doubt: {past[0]}"
                + (f" (and {len(past) - 1} more)" if len(past) > 1 else "")
                + "; flagged in the run file and dropped from the cache (the next run measures them again)"
            )
            C.forget(self.device)
            self.ceilings = C.flagged(self.ceilings, past)
        if self.recorder is not None:
            doc = self.recorder.doc
            doc.metadata = dataclasses.replace(doc.metadata, ceilings=self.ceilings)

    def monitor_stop(self) -> None:
        """Stop sampling (once) and keep the timeline and the telemetry description."""
        if self.monitor is None:
            return
        self._timeline = self.monitor.timeline()
        self.monitor.__exit__(None, None, None)
        self.telemetry_info = self.monitor.describe()
        self.monitor = None
        if self.recorder is not None:  # written with the next save
            doc = self.recorder.doc
            doc.metadata = dataclasses.replace(doc.metadata, telemetry=self.telemetry_info)

    def _start_monitor(self):
        from meter.telemetry.monitor import monitor_for_device

        request = self.telemetry_request
        if not request.enabled:
            return None, request.off_reason
        monitor, why = monitor_for_device(
            self.device, source=request.source, interval_s=1.0 / request.sample_hz, say=self.say
        )
        if monitor is None:
            self.say(f"telemetry: {why}; the benchmark goes on without it")
            return None, why
        monitor.__enter__()  # starts sampling; measures the energy counter's update period
        return monitor, None

    # --- measuring ---

    def run(self, cases: list[BenchCase], progress: Callable[[int, int, BenchCase], None] | None = None) -> None:
        """Measure each case and record it as it finishes; KeyboardInterrupt and write errors propagate."""
        run_cases(
            cases,
            self.models,
            self.device,
            record=self._record,
            ceilings=self.ceilings,
            settings=self.settings,
            monitor=self.monitor,
            cuda_graphs=self.cuda_graphs,
            progress=progress,
        )

    def _record(self, result: CaseResult) -> None:
        self.results.append(checked_case(result))
        if self.recorder is not None:
            self.recorder.add_case(self._record_as(result) if self._record_as else result)

    # --- the document ---

    @property
    def doc(self) -> RunDocument | None:
        return self.recorder.doc if self.recorder else None

    def projections(self, cases: list[CaseResult]):
        return [p for name, a in self.models.items() for p in project(name, a, cases, self.device.hardware)]

    def replace_cases(self, cases: list[CaseResult]) -> None:
        """Swap the recorded cases (a distributed run's aggregate of every rank) and rewrite the file."""
        if self.recorder is not None:
            self.recorder.doc.cases = [checked_case(c) for c in cases]
            self.recorder.save()

    def _update(self, **fields: Any) -> None:
        if self.recorder is not None:
            self.recorder.update(**fields)

    def update(self, **fields: Any) -> None:
        """Replace top-level fields of the run document (communication, stragglers, extras) and rewrite it."""
        self._update(**fields)

    def update_metadata(self, **fields: Any) -> None:
        if self.recorder is not None:
            self.recorder.update(metadata=dataclasses.replace(self.recorder.doc.metadata, **fields))
