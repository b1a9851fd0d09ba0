"""The GPU image's Python packages, and a ``sitecustomize`` that makes every other one unimportable.

The GPU box's image has torch, Triton, numpy, nvidia-ml-py, prometheus-client, PyYAML and pytest
(and what they depend on), and none of the test extra's other packages. ``pytest -m gpu`` must
collect there: :func:`write_blocker` writes a ``sitecustomize.py`` that, put first on PYTHONPATH,
turns every installed distribution outside that set into an ImportError, as on the image.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

IMAGE = ("torch", "triton", "numpy", "nvidia-ml-py", "prometheus-client", "PyYAML", "pytest")
OWN = "gpu-cost-meter"  # the checkout itself, on PYTHONPATH on the image


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_distributions() -> set[str]:
    """The image's packages and, transitively, what they require (extras left out)."""
    dists = {_norm(d.metadata["Name"]): d for d in metadata.distributions()}
    keep: set[str] = set()
    todo = [_norm(n) for n in IMAGE]
    while todo:
        name = todo.pop()
        if name in keep or name not in dists:
            continue
        keep.add(name)
        for req in dists[name].requires or []:
            if "extra ==" not in req:
                todo.append(_norm(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0]))
    return keep


def _top_level(dist: metadata.Distribution) -> set[str]:
    text = dist.read_text("top_level.txt")
    if text:
        return {line.strip() for line in text.splitlines() if line.strip()}
    names = set()
    for f in dist.files or []:
        first = f.parts[0]
        if first in ("..", "__pycache__") or first.endswith((".dist-info", ".egg-info", ".pth", ".data")):
            continue
        if len(f.parts) == 1:
            if first.endswith(".py"):
                names.add(first[:-3])
            elif first.endswith(".so"):
                names.add(first.split(".", 1)[0])
        else:
            names.add(first)
    return names


def blocked_modules() -> list[str]:
    """The top-level modules of every installed distribution the image does not have."""
    keep = image_distributions() | {OWN}
    allowed = set()
    blocked = set()
    for d in metadata.distributions():
        (allowed if _norm(d.metadata["Name"]) in keep else blocked).update(_top_level(d))
    return sorted(m for m in blocked - allowed if m.isidentifier())


def write_blocker(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    names = blocked_modules()
    (directory / "sitecustomize.py").write_text(
        "# The GPU image has none of these: importing one fails as it would there.\n"
        "import sys\n"
        f"for _name in {names!r}:\n"
        "    sys.modules.setdefault(_name, None)\n"
    )
    return directory
