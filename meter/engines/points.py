"""Measured serving points: one row per (setup, concurrency), read from and written to a points TSV.

The format is the one of ``../shared/reference/serving-points-h200.tsv`` (InferenceX's DeepSeek-R1 points
on H200): leading ``#`` comment lines, then a tab-separated header and one row per point, with the columns
of :data:`COLUMNS`. Cells are Python-style booleans (``True``/``False``), whole numbers, decimal numbers, or
empty for "not applicable" (the prefill columns of an aggregated point). ``meter import`` writes such files
from InferenceX result JSON and from vLLM/SGLang benchmark sweeps; ``meter cost serve --calibrate-from`` and
``--against`` read them.

Throughputs per GPU follow InferenceX's definitions (utils/process_result.py): ``total_tok_s_gpu`` is the
input and output tokens per second over every GPU of the system; ``output_tok_s_gpu`` is the output tokens
per second over the GPUs that decode, i.e. over all GPUs of an aggregated point but over the decode GPUs only
of a disaggregated one (the reference TSV's disaggregated rows check out this way: total x all GPUs =
output x decode GPUs x (1 + isl/osl) within 2%). :attr:`ServingPoint.output_tok_s_gpu_system` gives the
output per GPU of the whole system, which is what a GPU-hour buys. ``tok_s_user`` is 1000 /
``median_tpot_ms`` when both are given.
A bad cell is refused with one line naming the file, the line, the column and the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass, fields
from pathlib import Path

from meter.config.schema import read_input_text
from meter.errors import InputError

MAX_POINTS_BYTES = 64 * 2**20
INTERACTIVITY_TOLERANCE = 0.02  # tok_s_user may differ this much from 1000 / median_tpot_ms (rounding, medians)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


MAX_WHOLE = 10**9  # GPUs, lengths, concurrency: far beyond any deployment, and safe as a float


def whole_number(value: object) -> int | None:
    """``value`` as a whole number in [1, MAX_WHOLE] (a JSON number or a string of digits), else None."""
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.isdigit() and len(text) <= 10 else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if 1 <= value <= MAX_WHOLE else None


def positive_number(value: object) -> float | None:
    """``value`` as a finite number above 0 (JSON numbers only; an int too large for a float is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number > 0 else None


class PointsFileError(InputError):
    """A serving points file (or a point to write) that cannot be used."""


@dataclass(frozen=True)
class ServingPoint:
    """One measured (or predicted) serving point: a setup at one concurrency, and what it delivered.

    For an aggregated point ``tp``/``ep``/``dp_attention`` describe the one engine instance of ``tp`` GPUs
    (attention data parallel runs over the same GPUs);
    for a disaggregated one they describe each decode worker and ``prefill_*`` each prefill worker, with
    ``num_prefill_gpu`` and ``num_decode_gpu`` GPUs in all.
    """

    source_id: str
    model: str
    precision: str
    hardware: str
    framework: str
    spec_method: str  # "none", "mtp", ...
    disagg: bool
    tp: int
    ep: int
    dp_attention: bool
    prefill_tp: int | None
    prefill_ep: int | None
    prefill_dp_attention: bool | None
    num_prefill_gpu: int | None
    num_decode_gpu: int | None
    isl: int
    osl: int
    conc: int
    median_tpot_ms: float | None
    tok_s_user: float
    output_tok_s_gpu: float
    total_tok_s_gpu: float
    date: str | None  # YYYY-MM-DD
    kind: str  # "measured", "predicted", ...
    notes: str = ""

    @property
    def gpus(self) -> int:
        """GPUs of the whole system, which the per-GPU throughputs divide by."""
        if self.disagg:
            return (self.num_prefill_gpu or 0) + (self.num_decode_gpu or 0)
        return self.tp

    @property
    def decode_gpus(self) -> int:
        return self.num_decode_gpu if self.disagg and self.num_decode_gpu is not None else self.tp

    @property
    def prefill_gpus(self) -> int:
        """GPUs that only prefill (0 for an aggregated point, whose GPUs do both)."""
        return self.num_prefill_gpu or 0 if self.disagg else 0

    @property
    def speculative(self) -> bool:
        return self.spec_method != "none"

    @property
    def tpot_s(self) -> float:
        """Time per output token as seen by one user (from the median TPOT, else from tok_s_user)."""
        return self.median_tpot_ms / 1000 if self.median_tpot_ms is not None else 1 / self.tok_s_user

    @property
    def output_tok_s(self) -> float:
        """Output tokens per second of the whole system (``output_tok_s_gpu`` is per decoding GPU)."""
        return self.output_tok_s_gpu * self.decode_gpus

    @property
    def total_tok_s(self) -> float:
        """Input and output tokens per second of the whole system."""
        return self.total_tok_s_gpu * self.gpus

    @property
    def input_tok_s(self) -> float:
        return self.total_tok_s - self.output_tok_s

    @property
    def output_tok_s_gpu_system(self) -> float:
        """Output tokens per second per GPU of the whole system, prefill GPUs included: what a GPU-hour buys."""
        return self.output_tok_s / self.gpus

    @property
    def layout(self) -> str:
        """A short name of the layout, e.g. ``TP8 EP8 DPA`` or ``disagg 1xP(TP8 EP8) 7xD(TP8 EP8 DPA)``."""
        decode = _worker(self.tp, self.ep, self.dp_attention)
        if not self.disagg:
            return decode
        prefill = _worker(self.prefill_tp or 0, self.prefill_ep or 0, bool(self.prefill_dp_attention))
        p_workers = (self.num_prefill_gpu or 0) // max(self.prefill_tp or 1, 1)
        d_workers = (self.num_decode_gpu or 0) // max(self.tp, 1)
        return f"disagg {p_workers}xP({prefill}) {d_workers}xD({decode})"

    @property
    def setup(self) -> tuple:
        """Everything but the concurrency and the measurements: the points of one curve share it."""
        return (
            self.model, self.precision, self.hardware, self.framework, self.spec_method, self.disagg, self.tp,
            self.ep, self.dp_attention, self.prefill_tp, self.prefill_ep, self.prefill_dp_attention,
            self.num_prefill_gpu, self.num_decode_gpu, self.isl, self.osl,
        )  # fmt: skip


def _worker(tp: int, ep: int, dp_attention: bool) -> str:
    return f"TP{tp}" + (f" EP{ep}" if ep > 1 else "") + (" DPA" if dp_attention else "")


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ServingPoint))
_TEXT = {"source_id", "model", "precision", "hardware", "framework", "spec_method", "kind"}
_BOOL = {"disagg", "dp_attention", "prefill_dp_attention"}
_INT = {"tp", "ep", "prefill_tp", "prefill_ep", "num_prefill_gpu", "num_decode_gpu", "isl", "osl", "conc"}
_FLOAT = {"median_tpot_ms", "tok_s_user", "output_tok_s_gpu", "total_tok_s_gpu"}
_OPTIONAL = {"prefill_tp", "prefill_ep", "prefill_dp_attention", "num_prefill_gpu", "num_decode_gpu"}
_OPTIONAL |= {"median_tpot_ms", "date", "notes"}
_DISAGG_ONLY = ("prefill_tp", "prefill_ep", "prefill_dp_attention", "num_prefill_gpu", "num_decode_gpu")


