"""``meter import TOOL FILE...``: another tool's results in meter's files (docs/measure.md).

``nccl-tests`` becomes a communication run; ``inferencex``, ``vllm`` and ``sglang`` (serving benchmarks at
several concurrencies) become a serving points TSV (meter/engines/points.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meter.cli.common import OneLineParser, locator, number
from meter.cli.output import emit_json, table


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "import",
        help="another tool's results as a run file (nccl-tests) or a serving points file (inferencex, vllm, sglang)",
        description="Convert results that another tool measured into a run file of kind 'import' (nccl-tests) "
        "or a serving points TSV (InferenceX results, vLLM and SGLang benchmarks at several concurrencies).",
    )
    tools = p.add_subparsers(dest="tool", metavar="{nccl-tests,inferencex,vllm,sglang}", parser_class=OneLineParser)
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
    _register_points(tools, common)


def _register_points(tools: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from meter import domains as D

    x = tools.add_parser(
        "inferencex",
        parents=[common],
        help="InferenceX result JSON (agg_*.json, single-node or disaggregated) -> a serving points TSV",
        description="Read InferenceX's aggregated per-point result JSON (utils/process_result.py: hw, framework, "
        "precision, isl, osl, conc, tp/ep/dp_attention or the prefill_*/decode_* multinode fields, median_tpot in "
        "seconds, tput_per_gpu, output_tput_per_gpu), one point or a list per file, or every *.json under a "
        "directory, into a serving points TSV.",
        epilog="Example: meter import inferencex results_bmk/ -o points.tsv; "
        "meter cost serve deepseek-v3 --hardware h200-sxm --against points.tsv",
    )
    x.add_argument("files", nargs="+", metavar="FILE|DIR", help="agg_*.json files, or directories holding them")
    x.add_argument("--date", type=_date, help="the date the points were measured (YYYY-MM-DD; the files omit it)")
    x.add_argument("--source-id", help="the points' source_id (default: each file's name)")
    x.add_argument("-o", "--output", metavar="FILE.tsv", required=True, help="the points file to write")
    x.add_argument("--append", action="store_true", help="keep the points already in the output file, add these")
    x.add_argument("--json", action="store_true", help="print the points as JSON")
    x.set_defaults(handler=run_points, reader="inferencex")
    for tool, what, example in (
        (
            "vllm",
            "vllm bench serve --save-result files, or vllm bench sweep serve output directories (run=<n>.json)",
            "vllm bench sweep serve ... -o sweep/; meter import vllm sweep/ --hardware h200-sxm --tp 8 "
            "--precision fp8 -o points.tsv",
        ),
        (
            "sglang",
            "SGLang bench_serving JSONL (one line per run, e.g. one per --max-concurrency)",
            "for c in 4 16 64; do python -m sglang.bench_serving --max-concurrency $c --output-file b.jsonl ...; "
            "done; meter import sglang b.jsonl --hardware h200-sxm --tp 8 --precision fp8 "
            "--model deepseek-v3 -o points.tsv",
        ),
    ):
        e = tools.add_parser(
            tool,
            parents=[common],
            help=f"{what} -> a serving points TSV",
            description=f"Read {what} into a serving points TSV, one point per run. What the files do not say about "
            "the setup comes from the flags; a flag that contradicts the file is refused.",
            epilog=f"Example: {example}",
        )
        e.add_argument("files", nargs="+", metavar="FILE|DIR", help=what)
        e.add_argument("--hardware", required=True, help="the GPUs it ran on (a hardware config name, e.g. h200-sxm)")
        e.add_argument("--tp", type=number(D.EP), metavar="N", help="tensor parallel size (default: the file's)")
        e.add_argument("--ep", type=number(D.EP), default=1, metavar="N", help="expert parallel size (default 1)")
        e.add_argument("--dp-attention", action="store_true", help="attention data parallel over the tp GPUs")
        e.add_argument("--gpus", type=number(D.GPUS), metavar="N", help="GPUs of the engine instance (= --tp)")
        e.add_argument("--model", help="the model (default: the file's model_id)")
        e.add_argument("--precision", required=True, help="weights' precision as InferenceX names it: fp8, fp4, bf16")
        e.add_argument("--framework", help=f"the engine (default {tool})")
        e.add_argument("--spec-method", default="none", help="speculative decoding: none (default) or mtp")
        e.add_argument("--isl", type=number(D.SEQ), metavar="N", help="input length (default: the file's)")
        e.add_argument("--osl", type=number(D.SEQ), metavar="N", help="output length (default: the file's)")
        e.add_argument("--date", type=_date, help="the date measured (YYYY-MM-DD; default: the file's, if any)")
        e.add_argument("--source-id", help="the points' source_id (default: each file's name)")
        e.add_argument("-o", "--output", metavar="FILE.tsv", required=True, help="the points file to write")
        e.add_argument("--append", action="store_true", help="keep the points already in the output file, add these")
        e.add_argument("--json", action="store_true", help="print the points as JSON")
        e.set_defaults(handler=run_points, reader=tool)


def _date(text: str) -> str:
    import datetime as dt

    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, not {text!r}") from None
    if len(text) != 10:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, not {text!r}")
    return text


def run_points(args: argparse.Namespace) -> int:
    from meter.engines.bench_points import BenchSetup, bench_points, vllm_sweep_runs
    from meter.engines.inferencex import load_inferencex
    from meter.engines.points import read_points, write_points
    from meter.errors import InputError

    points = []
    if args.reader == "inferencex":
        for name in args.files:
            path = Path(name)
            files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
            if not files:
                raise InputError(path, None, "holds no *.json InferenceX results")
            for f in files:
                points += load_inferencex(f, source_id=args.source_id, date=args.date)
    else:
        setup = BenchSetup(
            hardware=args.hardware,
            model=args.model,
            precision=args.precision,
            framework=args.framework,
            tp=args.tp,
            ep=args.ep,
            dp_attention=args.dp_attention,
            gpus=args.gpus,
            spec_method=args.spec_method,
            isl=args.isl,
            osl=args.osl,
            date=args.date,
            source_id=args.source_id,
        )
        engine = "sglang" if args.reader == "sglang" else "auto"
        for name in args.files:
            path = Path(name)
            if path.is_dir() and args.reader == "vllm":
                for run in vllm_sweep_runs(path):
                    points += bench_points(run, setup, engine)
            else:
                points += bench_points(path, setup, engine)
    output = Path(args.output)
    kept = read_points(output) if args.append and output.exists() else []
    write_points(kept + points, output, comment=f"meter import {args.reader} {' '.join(args.files)}")
    if args.json:
        emit_json({"points_file": str(output), "points": points})
        return 0
    rows = [
        [p.hardware, p.framework, p.layout, f"{p.isl}/{p.osl}", p.conc, f"{p.tok_s_user:.4g}",
         f"{p.output_tok_s_gpu:.4g}", f"{p.total_tok_s_gpu:.4g}", f"{p.median_tpot_ms:.4g}" if p.median_tpot_ms else ""]
        for p in points
    ]  # fmt: skip
    headers = ["hardware", "framework", "layout", "isl/osl", "conc", "tok/s/user", "out tok/s/GPU", "tok/s/GPU"]
    print(table(headers + ["TPOT ms"], rows, title=f"{len(points)} serving points"))
    kept_note = f" ({len(kept)} kept, {len(points)} added)" if args.append else ""
    print(f"Points file: {output}{kept_note}", file=sys.stderr)
    return 0


def run_nccl_tests(args: argparse.Namespace) -> int:
    from meter.config.hardware import list_hardware, load_hardware
    from meter.device.host import command_line
    from meter.engines.comm_run import comm_run
    from meter.engines.nccl_tests import read_nccl_tests
    from meter.jsonable import to_jsonable
    from meter.results.atomic import write_json_atomic
    from meter.results.load import check_consistency
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
