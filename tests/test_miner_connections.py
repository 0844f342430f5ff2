"""The miner's connection guard: what counts as one source, and who is closed at the caps.

Unit tests of ``text3d.miner.connections.ConnectionGuard`` with stand-in connections (the
network edge); the guard under uvicorn, with real sockets, is tests/test_miner_slowloris.py.
"""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from text3d.miner.connections import ConnectionGuard, ConnectionLimits, source_of
from text3d.ops.metrics import MinerMetrics


class Connection:
    """Stands in for a ``GuardedH11Protocol``: records that the guard evicted it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True

    def __repr__(self) -> str:
        return self.name


@pytest.mark.parametrize("address, source", [
    ("203.0.113.7", "203.0.113.7"),
    ("::ffff:203.0.113.7", "203.0.113.7"),  # a dual-stack socket's IPv4 peer is that IPv4 address
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::1", "::/64"),
    ("unknown", "unknown"),
])
def test_a_source_is_an_ipv4_address_or_an_ipv6_slash_64(address, source):
    assert source_of(address) == source


def test_one_ipv6_host_gets_one_cap_however_many_of_its_addresses_it_uses():
    """Attack: a host with a /64 opens each connection from a new address of it. Before, every
    address had its own cap of 32, so 4,096 connections from 128 addresses filled the miner."""
    guard = ConnectionGuard(ConnectionLimits(max_connections=4096, max_connections_per_ip=32))
    admitted = [guard.admit(Connection(f"c{i}"), f"2001:db8:aa:bb::{i:x}") for i in range(4096)]
    assert sum(admitted) == 32 and guard.open == 32
    assert guard.closed["source_cap"] == 4096 - 32
    assert guard.admit(Connection("next door"), "2001:db8:aa:bc::1")  # the neighbouring /64 is another source


def test_at_the_total_cap_the_longest_waiter_is_evicted_and_the_newcomer_admitted():
    guard = ConnectionGuard(ConnectionLimits(max_connections=4, max_connections_per_ip=2))
    a1, a2, b1, b2, c1 = (Connection(n) for n in ("a1", "a2", "b1", "b2", "c1"))
    for connection, address in ((a1, "10.0.0.1"), (a2, "10.0.0.1"), (b1, "10.0.0.2"), (b2, "10.0.0.2")):
        assert guard.admit(connection, address)
    assert guard.admit(c1, "10.0.0.3")
    assert a1.evicted and not any(c.evicted for c in (a2, b1, b2, c1))
    assert guard.open == 4 and guard.per_source == {"10.0.0.1": 1, "10.0.0.2": 2, "10.0.0.3": 1}
    assert guard.closed == {"evicted": 1}
    assert not guard.release(a1)  # its connection_lost, later: already released, counted once
    assert guard.open == 4


def test_a_connection_whose_request_the_app_is_answering_is_never_evicted():
    guard = ConnectionGuard(ConnectionLimits(max_connections=3, max_connections_per_ip=3))
    first, second, third = Connection("first"), Connection("second"), Connection("third")
    for connection in (first, second, third):
        assert guard.admit(connection, "10.0.0.1" if connection is not third else "10.0.0.2")
    guard.busy(first)  # its whole request is in
    new = Connection("new")
    assert guard.admit(new, "10.0.0.3")
    assert second.evicted and not first.evicted

    guard.busy(third)
    guard.busy(new)
    # every open connection is busy: nobody to evict, the newcomer is closed instead
    assert not guard.admit(Connection("late"), "10.0.0.4")
    assert guard.closed == {"evicted": 1, "total_cap": 1} and guard.open == 3


def test_a_connection_that_waits_again_goes_to_the_back_of_the_line():
    guard = ConnectionGuard(ConnectionLimits(max_connections=2, max_connections_per_ip=2))
    old, young = Connection("old"), Connection("young")
    assert guard.admit(old, "10.0.0.1") and guard.admit(young, "10.0.0.2")
    guard.busy(old)
    guard.waiting(old)  # answered; idle on keep-alive from now, after `young` began waiting
    assert guard.admit(Connection("new"), "10.0.0.3")
    assert young.evicted and not old.evicted


def test_the_per_source_cap_refuses_rather_than_evicts():
    """One source at its cap cannot push others out by connecting again."""
    guard = ConnectionGuard(ConnectionLimits(max_connections=2, max_connections_per_ip=1))
    other, mine = Connection("other"), Connection("mine")
    assert guard.admit(other, "10.0.0.1") and guard.admit(mine, "10.0.0.2")
    assert not guard.admit(Connection("again"), "10.0.0.2")
    assert not other.evicted and guard.closed == {"source_cap": 1}


def test_the_miner_metrics_show_the_guard_at_scrape_time():
    guard = ConnectionGuard(ConnectionLimits(max_connections=1, max_connections_per_ip=1))
    metrics = MinerMetrics()
    metrics.watch_connections(guard)
    assert guard.admit(Connection("one"), "10.0.0.1") and guard.admit(Connection("two"), "10.0.0.2")
    assert not guard.admit(Connection("three"), "10.0.0.2")
    text = generate_latest(metrics.registry).decode()
    assert "text3d_miner_connections_open 1.0" in text
    assert 'text3d_miner_connections_closed_total{reason="evicted"} 1.0' in text
    assert 'text3d_miner_connections_closed_total{reason="source_cap"} 1.0' in text
    assert 'text3d_miner_connections_closed_total{reason="header_timeout"} 0.0' in text