def read_points(path: Path | str) -> list[ServingPoint]:
    """Every point of a points TSV, each cell checked; a bad one raises :class:`PointsFileError`."""
    path = Path(path)
    text = read_input_text(path, max_bytes=MAX_POINTS_BYTES, error=PointsFileError, what="a serving points file")
    lines = text.splitlines()
    number = 0
    while number < len(lines) and (lines[number].startswith("#") or not lines[number].strip()):
        number += 1
    if number == len(lines):
        raise PointsFileError(path, None, "holds no header line (expected the columns " + ", ".join(COLUMNS) + ")")
    header = lines[number].split("\t")
    _check_header(header, path, number + 1)
    points = []
    for index in range(number + 1, len(lines)):
        line = lines[index]
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        where = f"line {index + 1}"
        if len(cells) != len(header):
            raise PointsFileError(path, where, f"has {len(cells)} cells where the header has {len(header)}")
        points.append(_point(dict(zip(header, cells, strict=True)), path, where))
    if not points:
        raise PointsFileError(path, None, "holds no points (only a header)")
    return points


def _check_header(header: list[str], path: Path, line: int) -> None:
    where = f"line {line} (header)"
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise PointsFileError(path, where, "unknown column; not a serving points file?", unknown[0])
    repeated = [name for name in header if header.count(name) > 1]
    if repeated:
        raise PointsFileError(path, where, "column given twice", repeated[0])
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise PointsFileError(path, where, f"missing column '{missing[0]}'")


