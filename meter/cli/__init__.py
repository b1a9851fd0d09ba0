"""The ``meter`` command line: one module per command group under ``meter.cli.commands``."""
