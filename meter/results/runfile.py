"""The run file's writer: one JSON document per run, rewritten atomically after every case.

A run killed half-way leaves a valid file holding every finished case (``status: running`` or
``interrupted``); nothing measured is lost. Each case is checked against the same schema the
reader applies before it is written, so a case the reader would refuse (a NaN time from a bad
parameter) is recorded as an ``error`` with the reason instead of breaking the file. A write that
fails (a full disk) leaves the last valid file in place and raises :class:`RunWriteError`.
"""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path

from meter.config.schema import build_dataclass
from meter.errors import ConfigError, OutputError
from meter.jsonable import to_jsonable
from meter.results.atomic import claim_new_file, write_json_atomic
from meter.results.document import STATUSES, RunDocument, RunMetadata
from meter.results.job import JobResult
from meter.results.load import check_consistency
from meter.results.metadata import utc_now
from meter.results.records import CaseResult


class RunWriteError(OutputError):
    """The run file could not be (re)written; the last valid file is still in place."""


def new_run_id() -> str:
    stamp = utc_now().isoformat(timespec="seconds")
    return stamp.replace(":", "").replace("-", "").replace("+0000", "Z") + "-" + secrets.token_hex(3)


def default_run_path(directory: Path, label: str) -> Path:
    return Path(directory) / f"{new_run_id()}-{label}.json"


def checked_case(case: CaseResult) -> CaseResult:
    """The case as the reader will see it; one the schema refuses becomes an ``error`` case saying why."""
    try:
        return build_dataclass(CaseResult, to_jsonable(case), path=None)
    except ConfigError as exc:
        return CaseResult(
            id=case.id,
            case=case.case,
            status="error",
            reason=f"result not recordable: {exc.detail()}",
            notes=case.notes,
        )


class RunRecorder:
    """Builds a run document and writes it after each change."""

    def __init__(
        self,
        path: Path,
        *,
        metadata: RunMetadata,
        run_id: str | None = None,
        kind: str = "bench",
        job: JobResult | None = None,
        keep_existing: bool = False,
    ):
        self.path = Path(path)
        self.moved_from: Path | None = None  # the path asked for, when a file was already there
        self.doc = RunDocument(
            run_id=run_id or new_run_id(),
            status="running",
            started_at=utc_now(),
            metadata=metadata,
            cases=[],
            kind=kind,  # type: ignore[arg-type]
            job=job,
        )
        if keep_existing:
            asked = self.path
            self.path = claim_new_file(
                asked, asked.with_name(f"{asked.stem}.{self.doc.run_id}{asked.suffix or '.json'}")
            )
            self.moved_from = asked if self.path != asked else None
        try:
            self.save()  # an unwritable path is refused before anything is measured
        except BaseException:
            if keep_existing and self.path.is_file() and self.path.stat().st_size == 0:
                self.path.unlink(missing_ok=True)  # the placeholder claimed above
            raise

    def add_case(self, result: CaseResult) -> CaseResult:
        """Record one finished case (checked first) and rewrite the file; returns what was recorded."""
        checked = self._physical(checked_case(result))
        self.doc.cases.append(checked)
        self.save()
        return checked

    def _physical(self, case: CaseResult) -> CaseResult:
        """The case, or an error case saying why the reader would refuse it (figures that contradict
        each other, a second result for one case id): the file stays readable, nothing is dropped."""
        from meter.results.load import RunFileError
        from meter.results.physics import check_case

        problem = None
        if case.status == "ok" and any(c.id == case.id and c.status == "ok" for c in self.doc.cases):
            problem = "a second result for this case id"
        else:
            try:
                check_case(case, self.doc.metadata.hardware, None, "case")
            except RunFileError as exc:
                problem = exc.detail()
        if problem is None:
            return case
        return CaseResult(
            id=case.id, case=case.case, status="error", reason=f"result not recordable: {problem}", notes=case.notes
        )

    def update(self, **fields) -> None:
        """Replace top-level fields (projections, communication, ...) and rewrite the file."""
        for name, value in fields.items():
            if name not in {f.name for f in dataclasses.fields(RunDocument)}:
                raise AttributeError(f"a run document has no field {name!r}")
            setattr(self.doc, name, value)
        self.save()

    def finish(self, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        self.doc.status = status  # type: ignore[assignment]
        self.doc.finished_at = utc_now()
        self.save()

    def save(self) -> None:
        check_consistency(self.doc, self.path)
        try:
            write_json_atomic(self.path, to_jsonable(self.doc))
        except OutputError as exc:
            raise RunWriteError(str(exc)) from None
