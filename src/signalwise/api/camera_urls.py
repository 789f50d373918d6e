"""Where a camera stream URL named over the API may lead (`POST /api/v1/streams`): against request forgery.

The server opens a stream URL itself (FFmpeg), from where it sits, so a caller who may add a stream could have it
connect to what only the server reaches: its own loopback services (a database, an admin port) or the cloud's
metadata address (169.254.169.254). Cameras live on private networks, so those stay allowed. With no
`camera_hosts` every host is allowed but one that resolves to a loopback, link-local or unspecified address;
with `camera_hosts` only its names, addresses and networks are, those included when listed. A host name is
judged by every address it resolves to now: FFmpeg resolves it again when it connects, and follows a camera's
redirects, which no check here can see (docs/vision.md says what that leaves). The streams of `vision run` and
`live --camera` are not checked: the person at the console names them.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

#: the schemes a camera stream over the API may use: RTSP, and HTTP(S) for MJPEG and HLS cameras
SCHEMES = ("rtsp", "rtsps", "http", "https")
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
#: never a camera unless `camera_hosts` lists it: the server itself, and link-local (cloud metadata)
NOT_A_CAMERA = {
    "loopback": (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
    "link-local": (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10")),
    "unspecified": (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128")),
}
#: characters URL parsers disagree on (where the host ends: FFmpeg reads no `#` fragment), or that no camera
#: URL needs: refused, so that the host checked is the host FFmpeg connects to
AMBIGUOUS = frozenset("#\\ \t\r\n")


def refusal(url: str, allowed: list[str]) -> str | None:
    """Why the server may not open stream `url` for a request (one line, for a 422), or None when it may.
    `allowed`: the `camera_hosts` setting (names, addresses, networks); empty = all but NOT_A_CAMERA."""
    scheme = url.partition("://")[0].lower()
    if scheme not in SCHEMES:
        return f"body.url: scheme must be one of {', '.join(SCHEMES)}"
    if any(c in AMBIGUOUS or ord(c) < 32 or ord(c) == 127 for c in url):
        return "body.url: a camera URL holds no '#', backslash, space or control character (percent-encode them)"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        return f"body.url: not a URL the server can read ({exc})"
    if not host:
        return "body.url: the URL names no host"
    names = {_name(entry) for entry in allowed if not _network(entry)}
    if _name(host) in names:
        return None  # a host the owner listed by name: its DNS is theirs
    try:
        addresses = _addresses(host, port or DEFAULT_PORTS[scheme])
    except OSError as exc:
        return (f"body.url: host {host} does not resolve ({exc.strerror or exc}), so where it leads cannot be "
                "checked: give the camera's address, or list its name in SIGNALWISE_CAMERA_HOSTS")
    networks = [n for n in map(_network, allowed) if n is not None]
    for address in addresses:
        if allowed and not any(address in n for n in networks if n.version == address.version):
            return (f"body.url: {host} ({address}) is not among the camera hosts this server allows "
                    "(SIGNALWISE_CAMERA_HOSTS)")
        kind = next((k for k, nets in NOT_A_CAMERA.items() if any(address in n for n in nets
                                                                    if n.version == address.version)), None)
        if kind is not None and not allowed:
            leads = "is" if _name(host) == str(address) else f"leads to {address},"
            return (f"body.url: {host} {leads} a {kind} address: the server's own services and the cloud's "
                    "metadata are no camera (list it in SIGNALWISE_CAMERA_HOSTS if a camera is there)")
    return None


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address `host` resolves to now, as the connection would (IPv4-mapped IPv6 as the IPv4 it is)."""
    out = []
    for *_rest, sockaddr in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP):
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)
        out.append(mapped or address)
    return out


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(entry)  # an address is a network of one
    except ValueError:
        return None


def _name(host: str) -> str:
    return host.lower().rstrip(".")
