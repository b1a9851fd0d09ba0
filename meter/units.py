"""Units: dtype sizes, SI quantities on the command line, and human-readable formatting."""

from __future__ import annotations

import math
import re

DTYPE_BYTES: dict[str, float] = {"fp64": 8, "fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "fp4": 0.5}

_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}
_QUANTITY = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKMBGTP]?)\s*$")


def parse_quantity(text: str) -> float:
    """Parse ``14.8T``, ``180K``, ``4096`` or ``1e9`` (B = billion, T = trillion)."""
    match = _QUANTITY.match(str(text))
    if not match:
        raise ValueError(f"not a number with an optional K/M/B/T suffix: {text!r}")
    value = float(match.group(1)) * _SI[match.group(2)]
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


_BYTES = re.compile(r"^\s*([0-9]+)\s*([KMG]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """Parse a byte count with binary suffixes, as nccl-tests does: ``4K`` = 4096, ``8M``, ``1GiB``."""
    match = _BYTES.match(str(text))
    if not match:
        raise ValueError(f"not a byte count such as 4096, 64K, 8M or 1G: {text!r}")
    return int(match.group(1)) * 1024 ** " KMG".index(match.group(2).upper() or " ")


def si(value: float | None, unit: str = "", digits: int = 3) -> str:
    """Format with an SI prefix: ``si(2.5e11, 'FLOP') -> '250 GFLOP'``; None prints as n/a."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == 0:
        return f"0 {unit}".strip()
    prefixes = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")]
    for scale, prefix in prefixes:
        if abs(value) >= scale:
            return f"{_sig(value / scale, digits)} {prefix}{unit}".strip()
    return f"{_sig(value, digits)} {unit}".strip()


def count(value: float | None, digits: int = 4) -> str:
    """Format a count in words-style units: ``671.0B``, ``37.0B``, ``16.4M``."""
    if value is None:
        return "n/a"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{_sig(value / scale, digits)}{suffix}"
    return f"{value:g}"


def binary_bytes(value: float | None) -> str:
    """Format bytes with binary prefixes: ``70272 -> '68.6 KiB'``."""
    if value is None:
        return "n/a"
    for scale, prefix in ((2**40, "Ti"), (2**30, "Gi"), (2**20, "Mi"), (2**10, "Ki")):
        if abs(value) >= scale:
            return f"{_sig(value / scale, 3)} {prefix}B"
    return f"{value:g} B"


def _sig(x: float, digits: int) -> str:
    """Round to significant digits without scientific notation for ordinary magnitudes."""
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{decimals}f}"
