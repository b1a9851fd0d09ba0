"""Pushed runs kept on disk under ``--runs-dir``, so an exporter restart or rollout loses none.

Each pushed run is written as it came (already validated), atomically, as
``pushed-<run id>-<hash of host and GPU>.json``; at start every ``*.json`` in the directory is read back through the
run-file loader, oldest first, so a later run of the same key wins again. The files the exporter
writes (``pushed-*``, ``scheduled-*``) are bounded in number and in bytes: past either bound it
deletes first the files whose every result a newer run has replaced, then the oldest. Files anyone
else put there are read, never deleted.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path

from meter.errors import UsageError
from meter.results import RunDocument
from meter.results.atomic import write_bytes_atomic

MANAGED = ("pushed-", "scheduled-")
DEFAULT_MAX_FILES = 200
DEFAULT_MAX_BYTES = 256 * 2**20
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_name(doc: RunDocument) -> str:
    """``pushed-<run id>-<where>.json``: the same run pushed again replaces its file, and two runs of
    one id from different hosts or GPUs do not; a run id that is not a plain name is hashed."""
    run_id = doc.run_id
    safe = _SAFE.sub("_", run_id)[:100]
    if safe != run_id or safe.startswith("."):
        safe = hashlib.sha256(run_id.encode()).hexdigest()[:24]
    where = f"{doc.metadata.host.hostname or ''}|{doc.metadata.device.uuid or ''}|{doc.metadata.device.name}"
    return f"pushed-{safe}-{hashlib.sha256(where.encode()).hexdigest()[:8]}.json"


class RunStore:
    def __init__(
        self,
        directory: Path,
        *,
        max_files: int = DEFAULT_MAX_FILES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        say: Callable[[str], None] = lambda _msg: None,
    ):
        self.directory = Path(directory)
        self.max_files, self.max_bytes, self.say = max_files, max_bytes, say
        self._provider: dict[Hashable, Path] = {}  # result key -> the file that last provided it
        if self.directory.exists() and not self.directory.is_dir():
            raise UsageError(f"--runs-dir {self.directory}: not a directory")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--runs-dir {self.directory}: cannot create it ({exc.strerror or exc})") from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise UsageError(f"--runs-dir {self.directory}: not writable by this user")

    def files(self) -> list[Path]:
        """Every run file in the directory, oldest first (the order they are taken in at start)."""
        found = []
        for path in self.directory.glob("*.json"):
            try:
                found.append((path.stat().st_mtime_ns, path.name, path))
            except OSError:
                continue  # removed meanwhile
        return [p for _, _, p in sorted(found)]

    def save(self, doc: RunDocument, body: bytes) -> Path:
        """Write a pushed run atomically (OSError when the disk refuses)."""
        path = self.directory / file_name(doc)
        write_bytes_atomic(path, body)
        return path

    def record(self, path: Path, keys: Iterable[Hashable]) -> None:
        """``path`` now provides these results (a later record of a key replaces the earlier)."""
        for key in keys:
            self._provider[key] = path

    def prune(self) -> list[Path]:
        """Delete managed files past the bounds: replaced ones first, then the oldest. Returns them."""
        managed = [p for p in self.files() if p.name.startswith(MANAGED)]
        sizes = {}
        for p in managed:
            try:
                sizes[p] = p.stat().st_size
            except OSError:
                continue
        managed = [p for p in managed if p in sizes]
        live = set(self._provider.values())
        order = [p for p in managed if p not in live] + [p for p in managed if p in live]
        removed = []
        count, total = len(managed), sum(sizes.values())
        for path in order:
            if count <= self.max_files and total <= self.max_bytes:
                break
            try:
                path.unlink()
            except OSError as exc:
                self.say(f"runs dir: cannot remove {path} ({exc.strerror or exc})")
                continue
            count, total = count - 1, total - sizes[path]
            removed.append(path)
            self._provider = {k: v for k, v in self._provider.items() if v != path}
        return removed
