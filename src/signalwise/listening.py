"""The API's listening socket, bound before anything else starts.

A server that finds its port taken only after it has started (uvicorn says
so in its log and exits 3) leaves the user a log to read; bound first, a
port in use is one `error:` line and exit 1, as every command's failures are.
"""

from __future__ import annotations

import errno
import ipaddress
import socket


class ListenError(Exception):
    """The socket cannot be bound; the message says why and what to do."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (not yet listening)."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a port in TIME_WAIT is free
        sock.bind(address)
    except OSError as exc:
        sock.close()
        what = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise ListenError(f"cannot listen on {host}:{port} for the API: {what} (choose another with --port)") from None
    return sock


def is_loopback(host: str | None) -> bool:
    """Whether `host` (a listening address) is this machine's loopback: reads may be open there."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_no_auth_refusal(host: str, given_as: str = "--insecure-no-auth") -> str | None:
    """Why every route opened without a key (`--insecure-no-auth`) is refused on `host`: it is for one machine's
    own use, so only on a loopback address (None there). On any other address anyone who reaches the server could
    hold phases and change the timing of the signals; a shipped deployment (compose.yaml, the Dockerfile) uses keys
    instead."""
    if is_loopback(host):
        return None
    return (f"{given_as} opens every route, changes included, without a key: it is refused on --host {host}, "
            "which other machines can reach; use it on a loopback --host only (127.0.0.1, ::1, localhost), and on "
            "a network give each operator a key (signalwise keys create --name NAME --scope operate)")
