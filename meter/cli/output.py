"""Terminal output: aligned tables for people, JSON for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from meter.jsonable import to_jsonable


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
