"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every output path the meter writes (run files, reports, the ceilings cache) goes through here, so
a directory where a file is expected, an unwritable or read-only location, or a full disk gives
one :class:`meter.errors.OutputError` naming the path; the previous file stays as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from meter.errors import OutputError


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file path")
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, obj: Any) -> None:
    """``obj`` must already be plain JSON values (see :func:`meter.jsonable.to_jsonable`); NaN is refused."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")
