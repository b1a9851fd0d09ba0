"""The web config file of Prometheus' exporter-toolkit (``--web.config.file``), read into typed objects.

Format: exporter-toolkit's docs/web-configuration.md. meter applies ``tls_server_config`` (certificate
and key as files or inline, client certificates verified against a CA, TLS versions, TLS 1.2 cipher
suites and their order, one ECDHE curve, client SANs), ``http_server_config.headers``,
``basic_auth_users`` (bcrypt), ``basic_auth_excluded_paths`` and ``rate_limit``. What Python's ssl
module cannot do the way Go does (``RequestClientCert`` and ``RequireAnyClientCert``: asking for a certificate without verifying it;
more than one curve) is refused in one line naming the key, never quietly weakened. ``http2`` is
taken and ignored: meter answers HTTP/1.1, which every client falls back to.

Loading builds the TLS context too, so a key that does not match its certificate, or an unreadable CA
file, is refused when the file is read rather than on the first handshake.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meter.config.schema import read_input_bytes, read_yaml
from meter.errors import ConfigError, UsageError

MAX_PEM_BYTES = 1 * 2**20
TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "basic_auth_excluded_paths", "rate_limit")
TLS_KEYS = (
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
)
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go's client auth types that accept a certificate without verifying it: Python's ssl cannot, and
# exporter-toolkit itself calls them insecure.
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
# Go's names (crypto/tls CipherSuites()) for TLS 1.2 suites, as OpenSSL names them.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# TLS 1.3 suites are not configurable, in Go as in OpenSSL's cipher list: accepted and left alone.
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
# exporter-toolkit's headers, with the values it accepts where it restricts them.
HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
_BCRYPT = re.compile(r"^\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}$")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: one request every ``interval_s``, up to ``burst`` at once."""

    interval_s: float
    burst: int


@dataclass(frozen=True)
class TlsServerConfig:
    context: ssl.SSLContext
    client_auth_type: str
    client_allowed_sans: tuple[str, ...]
    files: tuple[Path, ...]  # the files it was built from, watched for rotation


@dataclass(frozen=True)
class WebConfig:
    """One reading of the web config file."""

    path: Path | None
    tls: TlsServerConfig | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    rate_limit: RateLimit | None = None
    headers: tuple[tuple[str, str], ...] = ()
    excluded_paths: frozenset[str] = frozenset()  # answered without credentials (/healthz always is)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file this reading depends on: the config and what it names."""
        return ((self.path,) if self.path else ()) + (self.tls.files if self.tls else ())


def load_web_config(path: Path) -> WebConfig:
    """Read and check the file; ``ConfigError`` naming the file, the key and the value when it cannot be used."""
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        return WebConfig(path)  # an empty file: no TLS, no auth, as exporter-toolkit
    mapping = _mapping(path, None, data)
    _known(path, None, mapping, TOP_KEYS)
    tls = _tls(path, mapping.get("tls_server_config"))
    headers = _http(path, mapping.get("http_server_config"))
    return WebConfig(
        path,
        tls=tls,
        users=_users(path, mapping.get("basic_auth_users")),
        rate_limit=_rate_limit(path, mapping.get("rate_limit")),
        headers=headers,
        excluded_paths=_paths(path, mapping.get("basic_auth_excluded_paths")),
    )


def legacy_web_config(cert_file: str | None, key_file: str | None) -> WebConfig:
    """What ``--tls-cert``/``--tls-key`` meant, as a web config (no file of its own)."""
    if not cert_file:
        return WebConfig(None)
    try:
        return WebConfig(None, tls=_tls(None, {"cert_file": cert_file, "key_file": key_file}))
    except ConfigError as exc:
        raise UsageError(f"--tls-cert/--tls-key: {exc.problem_and_value()}") from None


