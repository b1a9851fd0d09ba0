"""nccl-tests' and rccl-tests' text output (``all_reduce_perf``, ``alltoall_perf``, ``all_gather_perf``), read into typed rows.

The format, as NVIDIA/nccl-tests writes it (src/common.cu, later src/util.cu; read at each tag, 2026-12):

    # nccl-tests version 2.19.6 nccl-headers=22807 nccl-library=22807    (2.18.5 and later)
    # Collective test starting: all_reduce_perf                           (2.16.7 and later; *_perf_mpi when built so)
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
all-to-all), and the data check. The columns are found by the header's names, so per-iteration
columns (``-I 1``) and timestamps are read too. Versions differ in ways the header tells apart:

- 2.13 and later: one header for every test (``size count type redop root``), ``#wrong`` counts the
  elements that failed the check; ``N/A`` where nothing was checked (``-c 0``, and the in-place
  all-to-all, which nccl-tests never checks since 2.13.1): that placement is "not checked", and the
  out-of-place check verifies the row.
- before 2.13: each test prints its own header (all-gather and send/recv have no ``redop`` column,
  all-to-all leaves it empty in its rows), and the ``error`` column holds the largest deviation from
  the expected data (``2e-07``), which nccl-tests itself judges against ``DeltaMaxValue(type) x (n-1)``;
  meter does the same.
- The test's name is printed since 2.16.7; without it the name comes from a command line in the log
  (``./build/all_reduce_perf -b 8 ...``), ``--collective``, or the rows themselves (the reduction
  operator, the root and busbw / algbw), and the reader says which; all-gather and all-to-all rows
  look alike, so those need one of the others.
- rccl-tests (ROCm/rccl-tests, AMD GPUs) writes the same format with a ``rccl-tests: Version`` line,
  ``#   Rank N Pid ... [0000:05:00.0] AMD Instinct MI300X`` device lines, and an in-place-only
  header when run without out-of-place (``-O 0``).

Several tests' outputs may follow each other in one file (``for t in ...; do ...; done > log``):
the ones meter models are read, the others (reduce_scatter, sendrecv, broadcast, ...) are listed as
skipped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from meter.config.schema import read_input_text
from meter.errors import InputError

MAX_OUTPUT_BYTES = 64 * 2**20
MODELLED = ("all_reduce", "all_to_all", "all_gather")
# Each test program's collective (the *_mpi builds are the same tests); only MODELLED ones are read.
PROGRAMS = {
    "all_reduce_perf": "all_reduce",
    "alltoall_perf": "all_to_all",
    "all_gather_perf": "all_gather",
    "reduce_scatter_perf": "reduce_scatter",
    "broadcast_perf": "broadcast",
    "reduce_perf": "reduce",
    "sendrecv_perf": "sendrecv",
    "alltoallv_perf": "alltoallv",
    "gather_perf": "gather",
    "scatter_perf": "scatter",
    "hypercube_perf": "hypercube",
}
BUS_FACTOR = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "broadcast": lambda n: 1.0,
    "reduce": lambda n: 1.0,
    "sendrecv": lambda n: 1.0,
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
# Before 2.13 the error column is the largest deviation, judged against DeltaMaxValue(type) x (n - 1)
# (src/common.cu, v2.0.0 to v2.11.0); integer types must match exactly (1e-200).
DELTA_MAX = {"half": 1e-2, "bfloat16": 1e-2, "float": 1e-5, "double": 1e-12}
REDUCTIONS = {"sum", "prod", "max", "min", "avg", "mulsum", "premulsum"}
_RANK = re.compile(
    r"^#\s+Rank\s+(?P<rank>\d+)(?:\s+Group\s+\d+)?\s+Pid\s+\d+\s+on\s+(?P<host>\S+)\s+device\s+(?P<device>\d+)"
    r"\s+\[[^\]]*\]\s+(?P<name>.+?)\s*$"
)
_AMD = re.compile(r"\bAMD\b|Instinct|Radeon|\bgfx\d")
_VERSION = re.compile(r"^#\s*nccl-tests version (?P<version>\S+)(?P<rest>.*)$")
_RCCL_VERSION = re.compile(r"^#?\s*rccl-tests:\s*Version\s*(?P<version>\S*)")
_PROGRAM = re.compile(r"^#\s*Collective test starting:\s*(?P<program>\S+)")
_SETTINGS = re.compile(r"^#\s*nThread\s+\d+.*$")
_COMMAND = re.compile(r"(?:^|[\s/=\"'])(?P<program>[a-z0-9_]+_perf(?:_mpi)?)(?=$|[\s\"';|&>])")
# A cross-check of each row's algbw against size / time: the file prints 2 decimals in 6 characters.
ALGBW_TOLERANCE = 0.05
MIN_TIME_US = 0.005  # nccl-tests prints times to 0.01 us; anything smaller is not its output
MAX_SIZE = 2**63 - 1  # it prints sizes as 64-bit integers
RATIO_TOLERANCE = 0.02


class NcclTestsError(InputError):
    """nccl-tests output that cannot be read."""


class _Untold(NcclTestsError):
    """A test that names neither itself nor a collective its rows alone tell."""


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
    wrong: float | None  # elements that failed (2.13+), or the largest deviation (before); None: not checked
    passed: bool | None = None  # the data check's verdict; None: not checked (N/A)


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
    root: int = -1

    @property
    def timing(self) -> NcclTiming | None:
        """The placement the row is measured by: out of place, or in place where only that ran."""
        return self.out_of_place or self.in_place

    @property
    def verified(self) -> bool:
        """Checked and found right: the main placement passed, and no checked placement failed (N/A is not checked)."""
        main = self.timing
        return (
            main is not None
            and main.passed is True
            and all(t.passed is not False for t in (self.out_of_place, self.in_place) if t)
        )


@dataclass(frozen=True)
class NcclTest:
    """One test's output: which collective, on which ranks, and its rows."""

    collective: str
    program: str | None
    version: str | None
    settings: str | None
    ranks: list[NcclRank]
    rows: list[NcclRow]
    wrong_column: str = "#wrong"  # before 2.13 an "error" column (a maximum deviation) instead
    tool: str = "nccl-tests"  # or rccl-tests
    collective_from: str = "the program name"  # how the collective was told

    @property
    def n_ranks(self) -> int:
        return len(self.ranks)

    @property
    def hosts(self) -> list[str]:
        return sorted({r.host for r in self.ranks})

    @property
    def told(self) -> str:
        """How the collective was told, as one phrase: 'all_to_all (as --collective says)'."""
        how = {"--collective": "as --collective says", "the command line in the log": "named on the log's command line"}
        return f"{self.collective} ({how.get(self.collective_from, self.collective_from)})"

    @property
    def vendor(self) -> str | None:
        names = " ".join(r.name for r in self.ranks)
        if self.tool == "rccl-tests" or _AMD.search(names):
            return "AMD"
        if re.search(r"NVIDIA|Tesla|GeForce|Quadro", names):
            return "NVIDIA"
        return None


