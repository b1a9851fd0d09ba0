"""The web config's parts without a server: parsing, the token bucket, the credential cache, reloads."""

from __future__ import annotations

import base64
import logging
import ssl
from pathlib import Path

import pytest

from meter.errors import ConfigError
from meter.exporter.tlsserver import peer_sans
from meter.exporter.webconfig import RateLimit, WebConfig, load_web_config, parse_duration_s
from meter.exporter.webguard import BcryptUsers, GuardedApp, TokenBucket, WebConfigWatcher
from tests.conftest import require_module
from tests.exporter.certs import TestCa

bcrypt = require_module("bcrypt", "pip install -e '.[test]' (the web config's bcrypt basic_auth_users)")

# exporter-toolkit's docs/web-config.yml sample: alice's bcrypt hash, of "alice123" ($2y$: htpasswd's prefix)
ALICE = "$2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze"


def header(user: str, password: str | bytes) -> str:
    raw = password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(user.encode() + b":" + raw).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = TestCa(tmp_path_factory.mktemp("pki"))
    return ca, ca.issue("server"), ca.issue("other")


def test_the_toolkit_sample_users_and_htpasswd_2y_hashes(tmp_path: Path):
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: {ALICE}\n")
    config = load_web_config(path)
    users = BcryptUsers(dict(config.users))
    assert users.allows(header("alice", "alice123"))
    for bad in (
        header("alice", "wrong"),
        header("bob", "alice123"),
        "Bearer x",
        "Basic !!!",
        None,
        header("alice", b"x" * 80),
    ):
        assert not users.allows(bad), bad


def test_verified_credentials_are_cached_and_failures_are_not(monkeypatch):
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4))
    users = BcryptUsers({"prometheus": hashed})
    calls = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda p, h: calls.append(p) or real(p, h))
    for _ in range(5):
        assert users.allows(header("prometheus", "pw"))
    assert calls == [b"pw"]  # bcrypt paid once for five scrapes
    for _ in range(3):
        assert not users.allows(header("prometheus", "nope"))
    assert calls == [b"pw"] + [b"nope"] * 3  # a wrong password is never remembered as good
    assert users.allows(header("prometheus", "pw")) and len(calls) == 4
    assert not users.allows(header("nobody", "pw")) and calls[-1] == b"pw"  # an unknown user pays a decoy bcrypt
    assert len(users._verified) == 1  # bounded by the users in the file


def test_token_bucket_is_golangs_allow():
    now = [0.0]
    bucket = TokenBucket(RateLimit(interval_s=0.5, burst=3), clock=lambda: now[0])
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5
    assert [bucket.allow() for _ in range(2)] == [True, False]
    now[0] += 100
    assert sum(bucket.allow() for _ in range(10)) == 3  # never more than the burst


@pytest.mark.parametrize(
    "text,seconds", [("100ms", 0.1), ("1s", 1), ("1m30s", 90), ("2h", 7200), (0, 0), ("0", 0), ("1d", 86400)]
)
def test_prometheus_durations(text, seconds):
    assert parse_duration_s(None, "rate_limit.interval", text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1.5s", "fast", "", "-1s", "1 s", True, 5])
def test_bad_durations(text):
    with pytest.raises(ConfigError, match="rate_limit.interval"):
        parse_duration_s(None, "rate_limit.interval", text)


def test_inline_certificate_versions_ciphers_and_curve(tmp_path: Path, pki):
    _, server, _ = pki
    cert = server.cert.read_text().replace("\n", "\n    ")
    key = server.key.read_text().replace("\n", "\n    ")
    path = tmp_path / "web.yml"
    path.write_text(
        "tls_server_config:\n"
        f"  cert: |\n    {cert}\n"
        f"  key: |\n    {key}\n"
        "  min_version: TLS12\n  max_version: TLS12\n"
        "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n"
        "  curve_preferences: [CurveP256]\n"
        "  prefer_server_cipher_suites: false\n"
    )
    tls = load_web_config(path).tls
    assert tls.context.minimum_version == tls.context.maximum_version == ssl.TLSVersion.TLSv1_2
    assert [c["name"] for c in tls.context.get_ciphers() if c["protocol"] == "TLSv1.2"] == [
        "ECDHE-ECDSA-AES128-GCM-SHA256"
    ]
    assert not tls.context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert tls.files == ()  # nothing to watch but the config itself


def test_relative_files_resolve_against_the_config(tmp_path: Path, pki):
    _, server, _ = pki
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "tls.crt").write_bytes(server.cert.read_bytes())
    (tmp_path / "certs" / "tls.key").write_bytes(server.key.read_bytes())
    path = tmp_path / "web.yml"
    path.write_text("tls_server_config:\n  cert_file: certs/tls.crt\n  key_file: certs/tls.key\n")
    assert load_web_config(path).tls.files == (tmp_path / "certs" / "tls.crt", tmp_path / "certs" / "tls.key")
    assert load_web_config(_write(tmp_path / "empty.yml", "")) == WebConfig(tmp_path / "empty.yml")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_sans_of_a_verified_certificate():
    cert = {"subjectAltName": (("DNS", "prometheus"), ("IP Address", "127.0.0.1\n"), ("URI", "spiffe://x/y"))}
    assert peer_sans(cert) == {"prometheus", "127.0.0.1", "spiffe://x/y"}
    assert peer_sans(None) == set() and peer_sans({}) == set()


