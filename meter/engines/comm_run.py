"""nccl-tests results as a communication run: typed :class:`CommResult` rows in a run document (kind import).

Each row becomes one result in nccl-tests' own terms: ``message_bytes`` is the size column ``S``,
``time_s`` the out-of-place time (the in-place one where only that ran; the range spans in place, or
the per-iteration minimum and maximum with ``-I 1``), ``algbw``/``busbw`` as printed, ``verified``
when the measured placement checked its data and found it right and no other check failed (``N/A``,
as in the in-place all-to-all nccl-tests never checks, is "not checked", not a failure). The bytes that leave a rank per iteration follow from the collective:
``2(n-1)/n x S`` for a ring all-reduce, ``(n-1)/n x S`` for all-to-all and all-gather. Ranks on one
host are an intra-node measurement, ranks on several an inter-node one; ``meter cost cluster
--comm-run`` takes the links from it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from meter.config.hardware import HardwareSpec, match_device_name
from meter.engines.nccl_tests import REDUCTIONS, TYPES, NcclRow, NcclTest, NcclTestsError, bus_factor
from meter.results.cases import CommCase
from meter.results.document import (
    DeviceInfo,
    DistributedLayout,
    ImportInfo,
    NodeInfo,
    RankInfo,
    RunDocument,
    RunMetadata,
)
from meter.results.records import CommResult


def comm_results(test: NcclTest, path: Path) -> list[CommResult]:
    n = _checked_ranks(test, path)
    scope = "intra-node" if len(test.hosts) == 1 else "inter-node"
    op = kept_op(test)
    rows = [row for row in test.rows if row.timing is not None and (op is None or row.redop == op)]
    return [_result(test, row, n, scope, path) for row in rows]


def kept_op(test: NcclTest) -> str | None:
    """With several reduction operators (``-o all``), the one kept: sum, what training reduces with."""
    ops = sorted({r.redop for r in test.rows})
    if len(ops) < 2 or not set(ops) <= REDUCTIONS:
        return None
    return "sum" if "sum" in ops else ops[0]


def _checked_ranks(test: NcclTest, path: Path) -> int:
    """The ranks the '# Rank' lines list, checked against the ratio busbw / algbw the rows imply."""
    n = test.n_ranks
    if n < 2:
        raise NcclTestsError(path, "ranks", f"one rank: a {test.collective} moves no bytes between GPUs", n)
    largest = max(
        (r for r in test.rows if r.timing and r.timing.algbw_gb_s > 0),
        key=lambda r: r.size_bytes,
        default=None,
    )
    if largest is not None and largest.timing is not None:
        t = largest.timing
        expected = bus_factor(test.collective, n)
        if abs(t.busbw_gb_s / t.algbw_gb_s - expected) > 0.02 * expected + 0.02:
            raise NcclTestsError(
                path,
                f"line {largest.line}: busbw",
                f"busbw / algbw = {t.busbw_gb_s / t.algbw_gb_s:.3f}, not the {expected:.3f} of a "
                f"{test.collective} over the {n} rank(s) listed",
                t.busbw_gb_s,
            )
    return n


def _result(test: NcclTest, row: NcclRow, n: int, scope: str, path: Path) -> CommResult:
    oop, ip = row.timing, row.in_place
    assert oop is not None  # comm_results keeps rows with a time
    times = [t.time_us for t in (oop, ip) if t is not None]
    low = row.min_us if row.min_us is not None else min(times)
    high = row.max_us if row.max_us is not None else max(times)
    payload = TYPES.get(row.dtype)
    if payload is None:
        raise NcclTestsError(path, f"line {row.line}: type", f"not a type meter knows ({', '.join(TYPES)})", row.dtype)
    share = row.size_bytes // n if test.collective == "all_gather" else row.size_bytes
    case = CommCase(collective=test.collective, bytes_per_rank=share, payload=payload)  # type: ignore[arg-type]
    peers = row.size_bytes * bus_factor(test.collective, n)
    return CommResult(
        id=case.id,
        scope=scope,  # type: ignore[arg-type]
        group_size=n,
        case=case,
        time_s=oop.time_us * 1e-6,
        time_min_s=min(low, oop.time_us) * 1e-6,
        time_max_s=max(high, oop.time_us) * 1e-6,
        message_bytes=row.size_bytes,
        bytes_to_peers_per_rank=peers,
        algbw_gb_s=oop.algbw_gb_s,
        busbw_gb_s=oop.busbw_gb_s,
        verified=row.verified,
        ranks=n,
    )


def comm_run(
    tests: list[tuple[Path, NcclTest]],
    *,
    specs: list[HardwareSpec],
    hardware: HardwareSpec | None = None,
    command: list[str] | None = None,
    notes: list[str] | None = None,
) -> RunDocument:
    """One run document (kind import) holding every test's results, with the GPUs and hosts they ran on."""
    from meter.device import host as probe
    from meter.results import metadata as md
    from meter.results.runfile import new_run_id

    first = tests[0][1]
    names = sorted({r.name for _, t in tests for r in t.ranks})
    spec = hardware or (match_device_name(names[0], specs) if len(names) == 1 else None)
    results = []
    for path, test in tests:
        results += comm_results(test, path)
    _unique(results, tests[0][0])
    device = DeviceInfo(
        kind="cuda",
        torch_device=f"cuda:{first.ranks[0].device}",
        name=names[0] if len(names) == 1 else " + ".join(names),
        hardware_config=spec.name if spec else None,
    )
    metadata = RunMetadata(
        device=device,
        software=probe.software_info(import_torch=False),
        git=probe.git_info(),
        host=probe.host_info(),
        command=list(command or []),
        hardware=md.hardware_summary(spec),
        imported=ImportInfo(
            tool=" + ".join(sorted({t.tool for _, t in tests})),
            path=", ".join(str(p) for p, _ in tests),
            version=first.version,
            command=", ".join(sorted({t.program for _, t in tests if t.program})) or None,
            notes=sorted({t.settings for _, t in tests if t.settings})
            + [f"{p}: the test is {t.told}" for p, t in tests if t.collective_from != "the program name"]
            + [
                f"{p}: {t.collective} rows of {', '.join(sorted({r.redop for r in t.rows}))}: only {op} kept"
                for p, t in tests
                if (op := kept_op(t))
            ]
            + list(notes or []),
            vendor=" + ".join(sorted({v for _, t in tests if (v := t.vendor)})) or None,
        ),
        distributed=_layout(first),
    )
    now = md.utc_now()
    return RunDocument(
        run_id=new_run_id(),
        kind="import",
        status="complete",
        started_at=now,
        finished_at=now,
        metadata=metadata,
        cases=[],
        communication=results,
    )