@dataclass(frozen=True)
class NcclOutput:
    """A file's tests that meter models, and the ones it skipped (name, line)."""

    tests: list[NcclTest]
    skipped: list[tuple[str, int]]

    def skipped_line(self, path: Path | str) -> str | None:
        if not self.skipped:
            return None
        names = ", ".join(f"{name} (line {line})" for name, line in self.skipped)
        return f"{path}: skipped {names}: meter models {', '.join(MODELLED)}"


@dataclass
class _Block:
    start: int
    program: str | None = None
    command: str | None = None  # a *_perf program named on a command line in the log
    version: str | None = None
    tool: str = "nccl-tests"
    settings: str | None = None
    ranks: list[NcclRank] = field(default_factory=list)
    columns: list[str] | None = None
    in_place_only: bool = False
    group_line: str = ""
    rows: list[tuple[int, list[str]]] = field(default_factory=list)


def load_nccl_tests(path: Path | str, collective: str | None = None) -> list[NcclTest]:
    """Every test meter models in an nccl-tests output file; ``collective`` names it where the output does not."""
    return read_nccl_tests(path, collective).tests


def read_nccl_tests(path: Path | str, collective: str | None = None) -> NcclOutput:
    """The tests meter models in an nccl-tests or rccl-tests output file, and those it skipped."""
    path = Path(path)
    text = _read(path)
    blocks = _blocks(text.splitlines())
    if not blocks:
        raise NcclTestsError(path, None, "holds no nccl-tests results (no '#  Rank' lines and no data rows)")
    tests: list[NcclTest] = []
    skipped: list[tuple[str, int]] = []
    for b in blocks:
        if not b.rows and len(blocks) > 1:  # a test that stopped before its first row, in a log of several
            skipped.append((f"{_program_name(b.program or b.command or 'a test')} without data rows", b.start))
            continue
        try:
            test = _test(b, path, collective, several=len(blocks) > 1)
        except _Untold as exc:
            if len(blocks) == 1:
                raise
            skipped.append((f"a test ({exc.problem.split(' and ', 1)[-1]})", b.start))
            continue
        if isinstance(test, NcclTest):
            tests.append(test)
        else:
            skipped.append((test, b.start))
    if not tests:
        names = ", ".join(sorted({name for name, _ in skipped}))
        raise NcclTestsError(
            path, None, f"holds only {names}, which meter does not model (it reads {', '.join(MODELLED)})"
        )
    return NcclOutput(tests, skipped)


