"""``meter import nccl-tests FILE...``: another tool's results as a run file (docs/measure.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meter.cli.common import OneLineParser, locator
from meter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "import",
        help="another tool's results as a run file (nccl-tests)",
        description="Convert results that another tool measured into a run file of kind 'import'.",
    )
    tools = p.add_subparsers(dest="tool", metavar="{nccl-tests}", parser_class=OneLineParser)
    tools.required = True
    n = tools.add_parser(
        "nccl-tests",
        parents=[common],
        help="all_reduce_perf / alltoall_perf / all_gather_perf text output (nccl-tests, rccl-tests) -> a communication run",
        description="Read nccl-tests' text output (one or several tests per file) into a communication run "
        "that meter cost cluster --comm-run takes: each size's time, algbw, busbw, bytes to peers, verified.",
        epilog="Example: all_reduce_perf -b 8 -e 8G -f 2 -g 8 > ar.txt; alltoall_perf -b 8 -e 8G -f 2 -g 8 > a2a.txt; "
        "meter import nccl-tests ar.txt a2a.txt -o runs/nccl.json; meter cost cluster --comm-run runs/nccl.json",
    )
    n.add_argument("files", nargs="+", metavar="FILE", help="nccl-tests output (stdout of a *_perf program)")
    n.add_argument(
        "--collective",
        choices=["all_reduce", "all_to_all", "all_gather"],
        help="the test, for outputs that do not name it and whose rows do not tell (nccl-tests before 2.16.7)",
    )
    n.add_argument("--hardware", help="hardware config of the GPUs (default: matched by the name nccl-tests prints)")
    n.add_argument("-o", "--output", metavar="FILE", help="the run file (default runs/<run id>-nccl-tests.json)")
    n.add_argument("--json", action="store_true", help="print the run document as JSON")
    n.set_defaults(handler=run_nccl_tests)


def run_nccl_tests(args: argparse.Namespace) -> int:
    from meter.config.hardware import list_hardware, load_hardware
    from meter.engines.comm_run import comm_run
    from meter.engines.nccl_tests import read_nccl_tests
    from meter.jsonable import to_jsonable
    from meter.results.atomic import write_json_atomic
    from meter.results.load import check_consistency
    from meter.results.metadata import command_line
    from meter.results.runfile import default_run_path

    loc = locator(args)
    tests, skipped = [], []
    for f in args.files:
        output = read_nccl_tests(f, args.collective)
        tests += [(Path(f), t) for t in output.tests]
        if line := output.skipped_line(f):
            skipped.append(line)
    hardware = load_hardware(args.hardware, loc) if args.hardware else None
    doc = comm_run(tests, specs=list_hardware(loc), hardware=hardware, command=command_line(), notes=skipped)
    path = Path(args.output) if args.output else default_run_path(Path("runs"), "nccl-tests")
    check_consistency(doc, path)
    write_json_atomic(path, to_jsonable(doc))
    if args.json:
        emit_json(doc)
        return 0
    rows = [
        [
            c.case.collective,
            c.case.payload,
            c.scope,
            c.ranks,
            f"{c.message_bytes:,}",
            f"{c.time_s * 1e6:.4g}",
            f"{c.algbw_gb_s:.4g}",
            f"{c.busbw_gb_s:.4g}",
            f"{c.peer_bytes_per_s / 1e9:.4g}",
            "yes" if c.verified else "NO",
        ]
        for c in doc.communication
    ]
    device, imported = doc.metadata.device, doc.metadata.imported
    vendor = f"{imported.vendor} " if imported and imported.vendor and imported.vendor not in device.name else ""
    tool = imported.tool if imported else "nccl-tests"
    title = f"{tool} on {vendor}{device.name} ({device.hardware_config or 'no hardware config matched'})"
    headers = ["collective", "type", "scope", "ranks", "size B", "time us", "algbw GB/s", "busbw GB/s"]
    print(table(headers + ["to peers GB/s", "verified"], rows, title=title))
    for note in imported.notes if imported else []:
        if not note.startswith("nThread"):  # the tests skipped, how a test was told, the operator kept
            print(note, file=sys.stderr)
    print(f"Run file: {path}  (meter cost cluster --comm-run {path})", file=sys.stderr)
    return 0
