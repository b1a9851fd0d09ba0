"""``meter.Meter``: energy, dollars and rates of the windows of a training or serving loop.

    import meter

    m = meter.Meter(gpus=[0], price_usd_per_gpu_hour=2.0)   # price optional: the price table otherwise
    m.begin_window("step")
    ...                                                      # the work
    w = m.end_window("step", tokens=4096)
    w.duration_s, w.energy_j, w.usd, w.tokens_per_s, w.joules_per_token   # and w.mfu with a model
    m.save("runs/my-job.json")                               # a job run file

In the spirit of Zeus's ``ZeusMonitor``: windows have unique names and may nest or overlap, from
several threads at once. At each window edge the meter waits for the GPU when torch has
initialised CUDA (``sync="auto"``), so a window covers the kernels launched inside it. Without
NVML it still times windows (energy None, never 0). Importing ``meter`` does not import torch.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from meter.config.hardware import list_hardware, load_hardware
from meter.config.paths import ConfigLocator
from meter.measure.core import SEGMENT_S, JobMeter
from meter.measure.gpus import cuda_uuids_if_initialised, open_gpu_monitor
from meter.measure.inputs import given_work_model, resolve_prices, work_model
from meter.measure.ledger import MAX_WINDOWS, Ledger
from meter.measure.record import (
    DeferredWindow,
    JobSetup,
    bare_job,
    job_metadata,
    job_result,
    settled,
    window_record,
    without_totals,
)
from meter.results.job import JobResult, JobWindow
from meter.results.load import RunFileError
from meter.results.runfile import RunRecorder, default_run_path
from meter.telemetry.monitor import WindowHandle

SETTLE_EVERY = 4096  # windows left unsettled at most (between segments, or with segment_s=0)


class MeterWarning(UserWarning):
    """Something the numbers lack (no GPU telemetry, no price), said once when the meter starts."""


class Meter:
    """Meters the GPUs of this process (``gpus``: CUDA indices; default all it can see).

    Args:
        gpus: CUDA device indices as this process numbers them (after CUDA_VISIBLE_DEVICES);
            None for every visible GPU, ``[]`` for none (times only).
        price_usd_per_gpu_hour: rental price; default the price table's for the GPUs' config.
        model, phase, seq: what the tokens are, for achieved TFLOP/s and MFU (analytic FLOPs of a
            model config, ``meter models`` lists them).
        flops_per_token: FLOPs per token of a model of your own instead (6 x parameters is the usual
            training figure); ``model`` then only names it.
        hardware: the GPUs' hardware config, when their NVML name matches none (or no NVML).
        sync: ``"auto"`` waits for the GPUs at window edges when torch has initialised CUDA;
            a callable to call instead; None not to wait.
        interval_s: telemetry sampling period (0.01 to 1 s).
    """

    def __init__(
        self,
        gpus: Sequence[int] | None = None,
        *,
        price_usd_per_gpu_hour: float | None = None,
        model: str | None = None,
        phase: str = "train",
        seq: int = 4096,
        flops_per_token: float | None = None,
        hardware: str | None = None,
        tier: str | None = None,
        usd_per_kwh: float | None = None,
        pue: float | None = None,
        sync: str | Callable[[], None] | None = "auto",
        interval_s: float = 0.1,
        config_dirs: Sequence[str | Path] = (),
        max_windows: int = MAX_WINDOWS,
        segment_s: float = SEGMENT_S,
    ):
        _check_price(price_usd_per_gpu_hour)
        locator = ConfigLocator.from_env(config_dirs)
        cuda = None if gpus is None else list(gpus)
        if cuda is not None and len(set(cuda)) != len(cuda):  # [0, 0] would bill one GPU twice
            raise ValueError(f"gpus lists a GPU more than once: {cuda!r}")
        monitor, watched, why = open_gpu_monitor(
            cuda,
            specs=list_hardware(locator),
            interval_s=interval_s,
            say=_warn,
            cuda_uuids=cuda_uuids_if_initialised(),
        )
        try:
            spec = load_hardware(hardware, locator) if hardware else _one_config(watched)
            self._setup = JobSetup(
                prices=resolve_prices(
                    price=price_usd_per_gpu_hour,
                    hardware=spec,
                    tier=tier,
                    usd_per_kwh=usd_per_kwh,
                    pue=pue,
                    locator=locator,
                ),
                model=_work(model, flops_per_token, phase, seq, spec, locator),
                hardware=spec,
                stated_gpus=len(cuda) if cuda is not None and not watched else None,
                no_telemetry=why,
            )
            self._sync = _sync_for(sync, cuda)
        except BaseException:
            if monitor is not None:
                monitor.__exit__(None, None, None)  # nothing started yet; this releases NVML
            raise
        self.telemetry_reason = why
        if why:
            _warn(f"{why}; windows are timed, energy is None")
        if self._setup.prices.usd_per_gpu_hour is None:
            _warn("no rental price: give price_usd_per_gpu_hour= (or hardware= of a GPU in the price table)")
        self._lock = threading.Lock()
        self._ledger = Ledger(max_windows=max_windows)
        self._settle_by = 0.0  # monotonic time by which the unsettled windows are worked out
        self._settling = threading.Lock()  # one settler at a time (_settle)
        self._settler: threading.Thread | None = None
        self._recorders: dict[Path, RunRecorder] = {}
        self._meter = JobMeter(monitor, watched, segment_s=segment_s, on_segment=self._settle).start()
        self._no_segments = monitor is not None and segment_s <= 0  # no segment thread settles windows
        self._gpus = self._setup.gpu_count(self._meter)  # the GPUs a window bills (fixed for the meter's life)

    # --- windows ---

    def begin_window(self, name: str) -> None:
        """Open a window; its name must not be open already."""
        if self._sync is not None:
            self._sync()
        with self._lock:
            self._meter.begin(name)
            self._ledger.begin(name)

    def end_window(self, name: str, *, tokens: float | None = None) -> JobWindow:
        """Close a window and return what it cost; ``tokens`` it processed give its rates."""
        tokens = _check_tokens(tokens)
        if self._sync is not None:
            self._sync()
        with self._lock:
            span = self._meter.end_deferred(name)
            gpus, setup = self._gpus, self._setup
            # the figures are worked out when first read (DeferredWindow): ending costs the edges only
            record = DeferredWindow(name, tokens, lambda: window_record(span(), name, tokens, gpus=gpus, setup=setup))
            self._ledger.end(record)
            waiting = self._ledger.unsettled
            if waiting == 1:
                self._settle_by = time.monotonic() + SEGMENT_S
                if self._no_segments:  # nothing else would come back for it before the rings drop its samples
                    timer = threading.Timer(SEGMENT_S, self._settle)
                    timer.daemon = True
                    timer.start()
            elif waiting >= SETTLE_EVERY or time.monotonic() > self._settle_by:
                self._settle_soon()  # bounds the memory held, and reads samples long before the rings drop them
        return record

    @contextlib.contextmanager
    def window(self, name: str, *, tokens: float | None = None) -> Iterator[WindowHandle[JobWindow]]:
        """``with m.window("step", tokens=4096) as w: ...``; ``w.result`` is the window once the block ends."""
        handle: WindowHandle[JobWindow] = WindowHandle(name, tokens)
        self.begin_window(name)
        try:
            yield handle
        finally:
            handle.result = self.end_window(name, tokens=handle.tokens)

    @property
    def windows(self) -> list[JobWindow]:
        """The windows ended so far (at most ``max_windows`` of them)."""
        with self._lock:
            return [settled(w) for w in self._ledger.kept]

    def _settle(self) -> None:
        """Work out the windows ended so far and add them to the totals, long before the rings drop the
        samples they span: in the segments' thread or a thread of its own, off the hot path, and
        outside the lock, so that windows keep ending meanwhile. Readers of the totals wait for it."""
        with self._settling:
            with self._lock:
                batch = self._ledger.take_unsettled()
            for w in batch:
                settled(w)
            with self._lock:
                self._ledger.add_totals(batch)

    def _settle_soon(self) -> None:
        if self._settler is None or not self._settler.is_alive():
            self._settler = threading.Thread(target=self._settle, name="meter-windows", daemon=True)
            self._settler.start()

    # --- the job ---

    def result(self) -> JobResult:
        """The job so far: duration, each GPU's energy, power, clocks and memory, dollars, windows."""
        self._meter.checkpoint()
        self._settle()  # the windows' figures, outside the lock
        with self._settling, self._lock:  # no settler holds a batch: the totals have every window
            return self._job_result()

    def _job_result(self) -> JobResult:
        return job_result(
            self._meter,
            self._setup,
            source="api",
            command=_command(),
            tokens=self._ledger.tokens,
            tokens_source="api",
            window_totals=self._ledger.totals(),
            windows=[settled(w) for w in self._ledger.kept],
            windows_not_kept=self._ledger.not_kept,
        )

    def save(self, path: str | Path | None = None) -> Path:
        """Write (or rewrite) a job run file with everything so far; returns its path."""
        self._meter.checkpoint()
        self._settle()
        with self._settling, self._lock:
            target = Path(path) if path is not None else default_run_path(Path("runs"), "job")
            job = self._job_result()
            metadata = job_metadata(
                self._meter.gpus, self._meter.describe(), self._setup, command=_command(), software=_software()
            )
            recorder = self._recorders.get(target)
            if recorder is None:
                recorder = RunRecorder(target, metadata=metadata, kind="job", job=bare_job(job, "not yet written"))
                self._recorders[target] = recorder
            try:
                recorder.update(job=job, metadata=metadata, telemetry_timeline=self._meter.timeline())
            except (RunFileError, ValueError) as exc:  # a figure the file refuses must not cost the job
                why = exc.detail() if isinstance(exc, RunFileError) else str(exc)
                _warn(f"{why}; saved without the job's figures")
                try:  # the windows first; only if they are what is refused, the job's time alone
                    recorder.update(job=without_totals(job, why), metadata=metadata, telemetry_timeline=None)
                except (RunFileError, ValueError):
                    recorder.update(job=bare_job(job, why), metadata=metadata, telemetry_timeline=None)
            if self._meter.running:
                recorder.save()
            else:
                recorder.finish("complete")
            return recorder.path

    def close(self) -> None:
        """Stop sampling; the windows and the job's figures stay readable, ``save`` still works."""
        self._meter.stop()
        self._settle()

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _work(model: str | None, flops_per_token: float | None, phase: str, seq: int, spec, locator):
    if flops_per_token is not None:
        return given_work_model(model or "custom", flops_per_token, phase=phase, seq=seq, hardware=spec)
    return work_model(model, phase=phase, seq=seq, hardware=spec, locator=locator) if model else None