def _unique(results: list[CommResult], path: Path) -> None:
    seen: dict[tuple[str, str], int] = {}
    for r in results:
        key = (r.id, r.scope)
        if key in seen:
            raise NcclTestsError(path, r.id, f"measured twice in {r.scope} scope (the same test given twice?)")
        seen[key] = 1


def _layout(test: NcclTest) -> DistributedLayout:
    hosts = test.hosts
    nodes = [
        NodeInfo(
            node_rank=i,
            hostname=host,
            ranks=[
                RankInfo(rank=r.rank, local_rank=r.device, device=f"cuda:{r.device}")
                for r in test.ranks
                if r.host == host
            ],
        )
        for i, host in enumerate(hosts)
    ]
    per_node = max(len(n.ranks) for n in nodes)
    return DistributedLayout(
        world_size=test.n_ranks,
        local_world_size=per_node,
        n_nodes=len(hosts),
        backend="rccl" if test.tool == "rccl-tests" else "nccl",
        launcher=test.tool,
        nodes=nodes,
    )


def is_nccl_tests_output(path: Path | str) -> bool:
    """Whether a file is nccl-tests' text output rather than a run file (its first lines say so)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False  # a FIFO would block here; the run-file reader refuses it in one line
        with open(path, "rb") as f:
            head = f.read(256 * 1024)  # NCCL_DEBUG=INFO lines can come before the header
    except OSError:
        return False
    return not head.lstrip().startswith(b"{") and any(
        marker in head
        for marker in (
            b"nccl-tests version",
            b"Collective test starting",
            b"# Using devices",
            b"rccl-tests",
            b"# nThread ",
        )
    )


def load_comm_run(path: Path | str, specs: list[HardwareSpec], collective: str | None = None) -> RunDocument:
    """A communication run from a run file, or straight from nccl-tests' (or rccl-tests') output."""
    from meter.engines.nccl_tests import read_nccl_tests
    from meter.results.load import load_run

    if not is_nccl_tests_output(path):
        if collective is not None:
            raise NcclTestsError(path, "--collective", "names the test of nccl-tests output; this is a run file")
        return load_run(path)
    output = read_nccl_tests(path, collective)
    skipped = output.skipped_line(path)
    return comm_run([(Path(path), t) for t in output.tests], specs=specs, notes=[skipped] if skipped else None)
