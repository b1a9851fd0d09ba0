"""Helpers shared by command handlers: config lookup and argument parsing of quantities."""

from __future__ import annotations

import argparse

from meter.config.paths import ConfigLocator
from meter.units import parse_quantity


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command and a pointer to --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def locator(args: argparse.Namespace) -> ConfigLocator:
    return ConfigLocator.from_env(getattr(args, "config_dir", []) or [])


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1, also written 4K / 32K."""
    try:
        value = parse_quantity(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1 or not float(value).is_integer():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1: {text!r}")
    return int(value)


def positive_quantity(text: str) -> float:
    """argparse type: a number > 0 with an optional K/M/B/T suffix (14.8T)."""
    try:
        value = parse_quantity(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated whole numbers >= 1 (``1,8,64``)."""
    return [positive_int(part) for part in text.split(",") if part.strip()] or _empty(text)


def _empty(text: str) -> list[int]:
    raise argparse.ArgumentTypeError(f"expected comma-separated numbers: {text!r}")
