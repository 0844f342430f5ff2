"""How a long-running process hears that it should stop.

``stop_on_signals()`` returns an ``asyncio.Event`` set by SIGINT (Ctrl-C) or SIGTERM (``pm2
stop``, ``systemctl stop``, a container runtime). The miner, the validator and the generation
server all wait on such an event instead of dying in the signal: the validator finishes the
step in flight and keeps its saved state, the servers stop accepting and drain. One home, so
the three neurons cannot drift apart in which signals they honour.
"""

from __future__ import annotations

import asyncio
import signal

__all__ = ["STOP_SIGNALS", "stop_on_signals"]

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> asyncio.Event:
    """An event that ``signals`` set in the running loop (call it from a coroutine).

    Replaces the loop's handlers for those signals for the rest of the loop's life; a second
    signal finds the event already set (the process keeps draining rather than dying halfway).
    Raises ``RuntimeError`` outside a running loop, as ``asyncio.get_running_loop`` does.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    return stop
