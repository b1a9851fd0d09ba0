"""Errors that the CLI turns into one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import reprlib
from pathlib import Path


class MeterError(Exception):
    """A problem the user can fix: bad input, a missing component, an unsupported request."""

    exit_code = 2


class UsageError(MeterError):
    """A bad command-line value."""


class InputError(MeterError):
    """An input file (or command-line value) that cannot be used, naming the file, the field and the value.

    Args:
        path: the file (or None for values given on the command line).
        field: the field's path inside the file, e.g. ``peak_tflops.bf16`` or ``cases[3].metrics.time_per_call_s``;
            None for the whole file.
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
            where = f"argument '{field}': " if field else ""
            super().__init__(where + self.problem_and_value())
        else:
            super().__init__(f"{self.path}: " + self.detail())

    def problem_and_value(self) -> str:
        text = _one_line(self.problem)
        return text if self.value is InputError._MISSING else f"{text} (got {_short_repr(self.value)})"

    def detail(self) -> str:
        """The message without the file: ``field 'x': problem (got value)``."""
        return (f"field '{self.field}': " if self.field else "") + self.problem_and_value()

    def retyped(self, cls: type[InputError], path: Path | str | None = None) -> InputError:
        """The same error as another kind (a config check raised inside a run-file read), optionally re-homed."""
        return cls(path if path is not None else self.path, self.field, self.problem, self.value)


class ConfigError(InputError):
    """A config file that cannot be used."""


class RunFileError(InputError):
    """A file that is not a usable run file of a version this meter reads (raised by meter.results)."""


class OutputError(MeterError):
    """An output path that cannot be written: a directory, an unwritable or full filesystem."""


class ShadowedPackageError(MeterError):
    """Another distribution's module is imported where gpu-cost-meter's should be."""


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())  # one line, whatever the input held
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_repr(value: object, limit: int = 60) -> str:
    try:
        text = _REPR.repr(value)  # bounded work even for huge or deeply nested values
    except Exception:  # a hostile object's repr must not replace the error being reported
        text = f"<{type(value).__name__}>"
    return _one_line(text, limit)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 3
