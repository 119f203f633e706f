"""Who a client is, for the per-client limits: the TCP peer or, when the peer is a trusted
reverse proxy (`STREAMS_TRUSTED_PROXIES`), the address it forwarded in `X-Forwarded-For`.

The header is read from the right: each trusted proxy appends the address it was reached from, so
the first address from the right that is not a trusted proxy is the client (the entries left of
it were written by the client and prove nothing). A peer that is not trusted cannot choose its
address with the header: it is ignored.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from aiohttp import web

from streams.web.responses import BadHeader

FORWARDED_FOR = "X-Forwarded-For"
MAX_HOPS = 32
"""Entries of `X-Forwarded-For` read at most (a longer chain is malformed)."""

Network = IPv4Network | IPv6Network


class Peers:
    """The client address of a request, given the trusted proxies."""

    def __init__(self, trusted_proxies: tuple[str, ...]) -> None:
        try:
            self.trusted: tuple[Network, ...] = tuple(ip_network(p, strict=False) for p in trusted_proxies)
        except ValueError as exc:
            raise ValueError(f"STREAMS_TRUSTED_PROXIES: {exc}") from None

    def _is_trusted(self, address: IPv4Address | IPv6Address) -> bool:
        return any(address in network for network in self.trusted)

    def client(self, request: web.Request) -> str:
        """The client's address (BadHeader when a trusted proxy sent a malformed header)."""
        peer = request.remote or "?"
        if not self.trusted or FORWARDED_FOR not in request.headers:
            return peer
        try:
            if not self._is_trusted(ip_address(peer)):
                return peer
        except ValueError:  # a Unix socket or unknown peer
            return peer
        entries = [e.strip() for value in request.headers.getall(FORWARDED_FOR) for e in value.split(",")]
        if len(entries) > MAX_HOPS:
            raise BadHeader(FORWARDED_FOR, f"{FORWARDED_FOR} has more than {MAX_HOPS} entries")
        client = peer
        for entry in reversed(entries):
            try:
                address = ip_address(entry)
            except ValueError:
                raise BadHeader(
                    FORWARDED_FOR, f"{FORWARDED_FOR} entry {entry[:64]!r} is not an IP address"
                ) from None
            client = str(address)
            if not self._is_trusted(address):
                break
        return client
