"""The one reader of run files: bytes in, a validated :class:`RunDocument` out, or one line saying why not.

Validation happens once, here: JSON syntax (no NaN, no duplicate keys), the schema name and
version (an older version is migrated, a newer one refused), then every field's type, range and
enum through the same dataclasses the writers build, then what no single field can say (an ``ok``
case without timing, a timeline whose series differ in length). An error names the file, the
field's path (``cases[3].metrics.time_per_call_s``) and the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meter.config.schema import DuplicateJsonKey, build_dataclass, decode_utf8, no_duplicate_keys, read_input_bytes
from meter.errors import ConfigError, RunFileError
from meter.results.document import SCHEMA, SCHEMA_VERSION, RunDocument

MAX_RUN_BYTES = 256 * 2**20  # a run file with a full telemetry timeline is a few MiB


def load_run(path: Path | str) -> RunDocument:
    """Read and validate a run file."""
    path = Path(path)
    return parse_run(read_input_bytes(path, max_bytes=MAX_RUN_BYTES, error=RunFileError, what="a run file"), path)


def parse_run(data: bytes | str, where: Path | str) -> RunDocument:
    """Validate a run document given as bytes or text; ``where`` names it in messages (a path, a request)."""
    if isinstance(data, bytes):
        if len(data) > MAX_RUN_BYTES:
            raise RunFileError(where, None, f"larger than {MAX_RUN_BYTES // 2**20} MiB; not a run file")
        data = decode_utf8(data, where, RunFileError)
    raw = _parse_json(data, where)
    return run_from_dict(raw, where)


def run_from_dict(raw: Any, where: Path | str) -> RunDocument:
    """Validate an already parsed JSON value (e.g. a run document received in memory)."""
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        found = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
        raise RunFileError(where, "schema", f"not a gpu-cost-meter run file (expected '{SCHEMA}')", found)
    version = raw.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise RunFileError(where, "schema_version", "expected an integer", version)
    if version > SCHEMA_VERSION:
        raise RunFileError(
            where, "schema_version", f"written by a newer meter; this one reads versions 1 to {SCHEMA_VERSION}", version
        )
    if version not in MIGRATIONS and version != SCHEMA_VERSION:
        raise RunFileError(where, "schema_version", f"no such version; this meter reads 1 to {SCHEMA_VERSION}", version)
    _check_encodable(raw, where)
    while raw["schema_version"] != SCHEMA_VERSION:
        raw = MIGRATIONS[raw["schema_version"]](raw)
    try:
        doc = build_dataclass(RunDocument, raw, path=None)
    except ConfigError as exc:
        raise exc.retyped(RunFileError, where) from None
    except RecursionError:
        raise RunFileError(where, None, "nested too deeply to be a run file") from None
    check_consistency(doc, where)
    return doc


def _check_encodable(raw: Any, where: Path | str) -> None:
    """Every string is Unicode text: a lone surrogate (JSON's ``"\\udc80"``) cannot be written as UTF-8, so
    no report, file or /metrics scrape could show it; the field holding it is named."""
    try:
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
        return
    except UnicodeEncodeError:
        pass
    except (ValueError, RecursionError):
        return  # not this check's to say; the schema names it
    stack: list[tuple[str, Any]] = [("", raw)]
    while stack:
        field, node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            name = f"{field}[{key}]" if isinstance(key, int) else (f"{field}.{key}" if field else str(key))
            for text, what in ((key, "key"), (value, "value")):
                if isinstance(text, str) and not _utf8_ok(text):
                    raise RunFileError(where, name, f"{what} is not Unicode text (a lone surrogate)", text)
            stack.append((name, value))


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_consistency(doc: RunDocument, where: Path | str | None) -> None:
    """What no single field can say: each rule below, in turn."""
    for rule in CONSISTENCY_RULES:
        rule(doc, where)


def _kind_has_its_parts(doc: RunDocument, where: Path | str | None) -> None:
    """A job run holds a job and no benchmark cases; a bench run holds no job; an import says its source."""
    if doc.kind == "job":
        if doc.job is None:
            raise RunFileError(where, "job", "missing from a run of kind 'job'")
        for name in ("cases", "projections"):
            if getattr(doc, name):
                raise RunFileError(where, name, "a job run holds no benchmark results; found some")
    elif doc.job is not None:
        raise RunFileError(where, "job", f"only a run of kind 'job' holds one; this run is of kind '{doc.kind}'")
    if doc.kind == "import" and doc.metadata.imported is None:
        raise RunFileError(where, "metadata.imported", "missing from a run of kind 'import'")
    if doc.kind == "bench" and doc.metadata.method is None:
        raise RunFileError(where, "metadata.method", "missing from a benchmark run")


def _ok_cases_are_measured(doc: RunDocument, where: Path | str | None) -> None:
    for i, case in enumerate(doc.cases):
        if case.status == "ok":
            for name in ("timing", "metrics"):
                if getattr(case, name) is None:
                    raise RunFileError(where, f"cases[{i}].{name}", "missing from a case with status 'ok'")


def _timeline_lines_up(doc: RunDocument, where: Path | str | None) -> None:
    if doc.telemetry_timeline is None:
        return
    for key, series in doc.telemetry_timeline.devices.items():
        n = len(series.t_s)
        for name in ("power_w", "utilization_ratio", "sm_clock_hz", "throttle_reasons"):
            if len(getattr(series, name)) != n:
                raise RunFileError(
                    where,
                    f"telemetry_timeline.devices.{key}.{name}",
                    f"has {len(getattr(series, name))} values for {n} times",
                )


def _projections_name_cases(doc: RunDocument, where: Path | str | None) -> None:
    for i, projection in enumerate(doc.projections):
        for kind, layer in projection.layers.items():
            if not any(c.id == layer.case_id for c in doc.cases):
                raise RunFileError(
                    where, f"projections[{i}].layers.{kind}.case_id", "names no case of this run", layer.case_id
                )


def _job_is_consistent(doc: RunDocument, where: Path | str | None) -> None:
    """A job's GPUs are named once, its windows end after they start, its rates follow from its counts."""
    job = doc.job
    if job is None:
        return
    keys = [g.key for g in job.gpus]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            raise RunFileError(where, f"job.gpus[{i}].key", "names a GPU listed twice", key)
    for i, w in enumerate(job.windows):
        if w.end_s < w.start_s:
            raise RunFileError(where, f"job.windows[{i}].end_s", f"before its start ({w.start_s:g} s)", w.end_s)
        if abs((w.end_s - w.start_s) - w.duration_s) > 1e-3 + 1e-6 * w.duration_s:
            raise RunFileError(
                where,
                f"job.windows[{i}].duration_s",
                f"differs from end_s - start_s ({w.end_s - w.start_s:g} s)",
                w.duration_s,
            )
    work = job.work
    if work is not None:
        if work.tokens_per_s is not None and job.duration_s > 0:
            expected = work.tokens / job.duration_s
            if not _close(work.tokens_per_s, expected):
                raise RunFileError(
                    where,
                    "job.work.tokens_per_s",
                    f"differs from tokens / duration_s ({expected:.6g})",
                    work.tokens_per_s,
                )
        if (work.mfu is not None or work.flops_per_token is not None) and work.model is None:
            raise RunFileError(where, "job.work.model", "missing: flops_per_token and mfu need the model they count")
        if work.model is not None and work.phase is None:
            raise RunFileError(where, "job.work.phase", "missing: a model's FLOPs per token depend on the phase")
    if job.cost is not None and job.cost.gpus != len(job.gpus) and job.gpus:
        raise RunFileError(
            where, "job.cost.gpus", f"differs from the {len(job.gpus)} GPU(s) listed in job.gpus", job.cost.gpus
        )


def _close(a: float, b: float, rel: float = 1e-3) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-12


def _agrees_with_physics(doc: RunDocument, where: Path | str | None) -> None:
    from meter.results.physics import check_physics

    check_physics(doc, where)


CONSISTENCY_RULES: tuple[Callable[[RunDocument, Path | str | None], None], ...] = (
    _kind_has_its_parts,
    _ok_cases_are_measured,
    _timeline_lines_up,
    _projections_name_cases,
    _job_is_consistent,
    _agrees_with_physics,
)


def _parse_json(text: str, where: Path | str) -> Any:
    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        return json.loads(text, object_pairs_hook=no_duplicate_keys, parse_constant=refuse_constant)
    except DuplicateJsonKey as exc:
        raise RunFileError(where, exc.key, "duplicate key") from None
    except json.JSONDecodeError as exc:
        raise RunFileError(where, None, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except ValueError as exc:  # a NaN or Infinity, or an integer of more digits than Python parses
        raise RunFileError(where, None, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise RunFileError(where, None, "nested too deeply to be a run file") from None


# --- migrations: each takes a document of version N and returns one of version N + 1 -----------


def _v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 2 names the kind of run; every version-1 file is a benchmark run."""
    return {**raw, "schema_version": 2, "kind": "bench"}


def _v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 3 only adds optional fields (ops, backends, parts, acceptance) and run kinds (acceptance, job,
    import) with their sections: a version-2 file is one as it is."""
    return {**raw, "schema_version": 3}


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3}
