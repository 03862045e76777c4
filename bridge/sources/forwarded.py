"""The URL a sender called, as seen through a reverse proxy (sources.md §18.4).

Behind a TLS terminator the server sees `http://10.0.0.5:8000/hooks/x` while the sender
signed `https://hooks.example.com/hooks/x`. X-Forwarded-Proto, -Host and -Port say what the
proxy received, but anyone can send them: they are honoured only when the connection comes
from a configured trusted proxy, and then only their last value (the one that proxy added).
A source's `public_url` overrides all of this for the schemes that sign the URL.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable, Mapping

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(value: str) -> Network:
    """`10.0.0.0/8`, `127.0.0.1`, `fdaa::/16` -> a network; ValueError if it is none."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or network") from None


class TrustedProxies:
    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks = tuple(networks)

    def trusts(self, peer: str | None) -> bool:
        if not self.networks or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def external_url(self, url: str, headers: Mapping[str, str], peer: str | None) -> str:
        """`url` with the scheme, host and port a trusted proxy says the sender used."""
        if not self.trusts(peer):
            return url
        proto = _last(headers.get("x-forwarded-proto"))
        host = _last(headers.get("x-forwarded-host"))
        port = _last(headers.get("x-forwarded-port"))
        if not (proto or host or port):
            return url
        parts = urllib.parse.urlsplit(url)
        scheme = proto.lower() if proto.lower() in ("http", "https") else parts.scheme
        netloc = host or parts.netloc
        if port.isdigit():
            netloc = _without_port(netloc)
            if DEFAULT_PORTS.get(scheme) != port:
                netloc = f"{netloc}:{port}"
        return urllib.parse.urlunsplit(parts._replace(scheme=scheme, netloc=netloc))

    def client_address(self, headers: Mapping[str, str], peer: str | None) -> str:
        """Who sent the request: the address a trusted proxy says it received it from (the last
        X-Forwarded-For), else the connection's own peer."""
        forwarded = _last(headers.get("x-forwarded-for")) if self.trusts(peer) else ""
        return forwarded or peer or "unknown"


DEFAULT_PORTS = {"https": "443", "http": "80"}


def _last(value: str | None) -> str:
    return value.rsplit(",", 1)[-1].strip() if value else ""


def _without_port(netloc: str) -> str:
    host, sep, port = netloc.rpartition(":")
    return host if sep and port.isdigit() else netloc