def test_watcher_reloads_on_change_and_keeps_the_last_good_config(tmp_path: Path, monkeypatch, caplog):
    import meter.exporter.webguard as webguard

    monkeypatch.setattr(webguard, "CHECK_EVERY_S", 0.0)
    first = bcrypt.hashpw(b"one", bcrypt.gensalt(4)).decode()
    path = _write(tmp_path / "web.yml", f"basic_auth_users:\n  prometheus: '{first}'\n")
    watcher = WebConfigWatcher(load_web_config(path))
    assert watcher.current().users.allows(header("prometheus", "one"))
    with caplog.at_level(logging.ERROR, logger="meter.serve"):
        _write(path, "basic_auth_users:\n  prometheus: one\n")  # a plain password: refused, the old one kept
        assert watcher.current().users.allows(header("prometheus", "one")) and watcher.reloads == 0
        assert watcher.current().users.allows(header("prometheus", "one"))
    assert [r.getMessage() for r in caplog.records].count(
        f"web config not reloaded, still serving with the previous one: {path}: field "
        "'basic_auth_users.prometheus': expected a bcrypt hash ($2y$10$...), found a plain password; "
        "make one with meter serve --hash-password"
    ) == 1  # said once, not on every request
    second = bcrypt.hashpw(b"two", bcrypt.gensalt(4)).decode()
    _write(path, f"basic_auth_users:\n  prometheus: '{second}'\nrate_limit: {{interval: 1s, burst: 2}}\n")
    guard = watcher.current()
    assert watcher.reloads == 1 and guard.bucket is not None
    assert guard.users.allows(header("prometheus", "two")) and not guard.users.allows(header("prometheus", "one"))
    _write(path, "tls_server_config:\n  cert_file: a\n  key_file: b\n")  # missing files: kept as it was
    assert watcher.current() is guard


def test_guarded_app_order_healthz_429_401_and_headers():
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4))
    config = WebConfig(
        None,
        users={"p": hashed},
        rate_limit=RateLimit(interval_s=3600, burst=3),
        headers=(("X-Frame-Options", "deny"),),
        excluded_paths=frozenset({"/"}),
    )
    seen = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    guarded = GuardedApp(app, WebConfigWatcher(config))

    def call(path: str, auth: str | None = None) -> tuple[str, dict]:
        import io

        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
        if auth:
            environ["HTTP_AUTHORIZATION"] = auth
        guarded(environ, lambda status, headers, exc_info=None: seen.append((status, dict(headers))))
        return seen[-1]

    status, headers = call("/metrics", header("p", "pw"))
    assert status == "200 OK" and headers["X-Frame-Options"] == "deny"
    assert call("/metrics")[0] == "401 Unauthorized"
    assert call("/")[0] == "200 OK"  # basic_auth_excluded_paths
    assert call("/metrics", header("p", "pw"))[0] == "429 Too Many Requests"  # the bucket of 3 is spent
    assert call("/healthz")[0] == "200 OK"  # probes: neither limited nor asked for credentials


def test_any_value_in_any_key_is_a_config_error_or_a_config(tmp_path: Path, pki):
    """Every key of the format given values of every YAML type: loads or ConfigError, never a crash."""
    import json

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    _, server, _ = pki
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=8),
        st.sampled_from(["TLS13", "CurveP256", "RequireAndVerifyClientCert", "100ms", "nosniff", "/x"]),
    )  # fmt: skip
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)  # fmt: skip
    paths = st.sampled_from(
        [("tls_server_config", k) for k in ("cert_file", "key_file", "client_auth_type", "client_ca_file",
          "client_allowed_sans", "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites",
          "curve_preferences", "cert", "key", "client_ca")]
        + [("http_server_config", "http2"), ("http_server_config", "headers"), ("rate_limit", "interval"),
           ("rate_limit", "burst"), ("basic_auth_users", "prometheus"), ("basic_auth_excluded_paths",),
           ("basic_auth_users",), ("tls_server_config",), ("rate_limit",), ("http_server_config",)]
    )  # fmt: skip
    path = tmp_path / "web.yml"

    @settings(
        max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(paths, values)
    def check(where, value):
        doc = {"tls_server_config": {"cert_file": str(server.cert), "key_file": str(server.key)}, "rate_limit": {}}
        node = doc
        for key in where[:-1]:
            node = node.setdefault(key, {})
        node[where[-1]] = value
        path.write_text(json.dumps(doc))
        try:
            load_web_config(path)
        except ConfigError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)

    check()


def test_tls_versions_are_enforced_in_the_handshake(tmp_path: Path, pki):
    import http.client
    import threading

    from meter.exporter.tlsserver import serve_tls

    ca, server, _ = pki
    path = _write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n  min_version: TLS13\n",
    )

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    httpd = serve_tls(app, "127.0.0.1", 0, WebConfigWatcher(load_web_config(path)))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    port = httpd.server_address[1]

    def get(maximum: ssl.TLSVersion) -> int:
        context = ssl.create_default_context(cafile=str(ca.root.cert))
        context.maximum_version = maximum
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        try:
            connection.request("GET", "/")
            return connection.getresponse().status
        finally:
            connection.close()

    try:
        assert get(ssl.TLSVersion.TLSv1_3) == 200
        with pytest.raises(ssl.SSLError):
            get(ssl.TLSVersion.TLSv1_2)  # under min_version: no shared protocol
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        plain.request("GET", "/")
        assert plain.getresponse().status == 400
        plain.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
