"""The exporter's HTTP server: /metrics, POST /api/v1/runs, /healthz (TLS and the web config: tlsserver, webguard).

A threaded WSGI server from the standard library, with a listen backlog sized for many scrapers
(the standard library's default of 5 makes concurrent clients wait on TCP retries). /metrics uses
prometheus_client's encoders and content negotiation (text or OpenMetrics, gzip); the rendered
body is reused until the exporter's state changes, so concurrent scrapes of one sampling period
cost one render. Basic auth, when configured, covers every path but /healthz, which probes call
without credentials.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import logging
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from meter.config.schema import read_input_text
from meter.errors import InputError, MeterError, UsageError
from meter.results.document import RunDocument
from meter.results.load import RunFileError, parse_run

log = logging.getLogger("meter.serve")

# A run file of a full suite is a few MiB (timelines are thinned to 2,000 points per device); the
# limit keeps a pushed body, and what json makes of it, well inside the exporter's 256 MiB.
MAX_RUN_BYTES = 8 * 2**20
READ_CHUNK = 64 * 2**10
DRAIN_LIMIT = 256 * 2**20  # read and drop at most this much of a refused body, so the client sees 413
LISTEN_BACKLOG = 128


class BasicAuth:
    """Users from a file of ``user:sha256hex`` lines (``meter serve --hash-password`` makes the hex)."""

    def __init__(self, users: dict[str, str]):
        self.users = users

    @classmethod
    def from_file(cls, path: Path) -> BasicAuth:
        try:  # the one input reader: a FIFO, a directory or a Latin-1 byte is one line, never a hang or crash
            lines = read_input_text(Path(path), max_bytes=2**20, error=InputError, what="a basic-auth file")
        except InputError as exc:
            raise UsageError(f"--basic-auth-file {exc}") from None
        lines = lines.splitlines()
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


class Exposition:
    """The rendered /metrics body per (format, compression), reused while the state is unchanged.

    ``refresh()`` (the exporter calls it from its own thread after each sampling round) renders
    every format asked for so far, so a scrape normally only copies bytes. A scrape that finds the
    body out of date while another thread is rendering it takes the previous round's body rather
    than wait; only the very first scrape of a format renders and waits.
    """

    def __init__(self, registry: CollectorRegistry, version: Callable[[], int]):
        self.registry, self.version = registry, version
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, bool], tuple[int, bytes]] = {}
        self._encoders: dict[tuple[str, bool], Callable] = {}
        self._rendering: set[tuple[str, bool]] = set()
        self._first = threading.Lock()  # serialises first renders of a format

    def _render(self, key: tuple[str, bool], version: int) -> bytes:
        body = self._encoders[key](self.registry)
        body = gzip.compress(body, compresslevel=1) if key[1] else body
        with self._lock:
            self._rendering.discard(key)
            current = self._cache.get(key)
            if current is None or current[0] < version:
                self._cache[key] = (version, body)
        return body

    def _claim(self, key: tuple[str, bool]) -> tuple[bytes | None, int | None]:
        """(a body to serve now, None) or (the stale body or None, the version this caller must render)."""
        with self._lock:
            version = self.version()
            cached = self._cache.get(key)
            if cached is not None and (cached[0] == version or key in self._rendering):
                return cached[1], None
            self._rendering.add(key)
            return (cached[1] if cached else None), version

    def render(self, accept: str | None, accept_encoding: str | None) -> tuple[bytes, list[tuple[str, str]]]:
        encoder, content_type = choose_encoder(accept or "")
        key = (content_type, gzip_accepted(accept_encoding or ""))
        with self._lock:
            self._encoders.setdefault(key, encoder)
        body, version = self._claim(key)
        if version is not None:
            if body is None:
                with self._first:
                    body = self._render(key, version)
            else:
                body = self._render(key, version)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if key[1]:
            headers.append(("Content-Encoding", "gzip"))
        return body, headers

    def refresh(self) -> None:
        """Render every format scraped so far that is out of date."""
        with self._lock:
            keys = list(self._encoders)
        for key in keys:
            _, version = self._claim(key)
            if version is not None:
                self._render(key, version)


class MeterApp:
    """The WSGI application."""

    def __init__(
        self,
        registry: CollectorRegistry,
        ingest: Callable[[RunDocument, bytes], dict[str, Any]],
        auth: BasicAuth | None = None,
        *,
        version: Callable[[], int] | None = None,
        max_run_bytes: int = MAX_RUN_BYTES,
    ):
        counter = iter(range(1, 2**62))
        self.exposition = Exposition(registry, version or (lambda: next(counter)))  # no version: never cached
        self.ingest = ingest
        self.auth = auth
        self.max_run_bytes = max_run_bytes

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":  # liveness and readiness probes carry no credentials
            return _reply(start_response, "200 OK", {"status": "ok"})
        if self.auth is not None and not self.auth.allows(environ.get("HTTP_AUTHORIZATION")):
            _drain(environ)
            return _reply(
                start_response,
                "401 Unauthorized",
                {"error": "authentication required"},
                [("WWW-Authenticate", 'Basic realm="gpu-cost-meter"')],
            )
        if path == "/metrics" and method in ("GET", "HEAD"):
            body, headers = self.exposition.render(environ.get("HTTP_ACCEPT"), environ.get("HTTP_ACCEPT_ENCODING"))
            start_response("200 OK", headers)
            return [b""] if method == "HEAD" else [body]
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
        raw = environ.get("CONTENT_LENGTH") or ""
        length = _length(raw)
        if raw.strip() and length is None:
            _drain(environ, 0)
            return _reply(
                start_response,
                "400 Bad Request",
                {"error": f"Content-Length {raw.strip()[:40]!r} is not a number of bytes"},
            )
        if length is None or length == 0:
            return _reply(
                start_response,
                "411 Length Required",
                {"error": f"POST a run file with a Content-Length of 1 to {self.max_run_bytes} bytes"},
            )
        if length > self.max_run_bytes:
            _drain(environ, length)
            return _reply(
                start_response,
                "413 Content Too Large",
                {"error": f"run file of {length} bytes is over this exporter's limit of {self.max_run_bytes} bytes"},
            )
        body = _read(environ["wsgi.input"], length)
        try:
            doc = parse_run(body, "posted run")
        except RunFileError as exc:  # every bad run file is the client's to fix: one line, 400
            return _reply(start_response, "400 Bad Request", {"error": _one_line(exc)})
        try:
            accepted = self.ingest(doc, body)
        except RunFileError as exc:  # accepted by the loader but not exportable (see check_renderable)
            return _reply(start_response, "400 Bad Request", {"error": _one_line(exc)})
        except MeterError as exc:  # a good run file the exporter cannot take (it cannot store it, ...)
            return _reply(start_response, "422 Unprocessable Entity", {"error": _one_line(exc)})
        except Exception as exc:  # a bug of ours: say so to the client and in the server's log
            log.exception("POST /api/v1/runs failed")
            return _reply(start_response, "500 Internal Server Error", {"error": f"{type(exc).__name__}: {exc}"})
        return _reply(start_response, "202 Accepted", accepted)


def _length(raw: str) -> int | None:
    """A Content-Length of ASCII digits, or None ('²' and '٣' are digits to str.isdigit, not to HTTP)."""
    raw = raw.strip()
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _read(stream, length: int) -> bytes:
    """Exactly the announced body, in chunks (a short body ends early)."""
    data = bytearray()
    while len(data) < length:
        chunk = stream.read(min(READ_CHUNK, length - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _drain(environ, length: int | None = None) -> None:
    """Read and drop a refused body (bounded), so the client reads our answer instead of a reset."""
    if length is None:
        raw = environ.get("CONTENT_LENGTH") or ""
        length = _length(raw) or 0
    left = min(length, DRAIN_LIMIT)
    stream = environ["wsgi.input"]
    while left > 0:
        chunk = stream.read(min(READ_CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _reply(start_response, status: str, payload: dict, extra_headers: list | None = None):
    body = (json.dumps(payload) + "\n").encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + (extra_headers or [])
    )
    return [body]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG  # listen() backlog: the kernel caps it at net.core.somaxconn


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (the stdlib's signature)
        pass  # a scrape every 15 s per Prometheus must not fill the logs


def serve(app, host: str, port: int):
    """Plain HTTP (HTTPS: meter.exporter.tlsserver): returns the server (``serve_forever`` runs it)."""
    try:
        server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return server
