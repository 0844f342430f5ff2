"""How a long-running process hears that it should stop, and makes sure it does.

``stop_on_signals()`` returns an ``asyncio.Event`` set by SIGINT (Ctrl-C) or SIGTERM (``pm2
stop``, ``systemctl stop``, a container runtime). The miner, the validator and the generation
server all wait on such an event instead of dying in the signal: the validator finishes the
step in flight and keeps its saved state, the servers stop accepting and drain. One home, so
the three neurons cannot drift apart in which signals they honour.

``exit_if_stuck(seconds)`` is for a command that has handled Ctrl-C and written everything: if
the interpreter's shutdown (joining library threads, atexit handlers) has not ended the process
``seconds`` later, it prints where each thread is and ends the process with status 0. Ctrl-C
must stop the command even when a library's thread will not let go.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import sys
import threading
import time

__all__ = ["STOP_SIGNALS", "stop_on_signals", "exit_if_stuck"]

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


def exit_if_stuck(seconds: float, *, command: str, status: int = 0) -> threading.Thread:
    """Start a daemon guard that ends the process ``seconds`` from now unless it has ended itself.

    On firing it writes one line naming ``command`` and every thread's stack to stderr (what a bug
    report needs), flushes stdout, and calls ``os._exit(status)``: no further cleanup runs, so call
    it only once the command's output is complete. A daemon thread keeps running while the
    interpreter joins other threads and runs atexit handlers, which is where a shutdown hangs.
    """

    def guard() -> None:
        time.sleep(seconds)
        try:
            sys.stdout.flush()
            print(f"{command}: still shutting down {seconds:.0f} s after Ctrl-C; stopping now. Where each thread "
                  "was (please report it):", file=sys.stderr, flush=True)
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            sys.stderr.flush()
        finally:
            os._exit(status)

    thread = threading.Thread(target=guard, name="exit-if-stuck", daemon=True)
    thread.start()
    return thread