def _point(cells: dict[str, str], path: Path, where: str) -> ServingPoint:
    def fail(column: str, problem: str, value: object = InputError._MISSING) -> PointsFileError:
        return PointsFileError(path, f"{where}, column {column}", problem, value)

    values: dict[str, object] = {}
    for name in COLUMNS:
        raw = cells[name]
        cell = raw.strip()
        if not cell:
            if name not in _OPTIONAL:
                raise fail(name, "empty; this column needs a value")
            values[name] = "" if name == "notes" else None
        elif name in _BOOL:
            if cell.lower() not in ("true", "false"):
                raise fail(name, "expected True or False", raw)
            values[name] = cell.lower() == "true"
        elif name in _INT:
            number = whole_number(cell)
            if number is None:
                raise fail(name, f"expected a whole number, at least 1 (at most {MAX_WHOLE:,})", raw)
            values[name] = number
        elif name in _FLOAT:
            try:
                number = float(cell)
            except ValueError:
                raise fail(name, "expected a number", raw) from None
            if not math.isfinite(number) or number <= 0:
                raise fail(name, "must be a finite number above 0", raw)
            values[name] = number
        elif name == "date":
            if not _DATE.match(cell):
                raise fail(name, "expected a date YYYY-MM-DD", raw)
            values[name] = cell
        elif name in _TEXT:
            if name not in ("source_id", "model") and not _WORD.match(cell):
                raise fail(name, "expected one word (letters, digits, '_.+-')", raw)
            values[name] = cell
        else:
            values[name] = cell
    point = ServingPoint(**values)  # type: ignore[arg-type]
    problem = check_point(point)
    if problem is not None:
        column, text, value = problem
        raise fail(column, text, value)
    return point


def check_point(p: ServingPoint) -> tuple[str, str, object] | None:
    """The first contradiction inside a point, as (column, problem, value), or None."""
    if p.disagg:
        for name in _DISAGG_ONLY:
            if getattr(p, name) is None:
                return name, "empty; a disaggregated point (disagg True) needs it", ""
        if p.num_decode_gpu % p.tp:  # type: ignore[operator]
            return "num_decode_gpu", f"not a multiple of the decode workers' tp ({p.tp})", p.num_decode_gpu
        if p.num_prefill_gpu % p.prefill_tp:  # type: ignore[operator]
            return "num_prefill_gpu", f"not a multiple of the prefill workers' tp ({p.prefill_tp})", p.num_prefill_gpu
        if p.prefill_ep > p.prefill_tp:  # type: ignore[operator]
            return "prefill_ep", f"above prefill_tp ({p.prefill_tp}): a worker has prefill_tp GPUs", p.prefill_ep
    else:
        for name in _DISAGG_ONLY:
            if getattr(p, name) is not None:
                return name, "set on an aggregated point (disagg False); leave it empty", getattr(p, name)
    if p.ep > p.tp:
        return "ep", f"above tp ({p.tp}): an engine instance (or worker) has tp GPUs", p.ep
    if p.output_tok_s > p.total_tok_s * (1 + 1e-9):
        # per decoding GPU against per GPU of the system: compare what the whole system delivered
        return "output_tok_s_gpu", f"more output than total tokens ({p.total_tok_s_gpu:g} per GPU)", p.output_tok_s_gpu
    if p.median_tpot_ms is not None:
        expected = 1000 / p.median_tpot_ms
        if abs(p.tok_s_user - expected) > INTERACTIVITY_TOLERANCE * expected:
            return "tok_s_user", f"disagrees with 1000 / median_tpot_ms ({expected:.6g})", p.tok_s_user
    return None


def hardware_config_name(hardware: str, config_names: Collection[str]) -> str | None:
    """The hardware config a point's ``hardware`` names, or None.

    Points name GPUs as their source did: a config name (``h200-sxm``), InferenceX's GPU class (``h200``)
    or its runner label, the class and a provider suffix (``b200-cw-1``, ``mi355x-amds``). An exact config
    name wins; else the class before the first ``-``, as a config name or with ``-sxm`` (InferenceX's
    H100/H200 are SXM parts).
    """
    names = set(config_names)
    if hardware in names:
        return hardware
    base = hardware.split("-")[0].lower()
    return next((c for c in (base, f"{base}-sxm") if c in names), None)


def format_points(points: list[ServingPoint], comment: str | None = None) -> str:
    """The TSV text of ``points``: an optional ``#`` comment, the header, one row per point."""
    lines = [f"# {' '.join(comment.split())}"] if comment else []
    lines.append("\t".join(COLUMNS))
    for index, p in enumerate(points):
        problem = check_point(p)
        if problem is not None:
            column, text, value = problem
            raise PointsFileError(None, f"point {index + 1} ({column})", text, value)
        lines.append("\t".join(_cell(getattr(p, name)) for name in COLUMNS))
    return "\n".join(lines) + "\n"


def write_points(points: list[ServingPoint], path: Path | str, comment: str | None = None) -> None:
    """Write a points TSV atomically (a reader sees the old file or the whole new one)."""
    from meter.results.atomic import write_text_atomic

    write_text_atomic(Path(path), format_points(points, comment))


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return f"{value:.10g}"  # read back to the same figure for any measured value
    return " ".join(str(value).split())  # a tab or a newline in free text would break the row
