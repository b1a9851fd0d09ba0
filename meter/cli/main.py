"""Entry point of the ``meter`` command.

Every error a user can cause (a bad flag, a bad config, a missing component) prints one line,
``meter: error: ...``, and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence

from meter import __version__
from meter.cli.common import OneLineParser
from meter.compat import check_kernels_package
from meter.errors import MeterError

# Command modules under meter.cli.commands, in the order `meter --help` lists them.
COMMAND_MODULES = (
    "run",
    "bench",
    "measure",
    "acceptance",
    "cost",
    "imports",
    "report",
    "exporter",  # meter serve
    "watch",
    "catalog",
    "flops",
    "doctor",
)


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="extra config directory (models/, hardware/, pricing/, ...); repeatable; "
        "searched before METER_CONFIG_PATH and the built-in configs",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="meter",
        description="GPU compute profiler and cost meter for DeepSeek-style MoE and MLA models.",
        epilog="Run 'meter COMMAND --help' for a command's options. Docs: README.md and docs/.",
    )
    parser.add_argument("--version", action="version", version=f"meter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    common = common_options()
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"meter.cli.commands.{name}")
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_kernels_package()
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a full disk or closed pipe shows here, not as an ignored error at exit
        return code
    except MeterError as exc:
        print(f"meter: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("meter: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `meter ... | head` closed the pipe; not an error worth a traceback.
        _drop_stdout()
        sys.stderr.close()
        return 0
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRNOS:
            raise
        # `meter models --json > /dev/full`: the output could not be written
        _drop_stdout()
        print(f"meter: error: cannot write the output ({exc.strerror or exc})", file=sys.stderr)
        return 2


_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT, errno.EPIPE, errno.EROFS}


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit does not fail a second time."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's StringIO)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


if __name__ == "__main__":
    sys.exit(main())
