"""Optional Triton kernels (the ``triton`` extra: ``pip install -e '.[triton]'``).

This file imports neither torch nor Triton: ``kernels`` stays importable without them, and a
caller asks :func:`fused_decode_unavailable` before it imports :mod:`kernels.triton.mla_decode`
(which imports Triton). Pure-torch references of the kernels live beside them
(:mod:`kernels.triton.reference`) and the launch rule in :mod:`kernels.triton.plan`.
"""

from __future__ import annotations

import importlib.util
import os


class FusedUnavailable(RuntimeError):
    """The fused kernel cannot run here (no Triton, or a CPU tensor outside the interpreter)."""


def interpreter_requested() -> bool:
    """Whether ``TRITON_INTERPRET`` asks Triton to interpret kernels (read the way Triton reads it)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes", "y")


def fused_decode_unavailable(device_type: str) -> str | None:
    """Why the fused MLA decode cannot run on ``device_type`` ("cuda", "cpu"), or None when it can."""
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed (pip install -e '.[triton]')"
    if device_type != "cuda" and not interpreter_requested():
        return (
            f"the fused decode kernel runs on CUDA GPUs, not {device_type} "
            "(TRITON_INTERPRET=1 runs it through Triton's interpreter, for tests only)"
        )
    return None
