"""The run file: one JSON document per run, rewritten atomically after every case.

A run killed half-way leaves a valid file holding every finished case (``status: running`` or
``interrupted``); nothing measured is lost. Schema: docs/run-file.md.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from meter.errors import MeterError
from meter.results.atomic import write_json_atomic
from meter.results.metadata import utc_now

SCHEMA = "gpu-cost-meter/run"
SCHEMA_VERSION = 1
STATUSES = ("running", "complete", "interrupted", "failed")


class RunFileError(MeterError):
    """A file that is not a readable run file of a version this meter understands."""


def new_run_id() -> str:
    return utc_now().replace(":", "").replace("-", "").replace("+0000", "Z") + "-" + secrets.token_hex(3)


class RunRecorder:
    """Accumulates a run and writes it after each change."""

    def __init__(self, path: Path, *, metadata: dict[str, Any], run_id: str | None = None):
        self.path = Path(path)
        self.doc: dict[str, Any] = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id or new_run_id(),
            "status": "running",
            "started_at": utc_now(),
            "finished_at": None,
            "metadata": metadata,
            "cases": [],
            "projections": [],
            "extras": {},
        }
        self.save()

    def add_case(self, result: dict[str, Any]) -> None:
        self.doc["cases"].append(result)
        self.save()

    def set(self, key: str, value: Any) -> None:
        self.doc[key] = value
        self.save()

    def finish(self, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        self.doc["status"] = status
        self.doc["finished_at"] = utc_now()
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.doc)


def load_run(path: Path | str) -> dict[str, Any]:
    """Read and check a run file; a wrong or newer schema is refused with one clear line."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RunFileError(f"{path}: cannot read run file: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise RunFileError(f"{path}: not valid JSON ({exc})") from None
    check_run_doc(doc, str(path))
    return doc


def check_run_doc(doc: Any, where: str) -> None:
    """Refuse anything that is not a run document of a schema version this meter reads."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise RunFileError(
            f"{where}: not a gpu-cost-meter run file (field 'schema' is "
            f"{doc.get('schema') if isinstance(doc, dict) else None!r})"
        )
    version = doc.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RunFileError(f"{where}: field 'schema_version' is {version!r}; this meter reads up to {SCHEMA_VERSION}")
    for key in ("metadata", "cases"):
        if key not in doc:
            raise RunFileError(f"{where}: field '{key}' is missing")
    if not isinstance(doc["cases"], list):
        raise RunFileError(f"{where}: field 'cases' is not a list")


def default_run_path(directory: Path, label: str) -> Path:
    return Path(directory) / f"{new_run_id()}-{label}.json"
