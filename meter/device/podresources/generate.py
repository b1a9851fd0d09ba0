"""Regenerate the kubelet pod-resources stubs from v1/api.proto (needs grpcio-tools).

    python -m meter.device.podresources.generate

The generated api_pb2.py and api_pb2_grpc.py are committed; a test checks they are this script's output.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # the repository root: the stubs import themselves by their full module path
PROTO = HERE / "v1" / "api.proto"


def generate(out: Path) -> list[Path]:
    """Run protoc (grpc_tools) on the vendored proto; returns the files written under ``out``."""
    from grpc_tools import protoc

    rel = PROTO.relative_to(ROOT)
    code = protoc.main(["grpc_tools.protoc", f"-I{ROOT}", f"--python_out={out}", f"--grpc_python_out={out}", str(rel)])
    if code != 0:
        raise RuntimeError(f"protoc failed on {rel} (exit {code})")
    stem = out / rel.parent
    return [stem / "api_pb2.py", stem / "api_pb2_grpc.py"]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            (HERE / "v1" / path.name).write_text(path.read_text())
            print(f"wrote {HERE / 'v1' / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
