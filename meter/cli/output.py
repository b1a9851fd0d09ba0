"""Terminal output: aligned tables for people, JSON for programs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> str:
    """Render rows as an aligned text table; numbers are right-aligned, None prints as n/a."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = (
        [
            all(_is_number(row[i]) for row in rows if row[i] is not None) and any(row[i] is not None for row in rows)
            for i in range(len(headers))
        ]
        if rows
        else [False] * len(headers)
    )
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out.append(line(headers))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def key_values(pairs: Sequence[tuple[str, Any]], *, title: str | None = None) -> str:
    """Render ``label: value`` lines with the labels aligned."""
    width = max((len(k) for k, _ in pairs), default=0)
    out = [title] if title else []
    out.extend(f"{k.ljust(width)}  {_cell(v)}" for k, v in pairs)
    return "\n".join(out)


def emit_json(obj: Any, stream: TextIO | None = None) -> None:
    """Write ``obj`` as indented JSON (dates as ISO strings, NaN as null)."""
    stream = stream or sys.stdout
    json.dump(to_jsonable(obj), stream, indent=2, allow_nan=False)
    stream.write("\n")


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types from dataclasses, mappings, paths, dates; NaN and inf become None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    text = str(value).strip().rstrip("%x").replace(",", "")
    for suffix in (" TFLOP/s", " GB/s", " TB/s", " W", " GB", " GiB", " KiB", " MiB", " B", " s", " ms"):
        text = text.removesuffix(suffix)
    text = text.rstrip("KMGTB").lstrip("$")
    try:
        float(text)
    except ValueError:
        return False
    return True
