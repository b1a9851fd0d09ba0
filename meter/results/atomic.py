"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every output path the meter writes (run files, reports, the ceilings cache) goes through here, so
a directory where a file is expected, an unwritable or read-only location, or a full disk gives
one :class:`meter.errors.OutputError` naming the path; the previous file stays as it was.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from meter.config.schema import file_kind
from meter.errors import OutputError


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    write_bytes_atomic(path, text.encode("utf-8"))


# Character devices that discard (or refuse) what is written: /dev/null, /dev/zero, /dev/full (Linux's
# memory devices, major 1). Written through, as a shell redirect would; never replaced.
_SINKS = {(1, 3), (1, 5), (1, 7)}


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file path")
    try:
        st = os.stat(path)
    except OSError:
        st = None  # absent (the usual case) or unreachable: the write below says which
    if st is not None and not stat.S_ISREG(st.st_mode):
        # os.replace would swap a device, FIFO or socket for a regular file (as root: /dev/null destroyed).
        if _is_sink(st):
            _write_through(path, data)
            return
        raise OutputError(
            f"{path}: is {file_kind(st.st_mode)}, not a regular file; meter writes only regular files "
            "(or /dev/null to discard)"
        )
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OutputError(f"{path}: cannot write ({blocking} is a file, not a directory)")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a result file gets the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OutputError(
            f"{path}: cannot write ({exc.strerror or exc}); any earlier file there is unchanged"
        ) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def claim_new_file(path: Path, sibling: Path) -> Path:
    """Create ``path`` as an empty file, or ``sibling`` when ``path`` already exists: a file someone
    else wrote (another job given the same ``-o``) is never replaced. Returns the one claimed.

    A path that is not a regular file (``/dev/null``) is returned as it is: the writer decides.
    """
    path = Path(path)
    for candidate in (path, Path(sibling)):
        try:
            if candidate.exists() and not candidate.is_file():
                return candidate
            candidate.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            continue
        except OSError:
            return candidate  # the write that follows names the problem in one line
    return Path(sibling)  # a sibling with this run's id exists: the same run, rewritten


def _is_sink(st: os.stat_result) -> bool:
    """/dev/null and its kin, or the terminal or pipe this process already writes its own output to."""
    if stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) in _SINKS:
        return True
    for fd in (1, 2):  # -o /dev/stdout: the stream the user is reading already
        try:
            own = os.fstat(fd)
        except OSError:
            continue
        if (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def _write_through(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            os.set_blocking(fd, True)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, obj: Any) -> None:
    """``obj`` must already be plain JSON values (see :func:`meter.jsonable.to_jsonable`); NaN is refused."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")
