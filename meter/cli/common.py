"""Helpers shared by command handlers: config lookup and argument parsing of quantities."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from meter.config.paths import ConfigLocator
from meter.domains import Domain
from meter.units import parse_bytes, parse_quantity


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command and a pointer to --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def locator(args: argparse.Namespace) -> ConfigLocator:
    return ConfigLocator.from_env(getattr(args, "config_dir", []) or [])


def number(domain: Domain) -> Callable[[str], float]:
    """argparse type: a number in ``domain``, with an optional K/M/B/T suffix (``14.8T``, ``4K``)."""

    def parse(text: str) -> float:
        try:
            value = parse_quantity(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        problem = domain.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, not {text!r}")
        return int(value) if domain.integer else value

    return parse


def numbers(domain: Domain) -> Callable[[str], list[float]]:
    """argparse type: comma-separated numbers in ``domain`` (``1,8,64``)."""
    one = number(domain)

    def parse(text: str) -> list[float]:
        values = [one(part.strip()) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, not {text!r}")
        return values

    return parse


def bytes_arg(domain: Domain) -> Callable[[str], int]:
    """argparse type: a byte count with a binary suffix (``80GiB``, ``512M``) in ``domain``."""

    def parse(text: str) -> int:
        try:
            value = parse_bytes(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        problem = domain.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem} bytes, not {text!r}")
        return value

    return parse


def push_url(text: str) -> str:
    """``--push URL``: checked before anything runs (a bad URL found after a long run loses the push)."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(text.strip())
        port = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a URL ({exc}): {text!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected http://HOST:PORT or https://HOST:PORT, not {text!r}")
    if port == 0:
        raise argparse.ArgumentTypeError(f"port 0 is not a port: {text!r}")
    return text.strip()
