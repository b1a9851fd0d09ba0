"""``meter serve``: the Prometheus exporter."""

from __future__ import annotations

import argparse
import getpass
import logging
import re
import signal
import sys
from pathlib import Path

from meter import domains as D
from meter.cli.common import locator, number
from meter.errors import UsageError

LOG_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def duration_s(text: str) -> float:
    """``90s``, ``30m``, ``6h``, ``1d`` (bare numbers are seconds)."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 30m, 6h or 1d, not {text!r}")
    value = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"duration must be positive: {text!r}")
    return value


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="Prometheus exporter: GPU telemetry, running cost, benchmark results",
        description="Serve /metrics for Prometheus: per-GPU utilization, power, energy, clocks, memory, "
        "temperature, throttle reasons; rental and energy dollars accrued; the latest benchmark "
        "results and projected costs. Binds to 127.0.0.1 unless told otherwise.",
        epilog="meter bench --push http://HOST:9401 hands a run file to a running exporter.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=number(D.PORT), default=9401, help="port (default 9401)")
    p.add_argument(
        "--interval", type=number(D.INTERVAL_S), default=1.0, metavar="S", help="NVML sampling period (default 1 s)"
    )
    p.add_argument(
        "--price",
        type=number(D.PRICE_USD_PER_GPU_HOUR),
        metavar="USD",
        help="rental price per GPU-hour for every GPU "
        "(default: the median of the price table's recent prices for each GPU's hardware config)",
    )
    p.add_argument("--tier", choices=["on-demand", "1-year", "3-year", "spot", "assumed"], help="price-table tier")
    p.add_argument(
        "--usd-per-kwh", type=number(D.USD_PER_KWH), metavar="USD", help="electricity price (default: price table)"
    )
    p.add_argument("--pue", type=number(D.PUE), help="power usage effectiveness (default: price table)")
    p.add_argument("--hostname", help="the hostname label (default: $NODE_NAME, else the host name)")
    p.add_argument(
        "--web.config.file",
        "--web-config-file",
        dest="web_config_file",
        metavar="FILE",
        help="exporter-toolkit's web config (YAML): tls_server_config, basic_auth_users (bcrypt), rate_limit, "
        "http_server_config.headers; re-read when it or its certificates change",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="deprecated: tls_server_config.cert_file in --web.config.file")
    p.add_argument("--tls-key", metavar="FILE", help="deprecated: tls_server_config.key_file in --web.config.file")
    p.add_argument(
        "--basic-auth-file",
        metavar="FILE",
        help="deprecated: basic_auth_users in --web.config.file (user:<sha256 hex>)",
    )
    p.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password (prompted without echo, or the first line of stdin), print its bcrypt hash, exit",
    )
    p.add_argument(
        "--scenario", default="deepseek-v3", help="training scenario priced from each run (default deepseek-v3)"
    )
    p.add_argument("--serve-scenario", default="deepseek-v3-day6", help="serving scenario priced from each run")
    p.add_argument(
        "--runs-dir",
        metavar="DIR",
        help="keep pushed runs here (atomically) and take in every run file here at start; scheduled runs go here",
    )
    p.add_argument(
        "--runs-keep",
        type=int,
        default=200,
        metavar="N",
        help="at most this many run files of ours in --runs-dir (200)",
    )
    p.add_argument(
        "--runs-max-bytes",
        type=int,
        default=256 * 2**20,
        metavar="N",
        help="at most this many bytes of run files of ours in --runs-dir (256 MiB)",
    )
    p.add_argument("--bench-suite", metavar="SUITE", help="run this suite on a schedule (with --bench-every)")
    p.add_argument("--bench-every", type=duration_s, metavar="DURATION", help="e.g. 6h; needs --bench-suite")
    p.add_argument(
        "--gpu-retry",
        "--nvml-retry",  # the flag's old name, still accepted
        dest="gpu_retry",
        type=duration_s,
        default=30.0,
        metavar="DURATION",
        help="while the GPU library (NVML) cannot start, try again this often (default 30s); meter_nvml_up is 0 "
        "meanwhile (--nvml-retry is its old name)",
    )
    p.add_argument(
        "--max-run-bytes",
        type=int,
        default=None,
        metavar="N",
        help="largest run file POST /api/v1/runs takes (default 8 MiB); larger ones get 413",
    )
    p.add_argument(
        "--pod-resources-socket",
        default="auto",
        metavar="PATH",
        help="the kubelet's pod-resources socket for pod/namespace/container labels; 'auto' (default): "
        "/var/lib/kubelet/pod-resources/kubelet.sock when it exists; 'off': no pod attribution",
    )
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=list(LOG_LEVELS),
        default="INFO",
        help="least severe log line written to stderr (default INFO: GPUs up and runs-dir pruning too; "
        "WARNING: only problems; DEBUG: TLS handshakes as well)",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text: 'meter serve: LEVEL: message' (default); json: one object per line with time, level, "
        "logger and message, for a log shipper",
    )
    p.set_defaults(handler=run_exporter)


def run_exporter(args: argparse.Namespace) -> int:
    from meter.exporter.app import Exporter, ExporterConfig

    if args.hash_password:
        return _hash_password()
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.web_config_file and (args.tls_cert or args.basic_auth_file):
        raise UsageError("--web.config.file replaces --tls-cert/--tls-key and --basic-auth-file: give one or the other")
    if bool(args.bench_suite) != bool(args.bench_every):
        raise UsageError("--bench-suite and --bench-every go together")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, not {args.port}")
    if not 1 <= args.runs_keep <= 100_000:
        raise UsageError(f"--runs-keep must be between 1 and 100000, not {args.runs_keep}")
    if not 2**20 <= args.runs_max_bytes <= 2**40:
        raise UsageError(f"--runs-max-bytes must be between 1 MiB and 1 TiB, not {args.runs_max_bytes}")
    if not 0.01 <= args.interval <= 3600:
        raise UsageError(f"--interval must be between 0.01 and 3600 seconds, not {args.interval:g}")
    if args.max_run_bytes is not None and not 1024 <= args.max_run_bytes <= 1 << 30:
        raise UsageError(f"--max-run-bytes must be between 1024 and {1 << 30}, not {args.max_run_bytes}")
    config = ExporterConfig(
        host=args.host,
        port=args.port,
        interval_s=args.interval,
        price_usd_per_hour=args.price,
        tier=args.tier,
        usd_per_kwh=args.usd_per_kwh,
        pue=args.pue,
        hostname=args.hostname,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        basic_auth_file=args.basic_auth_file,
        web_config_file=args.web_config_file,
        train_scenario=args.scenario,
        serve_scenario=args.serve_scenario,
        runs_dir=args.runs_dir,
        runs_keep=args.runs_keep,
        runs_max_bytes=args.runs_max_bytes,
        bench_suite=args.bench_suite,
        bench_every_s=args.bench_every,
        gpu_retry_s=args.gpu_retry,
        pod_resources_socket=args.pod_resources_socket,
        **({"max_run_bytes": args.max_run_bytes} if args.max_run_bytes is not None else {}),
    )
    _log_to_stderr(args.log_level, args.log_format)
    web = _web_config(args)
    exporter = Exporter(config, locator(args), web=web)
    exporter.start()
    host, port = exporter.address
    scheme = "https" if web.tls is not None else "http"
    log = logging.getLogger("meter.serve")
    log.info(f"{len(exporter.state.accounts)} GPU(s); {scheme}://{host}:{port}/metrics")
    # SIGTERM is how Docker and Kubernetes stop a container: leave as on Ctrl-C (the sampler and the
    # server closed, exit 0); run files are written atomically, so the runs directory stays whole.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        exporter.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    log.info("stopped")
    return 0


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (tests redirect it per call)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers (Loki, Fluent Bit, Vector) parse without a regex."""

    def format(self, record: logging.LogRecord) -> str:
        import datetime as dt
        import json

        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def _log_to_stderr(level: str = "INFO", fmt: str = "text") -> None:
    """Everything the exporter logs (its own lines, the sampler's events, web config reloads) on stderr.

    The handler sits on the ``meter`` logger, so ``meter.serve`` and ``meter.telemetry.sampler``
    alike follow ``--log-level`` and ``--log-format``.
    """
    log = logging.getLogger("meter")
    for handler in [h for h in log.handlers if isinstance(h, _StderrHandler)]:
        log.removeHandler(handler)  # a second run in one process (tests) replaces the first's settings
    handler = _StderrHandler()
    handler.setFormatter(
        _JsonFormatter() if fmt == "json" else logging.Formatter("meter serve: %(levelname)s: %(message)s")
    )
    log.addHandler(handler)
    log.setLevel(LOG_LEVELS[level])
    log.propagate = False


