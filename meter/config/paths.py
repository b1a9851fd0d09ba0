"""Where configs are found: user directories first, then the built-in ``configs/``.

A config directory is laid out like the built-in one: ``models/``, ``hardware/``, ``pricing/``,
``scenarios/``, ``suites/`` and ``deployments/``, each holding ``NAME.yaml`` files. Directories come from
``--config-dir`` (repeatable) and the ``METER_CONFIG_PATH`` environment variable
(``os.pathsep``-separated), in that order of precedence; a user file shadows a built-in one of
the same name.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from meter.errors import ConfigError

Kind = Literal["models", "hardware", "pricing", "scenarios", "suites", "deployments"]
ENV_VAR = "METER_CONFIG_PATH"
_SUFFIXES = (".yaml", ".yml")
_SINGULAR = {
    "models": "model",
    "hardware": "hardware",
    "pricing": "pricing",
    "scenarios": "scenario",
    "suites": "suite",
    "deployments": "deployment",
}


def builtin_config_dir() -> Path:
    """The configs shipped with gpu-cost-meter: the source tree's, or a wheel install's copy."""
    source_tree = Path(__file__).resolve().parents[2] / "configs"
    if source_tree.is_dir():
        return source_tree
    return Path(sys.prefix) / "share" / "gpu-cost-meter" / "configs"


@dataclass(frozen=True)
class ConfigLocator:
    """An ordered list of config roots, highest precedence first."""

    roots: tuple[Path, ...]

    @classmethod
    def from_env(cls, extra_dirs: Sequence[str | Path] = (), environ: dict[str, str] | None = None) -> ConfigLocator:
        env = os.environ if environ is None else environ
        roots: list[Path] = [Path(d).expanduser() for d in extra_dirs]
        roots += [Path(p).expanduser() for p in env.get(ENV_VAR, "").split(os.pathsep) if p]
        for root in roots:
            if not root.is_dir():
                source = "--config-dir" if root in [Path(d).expanduser() for d in extra_dirs] else ENV_VAR
                raise ConfigError(None, source, "config directory does not exist", str(root))
        roots.append(builtin_config_dir())
        return cls(tuple(roots))

    def find(self, kind: Kind, name_or_path: str) -> Path:
        """Resolve a config name (``deepseek-v3``) or a path to a YAML file; for models also a
        Hugging Face ``config.json`` or a directory holding one."""
        candidate = Path(name_or_path).expanduser()
        suffixes = _SUFFIXES + (".json",) if kind == "models" else _SUFFIXES
        looks_like_path = candidate.suffix in suffixes or os.sep in name_or_path or "/" in name_or_path
        if looks_like_path:
            if candidate.is_file():
                return candidate
            # A model may also be named by a Hugging Face model directory holding its config.json.
            if kind == "models" and candidate.is_dir():
                if (candidate / "config.json").is_file():
                    return candidate / "config.json"
                raise ConfigError(candidate, None, "a directory without a config.json; not a model")
            raise ConfigError(candidate, None, "no such config file")
        for root in self.roots:
            for suffix in _SUFFIXES:
                path = root / kind / f"{name_or_path}{suffix}"
                if path.is_file():
                    return path
        known = sorted(self.names(kind))
        close = difflib.get_close_matches(name_or_path, known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known) or 'none'}"
        raise ConfigError(None, _SINGULAR[kind], f"no such {_SINGULAR[kind]} config{hint}", name_or_path)

    def exists(self, kind: Kind, name_or_path: str) -> bool:
        """Whether :meth:`find` resolves ``name_or_path`` (a config that names another checks it with this)."""
        try:
            self.find(kind, name_or_path)
        except ConfigError:
            return False
        return True

    def names(self, kind: Kind) -> dict[str, Path]:
        """Every config of a kind by name; a higher-precedence root shadows a lower one."""
        found: dict[str, Path] = {}
        for root in reversed(self.roots):
            for path in _yaml_files(root / kind):
                found[path.stem] = path
        return dict(sorted(found.items()))


def _yaml_files(directory: Path) -> Iterable[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in _SUFFIXES and p.is_file())