def _check_price(price: float | None) -> None:
    if price is not None and (
        isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price < 0
    ):
        raise ValueError(f"price_usd_per_gpu_hour must be a non-negative number, not {price!r}")


def _check_tokens(tokens: float | None) -> float | None:
    if tokens is None:
        return None
    if isinstance(tokens, bool) or not isinstance(tokens, (int, float)) or not math.isfinite(tokens) or tokens < 0:
        raise ValueError(f"tokens must be a non-negative number, not {tokens!r}")
    return float(tokens)


def _one_config(watched):
    configs = {g.hardware.name if g.hardware else None for g in watched}
    return watched[0].hardware if len(configs) == 1 and None not in configs else None


def _sync_for(sync: str | Callable[[], None] | None, cuda: list[int] | None) -> Callable[[], None] | None:
    if sync is None or callable(sync):
        return sync
    if sync != "auto":
        raise ValueError(f"sync must be 'auto', a callable or None, not {sync!r}")

    def auto() -> None:
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_initialized():
            return  # nothing launched on a GPU through torch, nothing to wait for
        for index in cuda if cuda is not None else range(torch.cuda.device_count()):
            torch.cuda.synchronize(index)

    return auto


def _warn(message: str) -> None:
    warnings.warn(f"meter: {message}", MeterWarning, stacklevel=3)


def _command() -> list[str]:
    from meter.device.host import command_line

    return command_line()


def _software():
    from meter.device.host import software_info

    return software_info(import_torch=False)
