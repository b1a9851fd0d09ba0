"""The run-file error, apart from the loader so the checks the loader runs (physics) can raise it."""

from __future__ import annotations

from meter.errors import InputError


class RunFileError(InputError):
    """A file that is not a usable run file of a version this meter reads."""
