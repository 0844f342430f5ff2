"""A stranger cannot silence a miner by holding connections open (slow loris).

Before: 1,100 TCP connections each trickling one header byte a second -- no signature needed
-- pushed uvicorn past its ``limit_concurrency`` of 1024 and a staked validator's signed
request got 503 (scored 0 as ``refused``); a connection still sending its headers was never
timed out. Now (``text3d.miner.connections``, checked before any authentication): at most
``max_connections_per_ip`` (32) connections per source address and ``max_connections``
(4096) in all, over-cap connections closed at once, and headers must arrive within
``header_timeout_s``.

The real miner app is served as ``text3d miner`` serves it, in its own process
(``tests.guarded_miner``), so its file descriptors and memory are measured (psutil) while:
1,100 slow connections come from 127.0.0.2 and 5,000 more from 127.0.1.0-127.0.1.49 (100
each), each sending a header byte a second; the staked validator (the real
``MinerClient``, btauth/1) asks from 127.0.0.1 and gets 200 with a mesh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time

import psutil
import pytest

from text3d.protocol.mesh_codec import decode_mesh
from text3d.protocol.wire import TextTo3DRequest, TextTo3DResponse
from text3d.validator.client import MinerClient, Target
from tests.loopback import make_wallet

pytestmark = pytest.mark.integration

HEADER_TIMEOUT_S = 15.0  # long enough for a loaded machine to finish the checks below first


def _open(port: int, source: str, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((source, 0))
        s.settimeout(2.0)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    return socks


def _trickle(socks: list[socket.socket], byte: bytes) -> int:
    """Send one header byte on each socket; returns how many the miner has closed."""
    closed = 0
    for s in socks:
        try:
            if s.recv(1, socket.MSG_PEEK) == b"":
                closed += 1
                continue
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
            continue
        try:
            s.send(byte)
        except OSError:
            closed += 1
    return closed


@contextlib.contextmanager
def _guarded_miner(tmp_path, settings: dict):
    """The miner in its own process (``tests.guarded_miner``); yields (port, psutil process, miner, staked)."""
    miner, staked = make_wallet(tmp_path, "miner"), make_wallet(tmp_path, "staked")
    port_file = tmp_path / "port"
    child = subprocess.Popen([sys.executable, "-m", "tests.guarded_miner", miner.hotkey.ss58_address,
                              staked.hotkey.ss58_address, str(port_file), json.dumps(settings)])
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if child.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the miner did not start")
            time.sleep(0.05)
        yield int(port_file.read_text()), psutil.Process(child.pid), miner, staked
    finally:
        child.kill()
        child.wait(timeout=10)


def _ask(staked, miner, port: int):
    """The staked validator's signed request (the real ``MinerClient``); returns its ``MinerAnswer``."""

    async def ask():
        client = MinerClient(staked)
        try:
            target = Target(1, miner.hotkey.ss58_address, "127.0.0.1", port)
            return await client.query(target, TextTo3DRequest(prompt="a red chair", seed=1, timeout_s=8.0), 8.0)
        finally:
            await client.aclose()

    return asyncio.run(ask())


def test_slow_connections_from_strangers_cannot_silence_a_miner(tmp_path):
    held: list[socket.socket] = []
    with _guarded_miner(tmp_path, {"header_timeout_s": HEADER_TIMEOUT_S}) as (port, proc, miner, staked):
        try:
            _slow_loris_against_defaults(port, proc, miner, staked, held)
        finally:
            for s in held:
                s.close()


def _slow_loris_against_defaults(port, proc, miner, staked, held) -> None:
    baseline_fds, baseline_rss = proc.num_fds(), proc.memory_info().rss
    one_address = _open(port, "127.0.0.2", 1100)
    spread = [s for i in range(50) for s in _open(port, f"127.0.1.{i}", 100)]
    held.extend(one_address + spread)
    opened = time.monotonic()
    pattern = b"GET /health HTTP/1.1\r\n"
    time.sleep(0.5)
    # over-cap connections were closed at once: 32 per address held, the rest refused (exactly
    # 32 per address still open, so the header timeout, which would close them all, did not act)
    closed_one, closed_spread = _trickle(one_address, pattern[:1]), _trickle(spread, pattern[:1])
    assert closed_one == 1100 - 32 and closed_spread == 5000 - 50 * 32
    sent = 1
    while time.monotonic() - opened < 2.5:  # a byte a second, as the attack does
        time.sleep(1.0)
        _trickle(held, pattern[sent:sent + 1])
        sent += 1
    fds, rss = proc.num_fds(), proc.memory_info().rss

    answer = _ask(staked, miner, port)
    assert answer.status == "ok" and answer.http_status == 200, answer.detail
    assert len(decode_mesh(TextTo3DResponse.from_http(answer.headers, answer.body).payload).faces) > 0

    # the miner's descriptors and memory stay bounded by the caps (51 x 32 = 1,632 held)
    assert fds - baseline_fds <= 51 * 32 + 64, (baseline_fds, fds)
    assert rss - baseline_rss < 100 * 2**20, (baseline_rss, rss)
    print(f"miner fds {baseline_fds} -> {fds}, rss {baseline_rss / 2**20:.1f} -> {rss / 2**20:.1f} MiB")

    # a connection still sending its headers is closed at the header timeout
    still = len(held)
    while time.monotonic() - opened < HEADER_TIMEOUT_S + 3.0:
        time.sleep(1.0)
        sent += 1
        still = len(held) - _trickle(held, pattern[sent % len(pattern):sent % len(pattern) + 1])
    assert still == 0
    assert proc.num_fds() <= baseline_fds + 8


def test_strangers_with_more_sources_than_the_total_cap_allows_cannot_silence_a_miner(tmp_path):
    """40 sources x 8 slow connections against a total cap of 64: the validator still gets 200.

    Before eviction the first 64 held the miner shut and the validator's connection was reset.
    """
    limits = {"max_connections": 64, "max_connections_per_ip": 8, "header_timeout_s": HEADER_TIMEOUT_S}
    held: list[socket.socket] = []
    with _guarded_miner(tmp_path, limits) as (port, proc, miner, staked):
        try:
            baseline_fds = proc.num_fds()
            for i in range(40):
                held.extend(_open(port, f"127.0.2.{i}", 8))
            time.sleep(0.5)
            closed = _trickle(held, b"G")
            # every source got its 8 (none refused by the per-source cap); at the total cap each
            # newer connection evicted the longest waiter, so the 64 newest are the ones left
            assert closed == 40 * 8 - 64
            assert _trickle(held[-64:], b"E") == 0
            answer = _ask(staked, miner, port)
            assert answer.status == "ok" and answer.http_status == 200, answer.detail
            assert len(decode_mesh(TextTo3DResponse.from_http(answer.headers, answer.body).payload).faces) > 0
            # the validator's connection took the place of one slow connection: still 64 at most
            assert 64 - 1 <= len(held) - _trickle(held, b"T") <= 64
            assert proc.num_fds() - baseline_fds <= 64 + 8
        finally:
            for s in held:
                s.close()