def fingerprint(paths: tuple[Path, ...]) -> tuple:
    """What changes when any of ``paths`` is rewritten or replaced (a Kubernetes Secret swaps a symlink)."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((str(p), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except OSError as exc:
            out.append((str(p), type(exc).__name__))
    return tuple(out)


def contents_digest(paths: tuple[Path, ...]) -> str:
    """A digest of the files' bytes: a touch that changes nothing does not rebuild the TLS context."""
    digest = hashlib.sha256()
    for p in paths:
        try:
            digest.update(Path(p).read_bytes())
        except OSError as exc:
            digest.update(type(exc).__name__.encode())
        digest.update(b"\0")
    return digest.hexdigest()


# --- the parts --------------------------------------------------------------------------------------


def _mapping(path: Path | None, where: str | None, value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise ConfigError(path, where, f"expected a mapping, found {type(value).__name__}", value)
    return value


def _known(path: Path | None, where: str | None, mapping: Mapping, keys: tuple[str, ...]) -> None:
    for key in mapping:
        if key not in keys:
            name = f"{where}.{key}" if where else str(key)
            raise ConfigError(path, name, f"unknown or unsupported key; expected one of {', '.join(keys)}")


def _string(path: Path | None, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, where, "expected a non-empty string", value)
    return value


def _strings(path: Path | None, where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(path, where, "expected a list of strings", value)
    return tuple(_string(path, f"{where}[{i}]", v) for i, v in enumerate(value))


def _relative(path: Path | None, name: str) -> Path:
    """exporter-toolkit resolves file names against the config file's directory."""
    p = Path(name)
    return p if p.is_absolute() or path is None else path.parent / p


def _tls(path: Path | None, value: Any) -> TlsServerConfig | None:
    if value is None or value == {}:
        return None
    where = "tls_server_config"
    tls = _mapping(path, where, value)
    _known(path, where, tls, TLS_KEYS)
    for inline, file_key in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        if tls.get(inline) is not None and tls.get(file_key) is not None:
            raise ConfigError(path, f"{where}.{inline}", f"give {inline} or {file_key}, not both")
    if tls.get("cert") is None and tls.get("cert_file") is None:
        raise ConfigError(path, f"{where}.cert_file", "missing: TLS needs a certificate (cert_file or cert)")
    if tls.get("key") is None and tls.get("key_file") is None:
        raise ConfigError(path, f"{where}.key_file", "missing: TLS needs the certificate's key (key_file or key)")

    auth = tls.get("client_auth_type", "NoClientCert")
    auth = auth if isinstance(auth, str) else repr(auth)  # a list or mapping: refused below, by value
    if auth in UNVERIFIED_CLIENT_AUTH:
        raise ConfigError(
            path,
            f"{where}.client_auth_type",
            "unsupported: meter cannot accept a client certificate without verifying it; "
            "use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file",
            auth,
        )
    if auth not in CLIENT_AUTH:
        raise ConfigError(
            path,
            f"{where}.client_auth_type",
            f"expected one of {', '.join([*CLIENT_AUTH, *UNVERIFIED_CLIENT_AUTH])}",
            auth,
        )
    has_ca = tls.get("client_ca_file") is not None or tls.get("client_ca") is not None
    if auth != "NoClientCert" and not has_ca:
        raise ConfigError(
            path, f"{where}.client_ca_file", f"missing: client_auth_type {auth} needs a CA to verify with"
        )
    sans = _strings(path, f"{where}.client_allowed_sans", tls.get("client_allowed_sans"))
    if sans and auth != "RequireAndVerifyClientCert":
        raise ConfigError(
            path, f"{where}.client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert", auth
        )

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        name = tls.get(key, default)
        if not isinstance(name, str) or name not in TLS_VERSIONS:
            raise ConfigError(path, f"{where}.{key}", f"expected one of {', '.join(TLS_VERSIONS)}", name)
        versions[key] = TLS_VERSIONS[name]
    if versions["min_version"] > versions["max_version"]:
        raise ConfigError(path, f"{where}.min_version", "is above max_version", tls.get("min_version"))
    try:
        if versions["min_version"] < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS 1.0/1.1 at its default level
        context.minimum_version = versions["min_version"]
        context.maximum_version = versions["max_version"]
    except (ValueError, ssl.SSLError) as exc:
        raise ConfigError(path, f"{where}.min_version", f"this OpenSSL cannot: {exc}", tls.get("min_version")) from None

    suites = _strings(path, f"{where}.cipher_suites", tls.get("cipher_suites"))
    if suites:
        names = []
        for i, suite in enumerate(suites):
            if suite in TLS13_SUITES:
                continue
            if suite not in CIPHER_SUITES:
                raise ConfigError(
                    path, f"{where}.cipher_suites[{i}]", "not a cipher suite Go's crypto/tls offers", suite
                )
            names.append(CIPHER_SUITES[suite])
        if names:
            try:
                context.set_ciphers(":".join(names))
            except ssl.SSLError:
                raise ConfigError(
                    path, f"{where}.cipher_suites", "none of these is available in this OpenSSL"
                ) from None
    prefer = tls.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise ConfigError(path, f"{where}.prefer_server_cipher_suites", "expected true or false", prefer)
    if prefer:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    curves = _strings(path, f"{where}.curve_preferences", tls.get("curve_preferences"))
    if len(curves) > 1:
        raise ConfigError(
            path,
            f"{where}.curve_preferences",
            "unsupported: Python's ssl module sets one curve; list one",
            list(curves),
        )
    if curves:
        if curves[0] not in CURVES:
            raise ConfigError(path, f"{where}.curve_preferences[0]", f"expected one of {', '.join(CURVES)}", curves[0])
        try:
            context.set_ecdh_curve(CURVES[curves[0]])
        except (ValueError, ssl.SSLError):
            raise ConfigError(
                path, f"{where}.curve_preferences[0]", "not available in this OpenSSL", curves[0]
            ) from None

    files: list[Path] = []
    cert_pem = _pem(path, tls, "cert", "cert_file", files)
    key_pem = _pem(path, tls, "key", "key_file", files)
    _load_chain(path, where, context, cert_pem, key_pem)
    context.verify_mode = CLIENT_AUTH[auth]
    if has_ca:
        ca_pem = _pem(path, tls, "client_ca", "client_ca_file", files)
        try:
            context.load_verify_locations(cadata=ca_pem.decode("ascii", errors="replace"))
        except (ssl.SSLError, ValueError) as exc:
            key = "client_ca_file" if tls.get("client_ca_file") is not None else "client_ca"
            raise ConfigError(path, f"{where}.{key}", f"not a PEM CA certificate: {_reason(exc)}") from None
    return TlsServerConfig(context, auth, sans, tuple(files))


def _pem(path: Path | None, tls: Mapping, inline: str, file_key: str, files: list[Path]) -> bytes:
    """The PEM bytes, inline or from the named file (which is then watched)."""
    where = "tls_server_config"
    if tls.get(inline) is not None:
        return _string(path, f"{where}.{inline}", tls[inline]).encode()
    name = _string(path, f"{where}.{file_key}", tls[file_key])
    target = _relative(path, name)
    files.append(target)
    try:
        return read_input_bytes(target, max_bytes=MAX_PEM_BYTES, error=ConfigError, what="a PEM file")
    except ConfigError as exc:
        raise ConfigError(path, f"{where}.{file_key}", f"{target}: {exc.problem}") from None


def _load_chain(path: Path | None, where: str, context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """``load_cert_chain`` reads files only: hand it private temporary copies, removed at once."""
    with tempfile.TemporaryDirectory(prefix="meter-tls-") as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        for target, data in ((cert, cert_pem), (key, key_pem)):
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            context.load_cert_chain(cert, key, password=lambda: b"")  # an encrypted key fails, never prompts
        except ssl.SSLError as exc:
            reason = _reason(exc)
            if "KEY_VALUES_MISMATCH" in reason.upper() or "key values mismatch" in reason:
                raise ConfigError(path, f"{where}.key_file", "the key does not match the certificate") from None
            raise ConfigError(path, f"{where}.cert_file", f"certificate or key unusable: {reason}") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or str(exc)


def _http(path: Path | None, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    where = "http_server_config"
    http = _mapping(path, where, value)
    _known(path, where, http, ("http2", "headers"))
    if "http2" in http and not isinstance(http["http2"], bool):
        raise ConfigError(path, f"{where}.http2", "expected true or false", http["http2"])
    headers = _mapping(path, f"{where}.headers", http.get("headers") or {})
    out = []
    for name, text in headers.items():
        if name not in HEADERS:
            raise ConfigError(path, f"{where}.headers.{name}", f"cannot be configured; one of {', '.join(HEADERS)}")
        if text is None or text == "":
            continue  # "unset if blank"
        text = _string(path, f"{where}.headers.{name}", text)
        if "\n" in text or "\r" in text:
            raise ConfigError(path, f"{where}.headers.{name}", "a header value is one line", text)
        if HEADERS[name] and text not in HEADERS[name]:
            raise ConfigError(path, f"{where}.headers.{name}", f"expected one of {', '.join(HEADERS[name])}", text)
        out.append((name, text))
    return tuple(out)


def _users(path: Path | None, value: Any) -> dict[str, bytes]:
    if value is None:
        return {}
    where = "basic_auth_users"
    users = _mapping(path, where, value)
    out = {}
    for user, hashed in users.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise ConfigError(path, where, "a user name is a non-empty string without ':'", user)
        if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            looks = (
                "a sha256 hex digest"
                if isinstance(hashed, str) and re.fullmatch(r"[0-9a-fA-F]{64}", hashed)
                else "a plain password"
                if isinstance(hashed, str)
                else type(hashed).__name__
            )
            raise ConfigError(
                path,
                f"{where}.{user}",
                f"expected a bcrypt hash ($2y$10$...), found {looks}; make one with meter serve --hash-password",
            )
        cost = int(_BCRYPT.match(hashed).group(1))
        if not 4 <= cost <= 31:
            raise ConfigError(path, f"{where}.{user}", "bcrypt cost must be between 4 and 31", cost)
        out[user] = hashed.encode("ascii")
    return out


def _paths(path: Path | None, value: Any) -> frozenset[str]:
    where = "basic_auth_excluded_paths"
    paths = _strings(path, where, value)
    for i, p in enumerate(paths):
        if not p.startswith("/"):
            raise ConfigError(path, f"{where}[{i}]", "a path starts with /", p)
    return frozenset(paths)


def _rate_limit(path: Path | None, value: Any) -> RateLimit | None:
    if value is None:
        return None
    where = "rate_limit"
    limit = _mapping(path, where, value)
    _known(path, where, limit, ("interval", "burst"))
    interval_s = parse_duration_s(path, f"{where}.interval", limit.get("interval", 0))
    burst = limit.get("burst", 0)
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
        raise ConfigError(path, f"{where}.burst", "expected a whole number of requests, 0 or more", burst)
    if interval_s == 0:
        return None  # "set to 0 to disable rate limiter"
    if burst == 0:
        raise ConfigError(path, f"{where}.burst", "a rate limit with burst 0 refuses every request", burst)
    return RateLimit(interval_s, burst)


def parse_duration_s(path: Path | None, where: str, value: Any) -> float:
    """A Prometheus duration (``100ms``, ``1s``, ``1m30s``, ``0``) in seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return 0.0
    text = value if isinstance(value, str) else None
    if text == "0":
        return 0.0
    if text is None or not text or _DURATION.sub("", text) != "":
        raise ConfigError(path, where, "expected a duration such as 100ms, 1s or 1m30s", value)
    return sum(int(n) * _DURATION_S[unit] for n, unit in _DURATION.findall(text))