def _read(path: Path) -> str:
    return read_input_text(path, max_bytes=MAX_OUTPUT_BYTES, error=NcclTestsError, what="nccl-tests output")


def _program_name(text: str) -> str:
    """``./build/all_reduce_perf_mpi`` -> ``all_reduce_perf``."""
    name = text.rsplit("/", 1)[-1]
    return name[: -len("_mpi")] if name.endswith("_mpi") else name


def _blocks(lines: list[str]) -> list[_Block]:
    """Split the output into tests: a new one starts at a line only a test's start prints, once data rows came."""
    blocks: list[_Block] = []
    current: _Block | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        kind, value = _classify(stripped, current)
        if kind in ("version", "program", "settings", "command", "rccl") and (
            current is None or current.rows or _already(current, kind)
        ):
            current = _Block(start=number)
            blocks.append(current)
        if current is None:
            current = _Block(start=number)
            blocks.append(current)
        _feed(current, kind, value, stripped, number)
    return [b for b in blocks if b.rows or b.ranks]


def _already(block: _Block, kind: str) -> bool:
    return {
        "version": block.version is not None and block.tool == "nccl-tests",
        "program": block.program is not None,
        "settings": block.settings is not None,
        "command": block.command is not None or block.settings is not None,
        "rccl": block.tool == "rccl-tests",
    }[kind]


def _classify(line: str, block: _Block | None) -> tuple[str, object]:
    if m := _VERSION.match(line):
        return "version", m["version"]
    if m := _RCCL_VERSION.match(line):
        return "rccl", m["version"] or None
    if m := _PROGRAM.match(line):
        return "program", m["program"]
    if _SETTINGS.match(line):
        return "settings", line.lstrip("# ").strip()
    if m := _RANK.match(line):
        return "rank", m
    if line.startswith("#"):
        return "comment", None
    if line.split()[0].isdigit() and block is not None and block.columns is not None:
        return "row", line.split()
    if m := _COMMAND.search(line):
        return "command", m["program"]
    return "noise", None  # NCCL INFO lines, MPI warnings, a shell prompt


def _feed(block: _Block, kind: str, value, line: str, number: int) -> None:
    if kind == "version":
        block.version = value
    elif kind == "rccl":
        block.tool, block.version = "rccl-tests", value or block.version
    elif kind == "program":
        block.program = value
    elif kind == "command":
        block.command = value
    elif kind == "settings":
        block.settings = value
    elif kind == "rank":
        block.ranks.append(NcclRank(int(value["rank"]), value["host"], int(value["device"]), value["name"]))
    elif kind == "comment":
        names = line.lstrip("#").split()
        if names[:2] == ["size", "count"]:
            block.columns = names
            block.in_place_only = "in-place" in block.group_line and "out-of-place" not in block.group_line
        elif "place" in line:
            block.group_line = line
    elif kind == "row":
        block.rows.append((number, value))


