"""What the web config enforces per request: the rate limit, bcrypt basic auth, extra headers; and its reloads.

The rate limit is exporter-toolkit's: one token bucket across every request (but ``/healthz``, which
the kubelet's probes call: a flood must not get the pod restarted), checked before the credentials so
a flood does not buy bcrypt time. A scrape every 15 s is far inside any sensible limit and finds
tokens again as soon as a burst has passed.

Verified credentials are remembered (per user and stored hash, as a keyed BLAKE2 digest of the
password, compared in constant time), so a scrape pays bcrypt's ~50-250 ms once per password rather
than each time. Failures are not remembered: a stream of wrong passwords cannot push the good one out,
and each costs the sender a bcrypt under one lock (as exporter-toolkit, bcrypt runs one at a time).
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from hashlib import blake2b
from pathlib import Path

from meter.errors import ConfigError
from meter.exporter.http import _drain, _reply
from meter.exporter.webconfig import RateLimit, WebConfig, contents_digest, fingerprint, load_web_config

log = logging.getLogger("meter.serve")
BCRYPT_COST = 10  # exporter-toolkit's docs' example; ~60 ms here
MAX_PASSWORD_BYTES = 72  # what bcrypt reads
CHECK_EVERY_S = 0.25  # how often a request may stat the config and certificate files


def _bcrypt():
    """bcrypt, imported when a password is hashed or checked: the exporter without users (and the GPU
    image, which lacks the package) never needs it."""
    import bcrypt

    return bcrypt


def hash_password(password: bytes, cost: int = BCRYPT_COST) -> str:
    """A bcrypt hash for ``basic_auth_users``; ``ValueError`` for a password over 72 bytes (bcrypt's limit)."""
    bcrypt = _bcrypt()
    return bcrypt.hashpw(password, bcrypt.gensalt(cost)).decode("ascii")


class BcryptUsers:
    """``basic_auth_users``: checks an Authorization header."""

    def __init__(self, users: dict[str, bytes]):
        self.users = dict(users)
        self._key = os.urandom(32)  # the digests in memory mean nothing outside this process
        self._verified: dict[tuple[str, bytes], bytes] = {}  # bounded by the number of users
        self._lock = threading.Lock()
        self._bcrypt = threading.Lock()
        cost = min((int(h.split(b"$")[2]) for h in self.users.values()), default=BCRYPT_COST)
        # An unknown user pays a bcrypt of the same cost, so timing does not tell which users exist.
        self._decoy = hash_password(os.urandom(16), cost).encode("ascii") if self.users else b""

    def _digest(self, user: str, password: bytes) -> bytes:
        return blake2b(user.encode() + b"\0" + password, key=self._key, digest_size=32).digest()

    def allows(self, header: str | None) -> bool:
        if not self.users or not header or not header.startswith("Basic "):
            return False
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True)
        except ValueError:
            return False
        user_bytes, sep, password = raw.partition(b":")
        if not sep:
            return False
        user = user_bytes.decode("utf-8", errors="replace")
        stored = self.users.get(user)
        digest = self._digest(user, password)
        if stored is not None:
            with self._lock:
                known = self._verified.get((user, stored))
            if known is not None and hmac.compare_digest(known, digest):
                return True
        if len(password) > MAX_PASSWORD_BYTES:  # bcrypt refuses these; Go's never matches them either
            return False
        with self._bcrypt:
            try:
                ok = _bcrypt().checkpw(password, stored if stored is not None else self._decoy)
            except ValueError:  # a hash that passed the pattern but that bcrypt cannot read
                ok = False
        if ok and stored is not None:
            with self._lock:
                self._verified[(user, stored)] = digest
            return True
        return False


