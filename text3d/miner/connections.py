"""No stranger can silence the miner: connection caps and read deadlines below the HTTP app.

A slow-loris attacker opens many TCP connections and trickles header bytes; before this
module 1,100 such connections (one byte a second, no signature needed) pushed uvicorn past
its ``limit_concurrency`` of 1024 and every staked validator got 503, and a connection still
sending its headers was never timed out. Everything here runs before any authentication,
in the server's protocol (``GuardedH11Protocol``, uvicorn's h11 protocol with these checks):

- **per-source cap** (``max_connections_per_ip``): a source already holding that many open
  connections has its next one closed at once (a TCP reset, nothing read, no 503 written:
  an answer would cost the miner more than the attacker). A source is an IPv4 address, or
  an IPv6 /64 network (``source_of``): one host's share of IPv6 is a whole /64, so counting
  single IPv6 addresses would give it 2^64 caps; an IPv4-mapped IPv6 peer is its IPv4;
- **total cap** (``max_connections``, well above the per-source cap), so the process's file
  descriptors and memory stay bounded. A connection arriving at the total cap does not
  simply lose to those already held: it evicts the connection that has waited longest on
  its client (still sending a request's headers or body, or idle between requests), and is
  refused only when every open connection has a request the app is working on. An attacker
  with more sources than ``max_connections / max_connections_per_ip`` therefore cannot hold
  the miner shut by keeping connections open: a validator's request arrives within a round
  trip of its connection, and to evict it first the attacker would have to open
  ``max_connections`` new connections within that round trip;
- **read deadlines**: a request's headers must arrive within ``header_timeout_s`` of its
  first byte (or of the connection, for the first request), and its body within
  ``body_timeout_s`` of its headers; a connection past either is closed. Idle keep-alive
  connections are closed by uvicorn's ``timeout_keep_alive``.

uvicorn's own ``limit_concurrency`` (503 to everyone once that many connections are open,
whoever holds them) is set above the total cap, so it never decides. What a miner
operator should still put in front (a firewall's per-address connection limit, a reverse
proxy) is in docs/miner-security.md: every connection, even one closed at once, costs a
SYN, an accept and a file descriptor for a moment, and only the network in front of the
machine can drop a flood before it costs those.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Hashable, Protocol

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["CLOSE_REASONS", "IPV6_SOURCE_PREFIX", "ConnectionLimits", "ConnectionGuard", "GuardedH11Protocol",
           "guarded_protocol", "source_of"]

log = logging.getLogger("text3d.miner")

IPV6_SOURCE_PREFIX = 64
"""An IPv6 peer counts as its /64 network: the smallest block a host is given (RFC 6177)."""

CLOSE_REASONS = ("source_cap", "total_cap", "evicted", "header_timeout", "body_timeout")
"""Why the guard closed a connection (``ConnectionGuard.closed``; the miner's metrics label)."""


def source_of(address: str) -> str:
    """The source a peer address counts against: an IPv4 address (also when IPv4-mapped), an IPv6 /64.

    Anything that is not an IP address (a Unix socket's peer, ``"unknown"``) is its own source.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # a link-local peer may carry "%eth0"
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # a dual-stack socket's IPv4 peer: ::ffff:203.0.113.7
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_SOURCE_PREFIX), strict=False))
    return str(ip)


@dataclass(frozen=True)
class ConnectionLimits:
    """Caps and deadlines (see the module docstring); the miner's settings fill them in."""

    max_connections: int = 4096
    max_connections_per_ip: int = 32
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_connections_per_ip <= self.max_connections:
            raise ValueError("max_connections_per_ip must be between 1 and max_connections")
        if self.header_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ValueError("header_timeout_s and body_timeout_s must be positive")


class Evictable(Protocol):
    """An admitted connection the guard may close to make room (``GuardedH11Protocol``)."""

    def evict(self) -> None: ...


class ConnectionGuard:
    """Who may hold a connection: per-source and total caps, eviction of the longest waiter.

    Each admitted connection is either *waiting* on its client (sending a request's headers
    or body, or idle between requests) or *busy* (a whole request is in, the app is
    answering). ``admit`` at the total cap evicts the connection that has been waiting
    longest; a busy one is never evicted. Event-loop only (no locks); every method is O(1).
    """

    def __init__(self, limits: ConnectionLimits = ConnectionLimits()) -> None:
        self.limits = limits
        self.per_source: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()  # CLOSE_REASONS -> connections the guard closed
        self._source_of: dict[Hashable, str] = {}
        self._waiting: dict[Hashable, None] = {}  # insertion order: the longest waiter first

    @property
    def open(self) -> int:
        """Admitted connections not yet released."""
        return len(self._source_of)

    def admit(self, connection: Evictable, address: str) -> bool:
        """True when ``connection`` from peer ``address`` may stay (it is then counted, and waiting).

        False (counted in ``closed``) when its source holds ``max_connections_per_ip``
        already, or at ``max_connections`` when no open connection is waiting; otherwise, at
        the total cap, the longest waiter is released and evicted to make room.
        """
        source = source_of(address)
        if self.per_source[source] >= self.limits.max_connections_per_ip:
            self.closed["source_cap"] += 1
            return False
        if self.open >= self.limits.max_connections:
            victim = next(iter(self._waiting), None)
            if victim is None:
                self.closed["total_cap"] += 1
                return False
            self.release(victim)
            self.closed["evicted"] += 1
            victim.evict()
        self._source_of[connection] = source
        self.per_source[source] += 1
        self._waiting[connection] = None
        return True

    def waiting(self, connection: Hashable) -> None:
        """``connection`` waits on its client again (from now: it goes to the back of the line)."""
        if connection in self._source_of:
            self._waiting.pop(connection, None)
            self._waiting[connection] = None

    def busy(self, connection: Hashable) -> None:
        """``connection``'s request is in and the app is answering it: not evictable until ``waiting``."""
        self._waiting.pop(connection, None)

    def release(self, connection: Hashable) -> bool:
        """Forget ``connection`` (closed, or about to be); False when it was not counted."""
        source = self._source_of.pop(connection, None)
        if source is None:
            return False
        self._waiting.pop(connection, None)
        self.per_source[source] -= 1
        if self.per_source[source] <= 0:
            del self.per_source[source]
        return True


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guard's caps, eviction and read deadlines (the module docstring)."""

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self._address: str | None = None  # set once admitted
        self._read_deadline: asyncio.TimerHandle | None = None
        self._reading: str | None = None  # "headers" | "body" while a request is being read

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "unknown"
        if not self.guard.admit(self, address):
            transport.abort()  # at once: nothing read, nothing written
            return
        self._address = address
        super().connection_made(transport)
        self._arm("headers", self.guard.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is None:  # refused in connection_made: uvicorn never saw it
            return
        self.guard.release(self)
        self._disarm()
        super().connection_lost(exc)

    def evict(self) -> None:
        """Close at once to make room (the guard has released this connection already)."""
        self._disarm()
        log.debug("closing %s: evicted at the total connection cap", self._address)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._reading is None and self.conn.their_state is h11.IDLE:  # the first byte of the next request
            self._arm("headers", self.guard.limits.header_timeout_s)
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()
        state = self.conn.their_state
        if state is h11.IDLE or state is h11.SEND_BODY:  # idle, or a pipelined request's body still to come
            self.guard.waiting(self)
            if state is h11.SEND_BODY:
                self._arm("body", self.guard.limits.body_timeout_s)

    def _follow_request(self) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._reading == "headers":
            self._arm("body", self.guard.limits.body_timeout_s)
        elif state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._disarm()  # the request is in: from here the app's own deadlines apply
            self.guard.busy(self)

    def _arm(self, what: str, seconds: float) -> None:
        self._disarm()
        self._reading = what
        self._read_deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
        self._read_deadline, self._reading = None, None

    def _too_slow(self) -> None:
        what, self._read_deadline = self._reading, None
        self._reading = None
        if self.transport is not None and not self.transport.is_closing():
            self.guard.closed[f"{what}_timeout"] += 1
            log.debug("closing %s: its request %s did not arrive in time", self._address, what)
            self.transport.abort()


def guarded_protocol(guard: ConnectionGuard) -> Any:
    """The protocol class to give ``uvicorn.Config(http=...)`` (uvicorn instantiates it per connection)."""
    return functools.partial(GuardedH11Protocol, guard=guard)