def _test(block: _Block, path: Path, collective: str | None, *, several: bool = False) -> NcclTest | str:
    """The block's test, or the name of a test meter skips."""
    where = f"line {block.start}"
    named = block.program or block.command
    if named is not None:
        name = PROGRAMS.get(_program_name(named))
        if name is None:
            return _program_name(named)
        source = "the program name" if block.program else "the command line in the log"
        if collective is not None and name in MODELLED and collective != name:
            raise NcclTestsError(path, where, f"the output is {_program_name(named)}, not {collective}", collective)
    else:
        name, source = None, ""
    if block.columns is None:
        raise NcclTestsError(path, where, "no column header ('# size count type ...') before the data rows")
    columns = block.columns
    missing = [c for c in ("size", "count", "algbw", "busbw") if c not in columns]
    if "time" not in columns and "cputime" not in columns:
        missing.append("time")
    if missing:
        raise NcclTestsError(
            path, f"line {block.start}: header", f"lacks the column(s) {', '.join(missing)}", " ".join(columns)
        )
    if not block.ranks:
        raise NcclTestsError(path, where, "no '#  Rank N ... device N [bus] NAME' lines: which GPUs ran it?")
    n = len(block.ranks)
    rows = [_row(columns, tokens, number, path, n, block.in_place_only) for number, tokens in block.rows]
    if not rows:
        raise NcclTestsError(path, where, "no data rows")
    if name is None:
        name, source = _infer(block, rows, n, path, collective, several)
    if name not in MODELLED:
        return next((p for p, c in PROGRAMS.items() if c == name), name)
    wrong = "#wrong" if "#wrong" in columns else "error"
    if _AMD.search(" ".join(r.name for r in block.ranks)):
        block.tool = "rccl-tests"  # an output without rccl-tests' version line: nccl-tests does not run on AMD GPUs
    return NcclTest(name, block.program or block.command, block.version, block.settings, block.ranks, rows, wrong,
                    block.tool, source)  # fmt: skip


def _infer(
    block: _Block, rows: list[NcclRow], n: int, path: Path, collective: str | None, several: bool
) -> tuple[str, str]:
    """The collective of an output that does not name its test, from the rows' operator, root and busbw / algbw."""
    where = f"line {block.start}"
    big = max((r for r in rows if r.timing and r.timing.algbw_gb_s > 0), key=lambda r: r.size_bytes, default=None)
    ratio = big.timing.busbw_gb_s / big.timing.algbw_gb_s if big else None

    def fits(name: str) -> bool:
        expected = BUS_FACTOR[name](n)
        return ratio is not None and abs(ratio - expected) <= RATIO_TOLERANCE * expected + 0.02

    first = rows[0]
    reduction = first.redop in REDUCTIONS
    if first.root >= 0:
        candidates = ["reduce"] if reduction else ["broadcast"]
    elif first.redop == "":  # before 2.13 only the all-to-all left the redop column empty
        candidates = ["all_to_all"]
    elif reduction:
        candidates = [c for c in ("all_reduce", "reduce_scatter", "sendrecv") if fits(c)]
    else:  # "none", or no redop column (all-gather and send/recv before 2.13)
        options = (
            ("all_gather", "sendrecv") if "redop" not in block.columns else ("all_gather", "all_to_all", "sendrecv")
        )
        candidates = [c for c in options if fits(c)]
    unnamed = "rccl-tests do not" if block.tool == "rccl-tests" else "nccl-tests before 2.16.7 do not"
    if collective is not None and (collective in candidates or not candidates):
        return collective, "--collective"
    if collective is not None and not several:  # in a log of several tests, --collective names the untold ones
        raise NcclTestsError(
            path, where, f"--collective {collective} does not fit its rows, which are a {' or '.join(candidates)}'s"
        )
    if len(candidates) == 1:
        how = f"redop {first.redop or 'empty'}, root {first.root}" + (f", busbw/algbw {ratio:.3g}" if ratio else "")
        return candidates[0], f"inferred from the rows ({how}; {unnamed} name the test)"
    told = f"its rows fit {' and '.join(candidates)} alike" if candidates else "its rows fit no collective meter knows"
    raise _Untold(path, where, f"does not name its test ({unnamed}) and {told}: give --collective NAME")


