"""Errors that the CLI turns into one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

from pathlib import Path


class MeterError(Exception):
    """A problem the user can fix: bad input, a missing component, an unsupported request."""

    exit_code = 2


class UsageError(MeterError):
    """A bad command-line value."""


class ConfigError(MeterError):
    """A config file that cannot be used, naming the file, the field and the value.

    Args:
        path: the YAML file (or None for values given on the command line).
        field: dotted field path inside the file, e.g. ``peak_tflops.bf16``; None for the whole file.
        problem: what is wrong, as a short phrase.
        value: the offending value; omitted from the message when ``_MISSING``.
    """

    _MISSING = object()

    def __init__(self, path: Path | str | None, field: str | None, problem: str, value: object = _MISSING):
        self.path = Path(path) if path is not None else None
        self.field = field
        self.problem = problem
        self.value = value
        if self.path is None:
            parts = [f"argument '{field}'"] if field else []
        else:
            parts = [str(self.path)] + ([f"field '{field}'"] if field else [])
        message = ": ".join(parts + [problem])
        if value is not ConfigError._MISSING:
            message += f" (got {_short_repr(value)})"
        super().__init__(message)


class ShadowedPackageError(MeterError):
    """Another distribution's module is imported where gpu-cost-meter's should be."""


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    text = " ".join(text.split())  # keep the message on one line
    return text if len(text) <= limit else text[: limit - 3] + "..."
