"""``stop_on_signals``: SIGINT and SIGTERM set the event the neurons wait on, and do not kill the process;
``exit_if_stuck``: a command that handled Ctrl-C ends even when a thread holds its shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from text3d.common.paths import source_root
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


STUCK_AT_EXIT = """
import sys, threading, time
from text3d.common.stopping import exit_if_stuck

def never_lets_go():  # a library's non-daemon thread: the interpreter joins it at exit, forever
    while True:
        time.sleep(0.05)

threading.Thread(target=never_lets_go).start()
print("scored and written", flush=True)
if sys.argv[1] == "guarded":
    exit_if_stuck(1.0, command="text3d score --watch")
"""


def test_a_shutdown_held_by_a_thread_is_ended_with_where_it_hung(tmp_path):
    script = tmp_path / "stuck.py"
    script.write_text(STUCK_AT_EXIT)
    env = dict(os.environ, PYTHONPATH=str(source_root()))
    unguarded = subprocess.Popen([sys.executable, str(script), "bare"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert unguarded.stdout.readline() == "scored and written\n"
        with pytest.raises(subprocess.TimeoutExpired):  # what the guard is for: this one never ends
            unguarded.wait(timeout=3.0)
    finally:
        unguarded.kill()
        unguarded.wait()
    done = subprocess.run([sys.executable, str(script), "guarded"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0
    assert done.stdout == "scored and written\n"
    assert "text3d score --watch: still shutting down 1 s after Ctrl-C; stopping now" in done.stderr
    assert "never_lets_go" in done.stderr  # the stuck thread's stack, for the bug report
