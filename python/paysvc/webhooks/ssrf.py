"""Which webhook URLs may be registered and called (brief, section 7, "Safety").

Only ``https://`` URLs whose host resolves to public addresses. The check runs when an endpoint is
created or its URL changed, and again before every attempt: the deliverer resolves the host once,
checks EVERY address it got, and connects to a checked address (never resolving again), so a DNS
answer that changes between check and connect (DNS rebinding) cannot point it at a private address.

At creation a host that does not resolve is accepted (as Stripe does: DNS may not be set up yet);
each attempt checks it anyway. ``PAYSVC_WEBHOOK_ALLOW_PRIVATE=true`` (development and tests) also
allows ``http://`` and private, loopback, link-local hosts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_CHARS = 2048
CREATION_RESOLVE_TIMEOUT_S = 2.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """The URL may not be called; the message says why (it reaches the API's 400 or last_error)."""


def is_public(address: IPAddress) -> bool:
    """True for a global unicast address. IPv4-mapped and IPv4-compatible IPv6 addresses are judged
    by their IPv4 address (``::ffff:127.0.0.1`` is loopback)."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
        if address.teredo is not None:
            return is_public(address.teredo[1])
    return not (
        address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
        or address.is_unspecified or address.is_reserved or not address.is_global
    )


@dataclass(frozen=True)
class Target:
    """A URL split for calling: the scheme, the host as written, the port, the path and query."""

    scheme: str
    host: str
    port: int
    path: str
    literal: IPAddress | None  # the host, when it is an IP address


def parse(url: str, allow_private: bool) -> Target:
    """The URL's parts, or UnsafeUrl when it is not an absolute URL this service may call."""
    if len(url) > MAX_URL_CHARS:
        raise UnsafeUrl(f"url must be at most {MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise UnsafeUrl("url must not contain whitespace or control characters")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"url is not a valid URL: {exc}") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeUrl("url must be an absolute https:// URL")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("url must name a host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("url must not carry credentials")
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not allow_private and not is_public(literal):
        raise UnsafeUrl("url must not point at a private, loopback, link-local or reserved address")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path, literal)


async def resolve(target: Target) -> list[IPAddress]:
    """Every address the host resolves to (the literal itself for an IP host); OSError when none."""
    if target.literal is not None:
        return [target.literal]
    infos = await asyncio.get_running_loop().getaddrinfo(
        target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise OSError(f"{target.host} has no address")
    return found


def check_addresses(addresses: list[IPAddress], allow_private: bool) -> None:
    if allow_private:
        return
    for address in addresses:
        if not is_public(address):
            raise UnsafeUrl(f"the url's host resolves to a non-public address ({address})")


async def check_at_creation(url: str, allow_private: bool) -> None:
    """UnsafeUrl unless ``url`` may be registered. A host that does not resolve (now) is accepted."""
    target = parse(url, allow_private)
    if allow_private or target.literal is not None:
        return
    try:
        async with asyncio.timeout(CREATION_RESOLVE_TIMEOUT_S):
            addresses = await resolve(target)
    except (OSError, TimeoutError, UnicodeError):
        return
    check_addresses(addresses, allow_private)


async def address_for_attempt(target: Target, allow_private: bool) -> IPAddress:
    """The checked address one attempt connects to: resolved once, every address checked."""
    addresses = await resolve(target)
    check_addresses(addresses, allow_private)
    return addresses[0]
