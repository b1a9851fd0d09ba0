"""nccl-tests' text output (``all_reduce_perf``, ``alltoall_perf``, ``all_gather_perf``), read into typed rows.

The format, as NVIDIA/nccl-tests writes it (src/util.cu, 2.13 to 2.19):

    # nccl-tests version 2.19.6 nccl-headers=22807 nccl-library=22807
    # Collective test starting: all_reduce_perf          (2.15 and later; older outputs do not say)
    # nThread 1 nGpus 8 minBytes 8 maxBytes 8589934592 step: 2(factor) warmup iters: 5 iters: 20 ...
    # Using devices
    #  Rank  0 Group  0 Pid  12345 on    node01 device  0 [0000:18:00] NVIDIA H100 80GB HBM3
    #       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong
    #        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)  (GB/s)  (GB/s)
         8388608       2097152     float     sum      -1    123.4   67.98  118.96       0    121.0   69.33  121.33       0
    # Out of bounds values : 0 OK
    # Avg bus bandwidth    : 98.21

Each data row gives one message size ``S`` (bytes, the ``size`` column) timed out of place and in
place: the time per iteration in microseconds, averaged over the iterations and the ranks,
``algbw = S / t`` and ``busbw = algbw x 2(n-1)/n`` (all-reduce) or ``x (n-1)/n`` (all-gather,
all-to-all), and ``#wrong``, the elements that failed verification (``N/A`` with ``-c 0``). The
columns are found by the header's names, so per-iteration columns (``-I 1``) and timestamps are
read too. Several tests' outputs may follow each other in one file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from meter.config.schema import read_input_text
from meter.errors import InputError

MAX_OUTPUT_BYTES = 64 * 2**20
PROGRAMS = {"all_reduce_perf": "all_reduce", "alltoall_perf": "all_to_all", "all_gather_perf": "all_gather"}
BUS_FACTOR = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
}
# nccl-tests' type names -> the run file's payload names
TYPES = {
    "half": "fp16",
    "float": "fp32",
    "double": "fp64",
    "bfloat16": "bf16",
    "f8e4m3": "fp8",
    "f8e5m2": "fp8",
    "int8": "int8",
    "uint8": "uint8",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
}
_RANK = re.compile(
    r"^#\s+Rank\s+(?P<rank>\d+)(?:\s+Group\s+\d+)?\s+Pid\s+\d+\s+on\s+(?P<host>\S+)\s+device\s+(?P<device>\d+)"
    r"\s+\[[^\]]*\]\s+(?P<name>.+?)\s*$"
)
_VERSION = re.compile(r"^#\s*nccl-tests version (?P<version>\S+)(?P<rest>.*)$")
_PROGRAM = re.compile(r"^#\s*Collective test starting:\s*(?P<program>\S+)")
_SETTINGS = re.compile(r"^#\s*nThread\s+\d+.*$")
# A cross-check of each row's algbw against size / time: the file prints 2 decimals in 6 characters.
ALGBW_TOLERANCE = 0.05


class NcclTestsError(InputError):
    """nccl-tests output that cannot be read."""


@dataclass(frozen=True)
class NcclRank:
    rank: int
    host: str
    device: int
    name: str


@dataclass(frozen=True)
class NcclTiming:
    """One placement (out of place or in place) of one row."""

    time_us: float
    algbw_gb_s: float
    busbw_gb_s: float
    wrong: float | None  # None: not verified (-c 0 prints N/A)


@dataclass(frozen=True)
class NcclRow:
    line: int
    size_bytes: int
    count: int
    dtype: str
    redop: str
    out_of_place: NcclTiming | None
    in_place: NcclTiming | None
    min_us: float | None = None  # per-iteration minimum and maximum (-I 1)
    max_us: float | None = None


@dataclass(frozen=True)
class NcclTest:
    """One test's output: which collective, on which ranks, and its rows."""

    collective: str
    program: str | None
    version: str | None
    settings: str | None
    ranks: list[NcclRank]
    rows: list[NcclRow]
    wrong_column: str = "#wrong"  # very old outputs print an "error" column (a maximum difference) instead

    @property
    def n_ranks(self) -> int:
        return len(self.ranks)

    @property
    def hosts(self) -> list[str]:
        return sorted({r.host for r in self.ranks})


@dataclass
class _Block:
    start: int
    program: str | None = None
    version: str | None = None
    settings: str | None = None
    ranks: list[NcclRank] = field(default_factory=list)
    columns: list[str] | None = None
    rows: list[tuple[int, list[str]]] = field(default_factory=list)


def load_nccl_tests(path: Path | str, collective: str | None = None) -> list[NcclTest]:
    """Every test in an nccl-tests output file; ``collective`` names it where the output does not."""
    path = Path(path)
    text = _read(path)
    blocks = _blocks(text.splitlines(), path)
    tests = [_test(b, path, collective) for b in blocks]
    if not tests:
        raise NcclTestsError(path, None, "holds no nccl-tests results (no '#  Rank' lines and no data rows)")
    return tests


def _read(path: Path) -> str:
    return read_input_text(path, max_bytes=MAX_OUTPUT_BYTES, error=NcclTestsError, what="nccl-tests output")


def _blocks(lines: list[str], path: Path) -> list[_Block]:
    """Split the output into tests: a new one starts at a version line, or a header after data rows."""
    blocks: list[_Block] = []
    current: _Block | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        version, program = _VERSION.match(stripped), _PROGRAM.match(stripped)
        if version or (program and (current is None or current.program or current.rows)):
            current = _Block(start=number)
            blocks.append(current)
        if current is None:
            current = _Block(start=number)
            blocks.append(current)
        _feed(current, stripped, number, version, program)
    return [b for b in blocks if b.rows or b.ranks]


