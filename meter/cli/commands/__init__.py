"""Subcommands. Each module has ``register(subparsers, common)``; handlers import heavy modules lazily."""
