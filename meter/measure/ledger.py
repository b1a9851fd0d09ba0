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

MAX_WINDOWS = 10_000  # windows kept one by one; a million-step loop keeps its totals, not every step


@dataclass(eq=False)
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

    def begin(self, name: str) -> None:
        thread = threading.get_ident()
        stack = self._stacks.setdefault(thread, [])
        entry = _Open(thread, stack[-1] if stack else None)
        self._open[name] = entry
        stack.append(entry)

    def end(self, record: JobWindow) -> None:
        entry = self._open.pop(record.name)
        entry.closed = True
        stack = self._stacks.get(entry.thread, [])
        if entry in stack:
            stack.remove(entry)
        if record.tokens is not None:
            self.tokens = (self.tokens or 0.0) + record.tokens - entry.inner_tokens
            passed_on = record.tokens
        else:
            passed_on = entry.inner_tokens
        parent = entry.parent
        if parent is not None and not parent.closed and passed_on:
            parent.inner_tokens += passed_on  # a parent that ended first overlapped, it did not enclose
        self._add_total(record)
        if len(self.kept) < self.max_windows:
            self.kept.append(record)
        else:
            self.not_kept += 1

    def _add_total(self, w: JobWindow) -> None:
        t = self._totals.setdefault(w.name, _Total())
        t.count += 1
        t.duration_s += w.duration_s
        t.energy_j = None if t.energy_j is None or w.energy_j is None else t.energy_j + w.energy_j
        t.usd = None if t.usd is None or w.usd is None else t.usd + w.usd
        if w.tokens is not None:
            t.tokens = (t.tokens or 0.0) + w.tokens

    def totals(self) -> list[JobWindowTotal]:
        return [
            JobWindowTotal(
                name=name, count=t.count, duration_s=t.duration_s, energy_j=t.energy_j, usd=t.usd, tokens=t.tokens
            )
            for name, t in self._totals.items()
        ]
