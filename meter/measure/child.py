"""Run the user's command as a child: environment, stdin, stdout and stderr passed through.

Signals: while the child runs, SIGINT and SIGTERM are blocked in every thread of meter and taken
by one relay thread (``sigtimedwait``), so meter itself is never interrupted half-way through
writing its run file. A SIGTERM, or a SIGINT sent to meter (``kill -INT``), is passed on to the
child once. A Ctrl-C typed at the terminal already reached the child, which is in the terminal's
foreground process group with meter; the kernel marks such signals (``si_code`` SI_KERNEL), and
meter does not send them a second time. Either way the job is recorded as interrupted.

Output: with a token counter to read (``--tokens-from-log``), the child's stdout and stderr go
through pipes that meter copies to its own, byte for byte, as they arrive, scanning each line;
otherwise the child writes to meter's own stdout and stderr directly.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from meter.errors import MeterError
from meter.measure.scanner import RegexScanner
from meter.units import parse_quantity

RELAYED = (signal.SIGINT, signal.SIGTERM)
SI_KERNEL = 0x80  # Linux si_code of a signal the kernel raised itself, as the terminal's Ctrl-C


class CommandNotRun(MeterError):
    """The command could not be started; exit status as a shell gives it (127 not found, 126 not runnable)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def should_forward(signo: int, si_code: int) -> bool:
    """Whether a signal meter received must be passed on, or already reached the child from the terminal."""
    return not (signo == signal.SIGINT and si_code == SI_KERNEL)


@dataclass
class TokenCounter:
    """Reads a work counter from the lines a job prints: the last value (a running total) or their sum."""

    pattern: re.Pattern[str]
    aggregate: str = "last"  # last | sum
    values: list[float] = field(default_factory=list)
    unreadable: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    incomplete: str | None = None  # why some lines were not scanned (the count is then not the job's)
    _scanner: RegexScanner | None = field(default=None, repr=False)
    _start: threading.Lock = field(default_factory=threading.Lock, repr=False)  # stdout and stderr race to start it

    def feed(self, line: str) -> None:
        """Match one line here, in this process (for a pattern known to be safe, and for tests)."""
        for match in self.pattern.finditer(line):
            self.add(match.group("tokens") if "tokens" in self.pattern.groupindex else match.group(1))

    def feed_bytes(self, line: bytes) -> None:
        """Hand one line of the job's output to the scanner process; never blocks."""
        if self._scanner is None:
            with self._start:
                if self._scanner is None:
                    self._scanner = RegexScanner(self.pattern, self.add)
        self._scanner.feed(line)

    def close(self) -> None:
        """Wait (bounded) for the scanner's last matches."""
        if self._scanner is not None:
            self.incomplete = self._scanner.close()

    def add(self, text: str | None) -> None:
        value = _number(text)
        with self._lock:
            if value is None:
                self.unreadable += 1
            else:
                self.values.append(value)

    @property
    def total(self) -> float | None:
        with self._lock:
            if not self.values:
                return None
            return self.values[-1] if self.aggregate == "last" else sum(self.values)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = parse_quantity(text.replace(",", "").replace("_", ""))
    except ValueError:
        return None
    return value if 0 <= value < math.inf else None  # 1e400 parses to inf: not a count


@dataclass(frozen=True)
class ChildResult:
    returncode: int
    signals: list[str]  # the signals meter received while the child ran, in order
    forwarded: list[str]  # those it passed on

    @property
    def killed_by(self) -> str | None:
        return signal.Signals(-self.returncode).name if self.returncode < 0 else None

    @property
    def exit_code(self) -> int:
        """meter's own exit status: the child's, or 128 + N for a child killed by signal N (as a shell)."""
        return 128 - self.returncode if self.returncode < 0 else self.returncode


class SignalRelay:
    """``with SignalRelay() as relay:`` blocks SIGINT and SIGTERM in every thread started inside it."""

    def __init__(self) -> None:
        self._old_mask: set[int] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.proc: subprocess.Popen | None = None
        self.received: list[str] = []
        self.forwarded: list[str] = []

    def __enter__(self) -> SignalRelay:
        self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED)
        return self

    def attach(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self._thread = threading.Thread(target=self._relay, name="meter-signal-relay", daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        while not self._stop.is_set():
            info = signal.sigtimedwait(RELAYED, 0.1)
            if info is not None:
                self._handle(info.si_signo, info.si_code)

    def _handle(self, signo: int, si_code: int) -> None:
        name = signal.Signals(signo).name
        self.received.append(name)
        if self.proc is not None and self.proc.poll() is None and should_forward(signo, si_code):
            self.proc.send_signal(signo)
            self.forwarded.append(name)

    def child_mask(self) -> None:
        """In the child, between fork and exec: the signal mask meter had before blocking."""
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask or set())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        while signal.sigtimedwait(RELAYED, 0) is not None:
            pass  # one that arrived as the child exited has nobody left to go to
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask or set())


def start_child(argv: Sequence[str], relay: SignalRelay, *, capture: bool) -> subprocess.Popen:
    """Start the command; refuse one that cannot run with one line, as a shell would (127 or 126)."""
    try:
        return subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            preexec_fn=relay.child_mask,  # only resets the signal mask
        )
    except FileNotFoundError:
        raise CommandNotRun(f"cannot run {argv[0]!r}: command not found", 127) from None
    except PermissionError:
        raise CommandNotRun(f"cannot run {argv[0]!r}: permission denied", 126) from None
    except OSError as exc:
        raise CommandNotRun(f"cannot run {argv[0]!r}: {exc.strerror or exc}", 126) from None


def wait_child(proc: subprocess.Popen, relay: SignalRelay, counter: TokenCounter | None) -> ChildResult:
    """Pass the child's output through (scanning it for the counter) until it exits."""
    pumps = []
    if proc.stdout is not None and proc.stderr is not None:
        pumps = [
            threading.Thread(target=_pump, args=(proc.stdout, _binary(sys.stdout), counter), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, _binary(sys.stderr), counter), daemon=True),
        ]
        for pump in pumps:
            pump.start()
    returncode = proc.wait()
    for pump in pumps:
        pump.join(timeout=10)  # a grandchild holding the pipe open must not hold meter forever
    if counter is not None:
        counter.close()
    time.sleep(0)  # let the relay record a signal that raced the child's exit
    return ChildResult(returncode, list(relay.received), list(relay.forwarded))


def _binary(stream) -> BinaryIO | None:
    return getattr(stream, "buffer", None)


def _pump(source: BinaryIO, sink: BinaryIO | None, counter: TokenCounter | None) -> None:
    """Copy ``source`` to ``sink`` as bytes arrive; feed each complete line to the counter."""
    pending = b""
    fd = source.fileno()
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        if sink is not None:
            try:
                sink.write(chunk)
                sink.flush()
            except (BrokenPipeError, ValueError):
                sink = None  # meter's own output went away; keep draining so the child is not blocked
        if counter is not None:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                counter.feed_bytes(line)
            if len(pending) > 1 << 20:  # a megabyte without a newline is not a log line
                counter.feed_bytes(pending)  # counted as a line not scanned
                pending = b""
    if counter is not None and pending:
        counter.feed_bytes(pending)
    source.close()
