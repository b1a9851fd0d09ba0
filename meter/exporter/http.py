"""The exporter's HTTP server: /metrics, POST /api/v1/runs, /healthz; optional TLS and basic auth.

A threaded WSGI server from the standard library; /metrics is prometheus_client's own WSGI app
over our registry, so content negotiation (text or OpenMetrics) and compression are theirs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socketserver
import ssl
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from meter.errors import MeterError, UsageError
from meter.results.document import RunDocument
from meter.results.load import RunFileError, parse_run

MAX_RUN_BYTES = 64 * 2**20


class BasicAuth:
    """Users from a file of ``user:sha256hex`` lines (``meter serve --hash-password`` makes the hex)."""

    def __init__(self, users: dict[str, str]):
        self.users = users

    @classmethod
    def from_file(cls, path: Path) -> BasicAuth:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"--basic-auth-file {path}: {exc.strerror or exc}") from None
        users = {}
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, digest = line.partition(":")
            if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise UsageError(f"--basic-auth-file {path}: line {n} is not 'user:<sha256 hex of the password>'")
            users[user] = digest.lower()
        if not users:
            raise UsageError(f"--basic-auth-file {path}: no users")
        return cls(users)

    def allows(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        expected = self.users.get(user)
        given = hashlib.sha256(password.encode()).hexdigest()
        return expected is not None and hmac.compare_digest(expected, given)


def hash_password(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


class MeterApp:
    """The WSGI application."""

    def __init__(
        self,
        registry: CollectorRegistry,
        ingest: Callable[[RunDocument], dict[str, Any]],
        auth: BasicAuth | None = None,
    ):
        self.metrics = make_wsgi_app(registry)
        self.ingest = ingest
        self.auth = auth

    def __call__(self, environ, start_response):
        if self.auth is not None and not self.auth.allows(environ.get("HTTP_AUTHORIZATION")):
            return _reply(
                start_response,
                "401 Unauthorized",
                {"error": "authentication required"},
                [("WWW-Authenticate", 'Basic realm="gpu-cost-meter"')],
            )
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics" and method in ("GET", "HEAD"):
            return self.metrics(environ, start_response)
        if path == "/healthz":
            return _reply(start_response, "200 OK", {"status": "ok"})
        if path == "/api/v1/runs":
            if method != "POST":
                return _reply(
                    start_response, "405 Method Not Allowed", {"error": "POST a run file"}, [("Allow", "POST")]
                )
            return self._post_run(environ, start_response)
        if path == "/":
            body = b"gpu-cost-meter exporter: /metrics, POST /api/v1/runs, /healthz\n"
            start_response(
                "200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
            )
            return [body]
        return _reply(start_response, "404 Not Found", {"error": f"no such path: {path}"})

    def _post_run(self, environ, start_response):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_RUN_BYTES:
            return _reply(
                start_response,
                "413 Payload Too Large" if length > MAX_RUN_BYTES else "411 Length Required",
                {"error": f"a run file of 1 byte to {MAX_RUN_BYTES} bytes, with Content-Length"},
            )
        try:
            doc = parse_run(environ["wsgi.input"].read(length), "posted run")
            accepted = self.ingest(doc)
        except RunFileError as exc:
            return _reply(start_response, "400 Bad Request", {"error": str(exc)})
        except MeterError as exc:
            return _reply(start_response, "422 Unprocessable Entity", {"error": str(exc)})
        except Exception as exc:  # a bug of ours: say so to the client and in the server's log
            traceback.print_exc(file=sys.stderr)
            return _reply(start_response, "500 Internal Server Error", {"error": f"{type(exc).__name__}: {exc}"})
        return _reply(start_response, "202 Accepted", accepted)


def _reply(start_response, status: str, payload: dict, extra_headers: list | None = None):
    body = (json.dumps(payload) + "\n").encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + (extra_headers or [])
    )
    return [body]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (the stdlib's signature)
        pass  # a scrape every 15 s per Prometheus must not fill the logs


def serve(app: MeterApp, host: str, port: int, *, certfile: str | None = None, keyfile: str | None = None):
    """Start serving in the calling thread's caller: returns the server (``serve_forever`` runs it)."""
    try:
        server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            server.server_close()
            raise UsageError(f"--tls-cert/--tls-key: {exc}") from None
        # Handshake in the worker thread on first read, so a slow client cannot stall accept().
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server