def _row(columns: list[str], tokens: list[str], number: int, path: Path, n: int, in_place_only: bool) -> NcclRow:
    where = f"line {number}"
    if len(tokens) < 4:
        raise NcclTestsError(path, where, "a data row with too few columns", " ".join(tokens))
    index: dict[str, list[int]] = {}
    for i, name in enumerate(columns):
        index.setdefault(name, []).append(i)
    old_header = "redop" in index and "root" not in index  # before 2.13: all-to-all leaves its redop empty
    if old_header and len(tokens) == len(columns) - 1 and not tokens[index["redop"][0]].isalpha():
        tokens = tokens[: index["redop"][0]] + [""] + tokens[index["redop"][0] :]  # before 2.13, all-to-all's empty op
    size = _int(tokens, index, "size", path, where)
    count = _int(tokens, index, "count", path, where)
    dtype = tokens[index["type"][0]] if "type" in index and index["type"][0] < len(tokens) else "float"
    times = index.get("time") or index.get("cputime") or []
    checks = index.get("#wrong") or index.get("error") or []

    def timing(k: int) -> NcclTiming | None:
        if len(times) <= k or times[k] >= len(tokens):
            return None
        for name in ("algbw", "busbw"):
            if len(index[name]) <= k:
                raise NcclTestsError(path, f"{where}: {name}", "the header has fewer algbw/busbw than time columns")
        time_us = _float(tokens, times[k], "time", path, where, positive=True)
        if time_us < MIN_TIME_US:
            raise NcclTestsError(path, f"{where}: time", f"below the {MIN_TIME_US} us nccl-tests can print", time_us)
        check = checks[k] if len(checks) > k else None
        wrong, passed = _check(tokens, check, dtype, n, path, where, deviation="#wrong" not in index)
        return NcclTiming(
            time_us=time_us,
            algbw_gb_s=_float(tokens, index["algbw"][k], "algbw", path, where),
            busbw_gb_s=_float(tokens, index["busbw"][k], "busbw", path, where),
            wrong=wrong,
            passed=passed,
        )

    first, second = timing(0), timing(1)
    out_of_place, in_place = (None, first) if in_place_only else (first, second)
    for t in (out_of_place, in_place):
        if t is not None:
            expected = size / t.time_us / 1e3
            if abs(t.algbw_gb_s - expected) > ALGBW_TOLERANCE * expected + 0.01:
                raise NcclTestsError(
                    path, f"{where}: algbw", f"disagrees with size / time ({expected:.4g} GB/s)", t.algbw_gb_s
                )
    if out_of_place is None and in_place is None:
        raise NcclTestsError(path, where, "a data row without a time", " ".join(tokens))
    mins = [_float(tokens, i, "i_min", path, where, positive=True) for i in index.get("i_min", []) if i < len(tokens)]
    maxs = [_float(tokens, i, "i_max", path, where, positive=True) for i in index.get("i_max", []) if i < len(tokens)]
    root = tokens[index["root"][0]] if "root" in index and index["root"][0] < len(tokens) else "-1"
    return NcclRow(
        line=number,
        size_bytes=size,
        count=count,
        dtype=dtype,
        redop=tokens[index["redop"][0]] if "redop" in index and index["redop"][0] < len(tokens) else "none",
        out_of_place=out_of_place,
        in_place=in_place,
        min_us=min(mins) if mins else None,
        max_us=max(maxs) if maxs else None,
        root=int(root) if re.fullmatch(r"-?\d{1,6}", root) else -1,
    )


def _int(tokens: list[str], index: dict[str, list[int]], name: str, path: Path, where: str) -> int:
    text = _token(tokens, index, name)
    if text is None or not text.isdigit() or not text.isascii():
        raise NcclTestsError(path, f"{where}: {name}", "expected a whole number, at least 0", text)
    if len(text) > 20 or int(text) > MAX_SIZE:
        raise NcclTestsError(path, f"{where}: {name}", "larger than the 64-bit sizes nccl-tests prints", text)
    return int(text)


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
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise NcclTestsError(
            path,
            f"{where}: {name}",
            "must be a finite number above 0" if positive else "must be a finite number, at least 0",
            value,
        )
    return value


def _check(
    tokens: list[str], i: int | None, dtype: str, n: int, path: Path, where: str, *, deviation: bool
) -> tuple[float | None, bool | None]:
    """(the printed value, passed): N/A is not checked; a count passes at 0, a deviation within nccl-tests' bound."""
    if i is None or i >= len(tokens) or tokens[i] == "N/A":
        return None, None
    text = tokens[i]
    flagged = text.endswith("*")  # rccl-tests marks a value over its threshold with an asterisk
    if flagged:
        tokens = [*tokens[:i], text.rstrip("*"), *tokens[i + 1 :]]
    value = _float(tokens, i, "#wrong", path, where)
    if flagged:
        return value, False
    if deviation:
        return value, value <= DELTA_MAX.get(dtype, 1e-200) * max(n - 1, 1)
    return value, value == 0


def bus_factor(collective: str, n_ranks: int) -> float:
    """busbw / algbw for a collective over ``n_ranks`` (nccl-tests' convention)."""
    return BUS_FACTOR[collective](n_ranks)
