"""Checks of the Python environment that must run before `kernels` is imported."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from meter.errors import ShadowedPackageError

_MARKER = "__gpu_cost_meter__"


def check_kernels_package() -> None:
    """Raise ShadowedPackageError unless `import kernels` gives gpu-cost-meter's own package.

    An unrelated PyPI distribution is also named ``kernels``; when it is installed it can shadow
    ours and every later import fails with an obscure ImportError. The check reads files only:
    importing the foreign package could itself fail or be slow.
    """
    ours = Path(__file__).resolve().parent.parent / "kernels" / "__init__.py"
    spec = importlib.util.find_spec("kernels")
    if spec is None or spec.origin is None:
        raise ShadowedPackageError(
            "gpu-cost-meter's 'kernels' package is not importable; reinstall it with: pip install -e ."
        )
    found = Path(spec.origin).resolve()
    try:
        has_marker = _MARKER in found.read_text(encoding="utf-8", errors="replace")
    except OSError:
        has_marker = False
    if found != ours or not has_marker:
        where = found.parent
        raise ShadowedPackageError(
            f"'import kernels' loads {where}, not gpu-cost-meter's kernels package (another distribution "
            f"named 'kernels' shadows it); fix: pip uninstall kernels, or use a separate virtual environment"
        )
