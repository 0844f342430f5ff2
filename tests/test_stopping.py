"""``stop_on_signals``: SIGINT and SIGTERM set the event the neurons wait on, and do not kill the process."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from text3d.common.stopping import STOP_SIGNALS, stop_on_signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_sets_the_event_and_the_loop_goes_on(sig):
    async def scenario() -> tuple[bool, bool, str]:
        stop = stop_on_signals()
        before = stop.is_set()
        os.kill(os.getpid(), sig)
        await asyncio.wait_for(stop.wait(), 5.0)
        os.kill(os.getpid(), sig)  # a second signal while draining: still no exception, no exit
        await asyncio.sleep(0.05)
        return before, stop.is_set(), "drained"

    assert asyncio.run(scenario()) == (False, True, "drained")


def test_the_handlers_leave_with_the_loop():
    asyncio.run(_install())
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def _install() -> None:
    stop_on_signals()


def test_only_a_running_loop_can_hear_them():
    with pytest.raises(RuntimeError):
        stop_on_signals()
    assert STOP_SIGNALS == (signal.SIGINT, signal.SIGTERM)
