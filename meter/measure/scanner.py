"""Scan a job's log lines with the user's ``--tokens-from-log`` regex in a process of its own.

Python's ``re`` backtracks, and holds the interpreter lock while it does: ``(a+)+b`` on a line of
30 ``a`` runs for minutes, and in meter's own process it would stop the job's output from being
forwarded. So the lines go, through a bounded queue, to a small child process that matches them
and writes back each match's text; meter's threads only copy bytes. A scanner that falls behind
loses lines to scan (never output), and one still busy when the job has ended is stopped: either
way the count is incomplete and recorded as absent, with the reason.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading

MAX_SCAN_LINE_BYTES = 64 * 2**10  # a longer line is forwarded but not scanned (a log line is short)
QUEUE_LINES = 10_000
FINISH_S = 3.0  # after the job ends, the scanner gets this long to match what is queued

_CHILD = r"""
import json, re, sys
pattern = re.compile(sys.argv[1], int(sys.argv[2]))
named = "tokens" in pattern.groupindex
out = sys.stdout
for raw in sys.stdin.buffer:
    line = raw.rstrip(b"\n").decode("utf-8", "replace")
    for match in pattern.finditer(line):
        out.write(json.dumps(match.group("tokens") if named else match.group(1)) + "\n")
    out.flush()
"""


class RegexScanner:
    """``feed(line)`` never blocks; ``close()`` returns each match's text, in order, and why the list is
    incomplete (None when every line was scanned)."""

    def __init__(self, pattern: re.Pattern[str], on_match) -> None:
        self.on_match = on_match
        self.skipped = 0  # lines not scanned: too long, or the scanner was behind
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_LINES)
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD, pattern.pattern, str(int(pattern.flags))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._writer = threading.Thread(target=self._write, name="meter-scan-writer", daemon=True)
        self._reader = threading.Thread(target=self._read, name="meter-scan-reader", daemon=True)
        self._writer.start()
        self._reader.start()

    def feed(self, line: bytes) -> None:
        if len(line) > MAX_SCAN_LINE_BYTES:
            self.skipped += 1
            return
        try:
            self._queue.put_nowait(line.replace(b"\n", b" ") + b"\n")
        except queue.Full:
            self.skipped += 1

    def _write(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while (line := self._queue.get()) is not None:
                stdin.write(line)
                stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the scanner was stopped
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _read(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        for raw in stdout:
            try:
                text = json.loads(raw)
            except ValueError:
                continue
            self.on_match(text if isinstance(text, str) else None)

    def close(self, timeout_s: float = FINISH_S) -> str | None:
        """Wait for the scanner to match what is queued; the reason the count is incomplete, or None."""
        while True:
            try:
                self._queue.put(None, timeout=timeout_s)
                break
            except queue.Full:
                self._proc.kill()  # stuck with a full queue: nothing more will be matched
        stuck = False
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stuck = True
            self._proc.kill()
            self._proc.wait()
        self._writer.join(timeout=5)
        self._reader.join(timeout=5)
        if stuck or self._proc.returncode not in (0, None):
            return (
                f"the --tokens-from-log pattern was still matching {timeout_s:g} s after the job ended "
                "(a pattern that backtracks, such as '(a+)+b'); the count is incomplete"
            )
        if self.skipped:
            return f"{self.skipped} line(s) of the job's output were not scanned (too long, or too many at once)"
        return None
