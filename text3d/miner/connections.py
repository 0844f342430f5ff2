"""No stranger can silence the miner: connection caps and read deadlines below the HTTP app.

A slow-loris attacker opens many TCP connections and trickles header bytes; before this
module 1,100 such connections (one byte a second, no signature needed) pushed uvicorn past
its ``limit_concurrency`` of 1024 and every staked validator got 503, and a connection still
sending its headers was never timed out. Everything here runs before any authentication,
in the server's protocol (``GuardedH11Protocol``, uvicorn's h11 protocol with three checks):

- **per-address cap** (``max_connections_per_ip``): a source address already holding that
  many open connections has its next one closed at once (a TCP reset, nothing read, no
  503 written: an answer would cost the miner more than the attacker);
- **total cap** (``max_connections``, well above the per-address cap): the same for all
  addresses together, so the process's file descriptors and memory stay bounded;
- **read deadlines**: a request's headers must arrive within ``header_timeout_s`` of its
  first byte (or of the connection, for the first request), and its body within
  ``body_timeout_s`` of its headers; a connection past either is closed. Idle keep-alive
  connections are closed by uvicorn's ``timeout_keep_alive``.

uvicorn's own ``limit_concurrency`` (503 to everyone once that many connections are open,
whoever holds them) is set above the total cap, so it never decides. What a miner
operator should still put in front (a firewall's per-address connection limit, a reverse
proxy) is in docs/miner-security.md: an attacker with more addresses than
``max_connections / max_connections_per_ip`` can still fill the total cap here, and only
the network in front of the machine can drop such traffic before it costs a socket.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ConnectionLimits", "ConnectionGuard", "GuardedH11Protocol", "guarded_protocol"]

log = logging.getLogger("text3d.miner")


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


class ConnectionGuard:
    """Counts open connections per source address; decides who may stay. Event-loop only (no locks)."""

    def __init__(self, limits: ConnectionLimits = ConnectionLimits()) -> None:
        self.limits = limits
        self.open = 0
        self.per_address: Counter[str] = Counter()
        self.refused = 0
        self.timed_out = 0

    def admit(self, address: str) -> bool:
        """True (and counted) when ``address`` may open one more connection."""
        if self.open >= self.limits.max_connections or self.per_address[address] >= self.limits.max_connections_per_ip:
            self.refused += 1
            return False
        self.open += 1
        self.per_address[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open -= 1
        self.per_address[address] -= 1
        if self.per_address[address] <= 0:
            del self.per_address[address]


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guard's caps and read deadlines (see the module docstring)."""

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self._address: str | None = None
        self._read_deadline: asyncio.TimerHandle | None = None
        self._reading: str | None = None  # "headers" | "body" while a request is being read

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "unknown"
        if not self.guard.admit(address):
            transport.abort()  # at once: nothing read, nothing written
            return
        self._address = address
        super().connection_made(transport)
        self._arm("headers", self.guard.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is None:  # refused in connection_made: uvicorn never saw it
            return
        self.guard.release(self._address)
        self._address = None
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading is None and self.conn.their_state is h11.IDLE:  # the first byte of the next request
            self._arm("headers", self.guard.limits.header_timeout_s)
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()

    def _follow_request(self) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._reading == "headers":
            self._arm("body", self.guard.limits.body_timeout_s)
        elif state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._disarm()  # the request is in: from here the app's own deadlines apply

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
            self.guard.timed_out += 1
            log.debug("closing %s: its request %s did not arrive in time", self._address, what)
            self.transport.abort()


def guarded_protocol(guard: ConnectionGuard) -> Any:
    """The protocol class to give ``uvicorn.Config(http=...)`` (uvicorn instantiates it per connection)."""
    return functools.partial(GuardedH11Protocol, guard=guard)
