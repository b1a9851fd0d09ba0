"""The Python API's book of windows: the job's token count, per-name totals, the windows kept.

Tokens of nested windows are counted once: a window counts its own tokens, and when a window
that encloses others (begun later in the same thread, still open) ends with a count of its own,
that count replaces theirs. An enclosing window given no count passes its children's on. Windows
in different threads are parallel work and all count. O(1) per window.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from meter.results.job import JobWindow, JobWindowTotal

_thread_id = threading.get_ident
MAX_WINDOWS = 10_000  # windows kept one by one; a million-step loop keeps its totals, not every step


@dataclass(eq=False, slots=True)
class _Open:
    thread: int
    parent: _Open | None
    inner_tokens: float = 0.0  # tokens counted by the windows inside this one
    closed: bool = False


@dataclass
class _Total:
    count: int = 0
    duration_s: float = 0.0
    energy_j: float | None = 0.0
    usd: float | None = 0.0
    tokens: float | None = None


@dataclass
class Ledger:
    max_windows: int = MAX_WINDOWS
    tokens: float | None = None  # the job's count, nested windows counted once
    kept: list[JobWindow] = field(default_factory=list)
    not_kept: int = 0
    _open: dict[str, _Open] = field(default_factory=dict)
    _stacks: dict[int, list[_Open]] = field(default_factory=dict)
    _totals: dict[str, _Total] = field(default_factory=dict)
    _unsettled: list[JobWindow] = field(default_factory=list)  # ended, not yet in the totals

    def begin(self, name: str) -> None:
        thread = _thread_id()
        stack = self._stacks.get(thread)
        if stack is None:
            stack = self._stacks[thread] = []
        entry = _Open(thread, stack[-1] if stack else None)
        self._open[name] = entry
        stack.append(entry)

    def end(self, record: JobWindow) -> None:
        """Book an ended window; its figures (energy, dollars) are read only when the totals are."""
        entry = self._open.pop(record.name)
        entry.closed = True
        stack = self._stacks[entry.thread]
        if stack and stack[-1] is entry:  # the usual case: the innermost window of its thread
            stack.pop()
        elif entry in stack:
            stack.remove(entry)
        tokens = record.tokens
        if tokens is not None:
            self.tokens = (self.tokens or 0.0) + tokens - entry.inner_tokens
            passed_on = tokens
        else:
            passed_on = entry.inner_tokens
        parent = entry.parent
        if parent is not None and not parent.closed and passed_on:
            parent.inner_tokens += passed_on  # a parent that ended first overlapped, it did not enclose
        self._unsettled.append(record)
        if len(self.kept) < self.max_windows:
            self.kept.append(record)
        else:
            self.not_kept += 1

    def settle(self) -> None:
        """Work out the figures of the windows ended since the last call and add them to the totals."""
        self.add_totals(self.take_unsettled())

    def take_unsettled(self) -> list[JobWindow]:
        """The windows not in the totals yet, handed over (to work out, then :meth:`add_totals`)."""
        unsettled, self._unsettled = self._unsettled, []
        return unsettled

    def add_totals(self, windows: list[JobWindow]) -> None:
        for w in windows:
            self._add_total(w)

    @property
    def unsettled(self) -> int:
        return len(self._unsettled)

    def _add_total(self, w: JobWindow) -> None:
        t = self._totals.setdefault(w.name, _Total())
        t.count += 1
        t.duration_s += w.duration_s
        t.energy_j = None if t.energy_j is None or w.energy_j is None else t.energy_j + w.energy_j
        t.usd = None if t.usd is None or w.usd is None else t.usd + w.usd
        if w.tokens is not None:
            t.tokens = (t.tokens or 0.0) + w.tokens

    def totals(self) -> list[JobWindowTotal]:
        self.settle()
        return [
            JobWindowTotal(
                name=name, count=t.count, duration_s=t.duration_s, energy_j=t.energy_j, usd=t.usd, tokens=t.tokens
            )
            for name, t in self._totals.items()
        ]
