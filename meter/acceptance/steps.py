"""Steps under a time budget: each step has its own timeout, and one that fails is recorded and skipped.

The timeout is a ``SIGALRM`` timer in the main thread (as pytest-timeout uses): when it fires, the
step is interrupted at the next Python instruction, so a step blocked in one device call stops when
that call returns. A step is given the lesser of its own timeout and what is left of the budget
once the reserve for writing the results is set aside; with too little left it is skipped.
"""

from __future__ import annotations

import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

from meter.results.acceptance import StepRecord

MIN_STEP_S = 1.0


class StepTimeout(BaseException):
    """A step ran past its timeout. A BaseException, so that the harness's per-case ``except
    Exception`` (which records a broken case and goes on) cannot swallow it."""


class StepRunner:
    def __init__(self, budget_s: float, *, reserve_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.budget_s, self.reserve_s, self.clock = budget_s, reserve_s, clock
        self.started = clock()
        self.records: list[StepRecord] = []

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.started

    @property
    def left_s(self) -> float:
        return self.budget_s - self.reserve_s - self.elapsed_s

    def skip(self, name: str, timeout_s: float, reason: str) -> None:
        """Record a step that cannot run (what it needs failed before it)."""
        self.records.append(StepRecord(name, "skipped", 0.0, timeout_s, reason))

    def run(self, name: str, timeout_s: float, fn: Callable[[], Any]) -> Any:
        """``fn()``'s value, or None when it failed, timed out or was skipped (recorded either way)."""
        allowed = min(timeout_s, self.left_s)
        if allowed < MIN_STEP_S:
            self.records.append(StepRecord(name, "skipped", 0.0, timeout_s, "the time budget is spent"))
            return None
        start = self.clock()
        status, reason, value = "ok", None, None
        previous = signal.signal(signal.SIGALRM, _expire)
        signal.setitimer(signal.ITIMER_REAL, allowed)
        try:
            try:
                value = fn()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)  # first: no re-armed alarm may fire past the step
        except StepTimeout:
            limit = "its timeout" if allowed == timeout_s else "the time budget"
            status, reason = "timed out", f"stopped after {allowed:.0f} s ({limit})"
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # the step's failure is the record; the next step runs
            status, reason = "failed", failure_reason(exc)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        self.records.append(StepRecord(name, status, round(self.clock() - start, 3), timeout_s, reason))
        return value


REARM_S = 0.5


def _expire(signum: int, frame: Any) -> None:
    # An exception raised while Python runs a finalizer or a weakref callback is printed and
    # dropped ("Exception ignored in ..."), and a step would then run on unbounded: the alarm is
    # re-armed, so that it fires again until the step has really stopped.
    signal.setitimer(signal.ITIMER_REAL, REARM_S)
    raise StepTimeout()


def failure_reason(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {first}{at}"