def _web_config(args: argparse.Namespace):
    """The web config, read before anything starts (a bad one exits 2); deprecated flags still work, and say so."""
    from meter.exporter.webconfig import legacy_web_config, load_web_config

    if args.web_config_file:
        return load_web_config(Path(args.web_config_file))
    log = logging.getLogger("meter.serve")
    if args.tls_cert:
        log.warning(
            "--tls-cert/--tls-key are deprecated and go in the next release: "
            "use tls_server_config.cert_file/key_file in --web.config.file"
        )
    if args.basic_auth_file:
        log.warning(
            "--basic-auth-file is deprecated and goes in the next release: use basic_auth_users "
            "(bcrypt hashes from meter serve --hash-password) in --web.config.file"
        )
    return legacy_web_config(args.tls_cert, args.tls_key)


def _hash_password() -> int:
    """Print a bcrypt hash for basic_auth_users; the password never appears on a command line."""
    from meter.exporter.webguard import MAX_PASSWORD_BYTES, hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("--hash-password: the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    raw = password.encode("utf-8")
    if not raw:
        raise UsageError("--hash-password: an empty password")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise UsageError(f"--hash-password: {len(raw)} bytes; bcrypt takes at most {MAX_PASSWORD_BYTES}")
    print(hash_password(raw))
    return 0


def _terminate(signum: int, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