def _feed(block: _Block, line: str, number: int, version, program) -> None:
    if version:
        block.version = version.group("version")
    elif program:
        block.program = program.group("program")
    elif _SETTINGS.match(line):
        block.settings = line.lstrip("# ").strip()
    elif rank := _RANK.match(line):
        block.ranks.append(NcclRank(int(rank["rank"]), rank["host"], int(rank["device"]), rank["name"]))
    elif line.startswith("#"):
        names = line.lstrip("#").split()
        if names[:2] == ["size", "count"]:
            block.columns = names
    elif block.columns is not None:
        block.rows.append((number, line.split()))


def _test(block: _Block, path: Path, collective: str | None) -> NcclTest:
    where = f"line {block.start}"
    program_collective = PROGRAMS.get(block.program or "")
    if block.program and program_collective is None:
        raise NcclTestsError(
            path, where, f"{block.program} is not a collective meter models (it reads {', '.join(PROGRAMS)})"
        )
    if collective is not None and program_collective is not None and collective != program_collective:
        raise NcclTestsError(path, where, f"the output is {block.program}, not {collective}", collective)
    name = program_collective or collective
    if name is None:
        raise NcclTestsError(
            path, where, "does not name its test (nccl-tests before 2.15 do not): give --collective NAME"
        )
    if block.columns is None:
        raise NcclTestsError(path, where, "no column header ('# size count type ...') before the data rows")
    if not block.ranks:
        raise NcclTestsError(path, where, "no '#  Rank N ... device N [bus] NAME' lines: which GPUs ran it?")
    rows = [_row(block.columns, tokens, number, path) for number, tokens in block.rows]
    rows = [r for r in rows if r is not None]
    if not rows:
        raise NcclTestsError(path, where, "no data rows")
    wrong = "#wrong" if "#wrong" in block.columns else "error"
    return NcclTest(name, block.program, block.version, block.settings, block.ranks, rows, wrong)


def _row(columns: list[str], tokens: list[str], number: int, path: Path) -> NcclRow | None:
    where = f"line {number}"
    if len(tokens) < 4:
        raise NcclTestsError(path, where, "a data row with too few columns", " ".join(tokens))
    index: dict[str, list[int]] = {}
    for i, name in enumerate(columns):
        index.setdefault(name, []).append(i)
    size = _int(tokens, index, "size", path, where)
    count = _int(tokens, index, "count", path, where)

    def timing(k: int) -> NcclTiming | None:
        times = index.get("time", []) or index.get("cputime", [])
        if len(times) <= k or times[k] >= len(tokens):
            return None
        return NcclTiming(
            time_us=_float(tokens, times[k], "time", path, where, positive=True),
            algbw_gb_s=_float(tokens, index["algbw"][k], "algbw", path, where),
            busbw_gb_s=_float(tokens, index["busbw"][k], "busbw", path, where),
            wrong=_wrong(tokens, (index.get("#wrong") or index.get("error") or [None, None])[k], path, where),
        )

    out_of_place, in_place = timing(0), timing(1)
    for t in (out_of_place, in_place):
        if t is not None:
            expected = size / (t.time_us * 1e-6) / 1e9
            if abs(t.algbw_gb_s - expected) > ALGBW_TOLERANCE * expected + 0.01:
                raise NcclTestsError(
                    path, f"{where}: algbw", f"disagrees with size / time ({expected:.4g} GB/s)", t.algbw_gb_s
                )
    mins = [_float(tokens, i, "i_min", path, where, positive=True) for i in index.get("i_min", []) if i < len(tokens)]
    maxs = [_float(tokens, i, "i_max", path, where, positive=True) for i in index.get("i_max", []) if i < len(tokens)]
    return NcclRow(
        line=number,
        size_bytes=size,
        count=count,
        dtype=tokens[index["type"][0]] if "type" in index and index["type"][0] < len(tokens) else "float",
        redop=tokens[index["redop"][0]] if "redop" in index and index["redop"][0] < len(tokens) else "none",
        out_of_place=out_of_place,
        in_place=in_place,
        min_us=min(mins) if mins else None,
        max_us=max(maxs) if maxs else None,
    )


def _int(tokens: list[str], index: dict[str, list[int]], name: str, path: Path, where: str) -> int:
    try:
        value = int(tokens[index[name][0]])
    except (KeyError, IndexError, ValueError):
        raise NcclTestsError(path, f"{where}: {name}", "expected a whole number", _token(tokens, index, name)) from None
    if value < 0:
        raise NcclTestsError(path, f"{where}: {name}", "must be at least 0", value)
    return value


def _token(tokens: list[str], index: dict[str, list[int]], name: str) -> str | None:
    positions = index.get(name, [])
    return tokens[positions[0]] if positions and positions[0] < len(tokens) else None


def _float(tokens: list[str], i: int, name: str, path: Path, where: str, *, positive: bool = False) -> float:
    try:
        value = float(tokens[i])
    except (IndexError, ValueError):
        raise NcclTestsError(
            path, f"{where}: {name}", "expected a number", tokens[i] if i < len(tokens) else None
        ) from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0 or (positive and value == 0):
        raise NcclTestsError(
            path,
            f"{where}: {name}",
            "must be a finite number above 0" if positive else "must be a finite number, at least 0",
            value,
        )
    return value


def _wrong(tokens: list[str], i: int | None, path: Path, where: str) -> float | None:
    if i is None or i >= len(tokens) or tokens[i] == "N/A":
        return None
    return _float(tokens, i, "#wrong", path, where)


def bus_factor(collective: str, n_ranks: int) -> float:
    """busbw / algbw for a collective over ``n_ranks`` (nccl-tests' convention)."""
    return BUS_FACTOR[collective](n_ranks)
