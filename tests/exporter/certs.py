"""Test certificates made by openssl: a CA, server and client certificates signed by it, an expired one."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require_executable

_CA_CONFIG = """[ca]
default_ca = d
[d]
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = p
unique_subject = no
copy_extensions = copy
[p]
commonName = supplied
"""


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


class TestCa:
    """A CA in ``directory``; ``issue`` signs a new EC P-256 key for a name, valid for a day or in the past."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "meter test CA"):
        self.openssl = require_executable("openssl", "apt-get install openssl")
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.root = Pair(directory / f"{_slug(name)}.pem", directory / f"{_slug(name)}.key")
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                  "-subj", f"/CN={name}", "-keyout", self.root.key, "-out", self.root.cert)  # fmt: skip
        (directory / "index.txt").write_text("")
        (directory / "serial").write_text("01\n")
        self.config = directory / "ca.cnf"
        self.config.write_text(_CA_CONFIG.format(dir=directory))

    def _run(self, *args) -> None:
        subprocess.run([self.openssl, *map(str, args)], check=True, capture_output=True, timeout=60)

    def issue(self, name: str, sans: str = "IP:127.0.0.1,DNS:localhost", *, expired: bool = False) -> Pair:
        pair = Pair(self.dir / f"{_slug(name)}.pem", self.dir / f"{_slug(name)}.key")
        csr = self.dir / f"{_slug(name)}.csr"
        self._run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-subj", f"/CN={name}", "-addext", f"subjectAltName={sans}", "-keyout", pair.key, "-out", csr)  # fmt: skip
        dates = ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"] if expired else ["-days", "1"]
        self._run("ca", "-batch", "-notext", "-config", self.config, "-cert", self.root.cert,
                  "-keyfile", self.root.key, "-in", csr, "-out", pair.cert, *dates)  # fmt: skip
        return pair


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)
