"""HTTPS for the exporter: each connection is wrapped with the web config's TLS context in force then.

Wrapping per connection (not the listening socket once) is what lets a rotated certificate, or a new
CA, be served without a restart: the watcher rebuilds the context when the files change, and the
next handshake uses it. The handshake runs in the connection's worker thread with a timeout, so a
client that stalls cannot hold up accept(). A plain-HTTP request to the TLS port gets Go's answer
(400, "Client sent an HTTP request to an HTTPS server."), a failed handshake a closed connection,
and a client certificate whose SANs are not in ``client_allowed_sans`` is dropped after verification.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from wsgiref.simple_server import make_server

from meter.errors import UsageError
from meter.exporter.http import _QuietHandler, _ThreadingServer
from meter.exporter.webguard import WebConfigWatcher

log = logging.getLogger("meter.serve")
HANDSHAKE_TIMEOUT_S = 10.0
IO_TIMEOUT_S = 60.0  # per read or write once connected: a stalled client frees its thread
TLS_HANDSHAKE_RECORD = 0x16
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server.\n"
)


def peer_sans(cert: dict | None) -> set[str]:
    """The DNS, IP, e-mail and URI names of a verified peer certificate (``getpeercert()``'s form)."""
    names = set()
    for kind, value in (cert or {}).get("subjectAltName", ()):
        if kind == "IP Address":
            try:
                value = str(ipaddress.ip_address(value.strip()))
            except ValueError:
                pass
        names.add(value)
    return names


class TlsThreadingServer(_ThreadingServer):
    watcher: WebConfigWatcher

    def finish_request(self, request, client_address):
        tls = self.watcher.current().config.tls
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            first = request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if not first:
            return
        if first[0] != TLS_HANDSHAKE_RECORD:
            if first.isalpha():  # "GET ...", "POST ...": someone used http:// for an https:// port
                try:
                    request.sendall(PLAIN_HTTP_ANSWER)
                except OSError:
                    pass
            return
        try:
            connection = tls.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:  # no, a bad or an expired client certificate; a scan
            log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        try:
            if tls.client_allowed_sans and not peer_sans(connection.getpeercert()) & set(tls.client_allowed_sans):
                log.debug("client certificate of %s has none of client_allowed_sans", client_address[0])
                return
            connection.settimeout(IO_TIMEOUT_S)
            self.RequestHandlerClass(connection, client_address, self)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS connection with %s ended: %s", client_address[0], exc)
        finally:
            connection.close()


def serve_tls(app, host: str, port: int, watcher: WebConfigWatcher) -> TlsThreadingServer:
    """Listen on host:port and answer HTTPS with the watcher's current TLS settings."""
    try:
        server = make_server(host, port, app, server_class=TlsThreadingServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.watcher = watcher
    return server
