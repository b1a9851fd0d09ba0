"""meter serve's log: levels and formats an operator sets, covering the exporter and the sampler alike."""

from __future__ import annotations

import json
import logging

import pytest

from meter.cli.commands.exporter import _log_to_stderr


@pytest.fixture
def meter_log():
    log = logging.getLogger("meter")
    saved = (list(log.handlers), log.level, log.propagate)
    yield log
    log.handlers[:], log.level, log.propagate = saved


def test_log_level_hides_what_is_below_it(meter_log, capsys):
    _log_to_stderr("WARNING", "text")
    logging.getLogger("meter.serve").info("GPU telemetry up: 2 GPU(s)")
    logging.getLogger("meter.serve").warning("GPU telemetry unavailable, retrying every 30 s: no driver")
    logging.getLogger("meter.telemetry.sampler").warning("gpu1 lost: fell off the bus")
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "meter serve: WARNING: GPU telemetry unavailable, retrying every 30 s: no driver",
        "meter serve: WARNING: gpu1 lost: fell off the bus",
    ]


def test_json_lines_carry_time_level_logger_and_message(meter_log, capsys):
    _log_to_stderr("DEBUG", "json")
    _log_to_stderr("DEBUG", "json")  # set up twice in one process: still one line per record
    logging.getLogger("meter.serve").debug("TLS handshake with 10.0.0.1 failed: \u00e9")
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["level"] == "DEBUG" and record["logger"] == "meter.serve"
    assert record["message"] == "TLS handshake with 10.0.0.1 failed: \u00e9"
    assert record["time"].endswith("+00:00")


def test_the_sampler_logs_its_events(caplog):
    from meter.device.gpu import GpuLost
    from meter.telemetry.sampler import Sampler

    class Lost:
        key = "gpu0"

        def read(self):
            raise GpuLost("fell off the bus")

    seen = []
    sampler = Sampler([Lost()], 0.01, on_event=seen.append)
    with caplog.at_level(logging.WARNING, logger="meter.telemetry.sampler"):
        sampler.sample_once()
    assert seen and [r.getMessage() for r in caplog.records] == seen


def test_serve_takes_log_level_and_format_flags():
    from meter.cli.main import build_parser

    args = build_parser().parse_args(["serve", "--log-level", "warning", "--log-format", "json"])
    assert (args.log_level, args.log_format) == ("WARNING", "json")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--log-level", "chatty"])