class TokenBucket:
    """One request every ``interval_s``, up to ``burst`` at once (golang.org/x/time/rate's Allow)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic):
        self.limit, self.clock = limit, clock
        self._tokens = float(limit.burst)
        self._at = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self.clock()
            self._tokens = min(self.limit.burst, self._tokens + (now - self._at) / self.limit.interval_s)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


class Guard:
    """What one reading of the web config enforces."""

    def __init__(self, config: WebConfig):
        self.config = config
        self.users = BcryptUsers(dict(config.users)) if config.users else None
        self.bucket = TokenBucket(config.rate_limit) if config.rate_limit else None
        self.headers = list(config.headers)
        self.excluded_paths = config.excluded_paths


class WebConfigWatcher:
    """The current web config: re-read when the file or a file it names changes; the last good one kept.

    Each request may look (at most every ``CHECK_EVERY_S``): a stat of each file, and only when one
    changed, a read of them all. A broken new version is logged once and the previous one kept.
    """

    def __init__(self, config: WebConfig, loader: Callable[[Path], WebConfig] = load_web_config):
        self.loader = loader
        self.guard = Guard(config)
        self._seen = fingerprint(config.files)
        self._digest = contents_digest(config.files)
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self._last_problem: str | None = None
        self.reloads = 0
        self.last_reload_ok = True
        self.loaded_at_unix_s = time.time()

    @property
    def path(self) -> Path | None:
        return self.guard.config.path

    def current(self) -> Guard:
        if self.path is None or time.monotonic() - self._checked < CHECK_EVERY_S:
            return self.guard
        if not self._lock.acquire(blocking=False):
            return self.guard  # another thread is looking: serve with what is in force
        try:
            self._checked = time.monotonic()
            files = self.guard.config.files
            seen = fingerprint(files)
            if seen != self._seen:
                self._seen = seen
                digest = contents_digest(files)
                if digest != self._digest:
                    self._reload(digest)
        finally:
            self._lock.release()
        return self.guard

    def _reload(self, digest: str) -> None:
        try:
            config = self.loader(self.path)
            if (config.tls is None) != (self.guard.config.tls is None):
                raise ConfigError(self.path, "tls_server_config", "turning TLS on or off needs a restart")
        except ConfigError as exc:
            problem = " ".join(str(exc).split())
            self.last_reload_ok = False
            if problem != self._last_problem:
                log.error("web config not reloaded, still serving with the previous one: %s", problem)
                self._last_problem = problem
            return  # the digest stays old: the next change (the fix) is read
        self._digest = digest
        self._seen = fingerprint(config.files)  # the new one may name other files
        previous = self.guard
        previous_users = previous.users
        self.guard = Guard(config)
        if previous.bucket is not None and config.rate_limit == previous.config.rate_limit:
            self.guard.bucket = previous.bucket  # a certificate rotation does not refill the bucket
        if previous_users is not None and self.guard.users is not None:
            # Keep what was verified for users whose hash did not change.
            for (user, stored), known in previous_users._verified.items():
                if self.guard.users.users.get(user) == stored:
                    self.guard.users._verified[(user, stored)] = known
        self._last_problem = None
        self.reloads += 1
        self.last_reload_ok = True
        self.loaded_at_unix_s = time.time()
        log.info("web config reloaded from %s", self.path)


class GuardedApp:
    """The WSGI app behind the web config: 429 over the rate limit, 401 without valid credentials."""

    def __init__(self, app: Callable, watcher: WebConfigWatcher):
        self.app, self.watcher = app, watcher

    def __call__(self, environ, start_response):
        guard = self.watcher.current()
        extra = guard.headers

        def start(status, headers, exc_info=None):
            return start_response(status, list(headers) + extra, exc_info)

        if environ.get("PATH_INFO") == "/healthz":  # probes carry no credentials and must not be limited
            return self.app(environ, start)
        if guard.bucket is not None and not guard.bucket.allow():
            _drain(environ)
            return _reply(start, "429 Too Many Requests", {"error": "over the rate limit of the web config"})
        if (
            guard.users is not None
            and environ.get("PATH_INFO") not in guard.excluded_paths
            and not guard.users.allows(environ.get("HTTP_AUTHORIZATION"))
        ):
            _drain(environ)
            return _reply(
                start,
                "401 Unauthorized",
                {"error": "authentication required"},
                [("WWW-Authenticate", 'Basic realm="gpu-cost-meter"')],
            )
        return self.app(environ, start)
