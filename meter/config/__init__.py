"""Configs: YAML files under ``configs/`` (and user directories) loaded into frozen dataclasses."""

from meter.config.paths import ConfigLocator, builtin_config_dir

__all__ = ["ConfigLocator", "builtin_config_dir"]
