"""Child processes with a deadline: the measurement workers and the background jobs (llama.cpp build, gguf write).

Stdlib only. Each child starts in its own session (process group) with its output in a log file,
so a timeout ends it and everything it started (``llama-server``, ninja's compilers) with one
``killpg``, and nothing outlives the run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

__all__ = ["Job", "run_with_timeout", "build_progress"]


class Job:
    """One child process group: ``start``, ``poll``, ``stop``; ``log`` holds its stdout and stderr."""

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path,
                 nice: int = 0) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log = log
        self.nice = nice
        self.process: subprocess.Popen | None = None
        self.started = self.ended = None  # monotonic seconds

    def start(self) -> "Job":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = (["nice", "-n", str(self.nice)] if self.nice else []) + self.argv
        with open(self.log, "wb") as fh:
            self.process = subprocess.Popen(argv, env=self.env, cwd=self.cwd, stdout=fh, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        self.started = time.monotonic()
        return self

    def poll(self) -> int | None:
        code = None if self.process is None else self.process.poll()
        if code is not None and self.ended is None:
            self.ended = time.monotonic()
        return code

    @property
    def running(self) -> bool:
        return self.process is not None and self.poll() is None

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.monotonic()) - self.started

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the whole group, SIGKILL after ``grace_s``; idempotent."""
        if self.process is None or self.process.poll() is not None:
            self.poll()
            return
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        self.poll()

    def tail(self, n_lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n_lines:])
        except OSError:
            return ""


def run_with_timeout(job: Job, timeout_s: float, poll_s: float = 0.2,
                     tick: Callable[[], None] | None = None) -> tuple[int | None, bool]:
    """Start ``job`` and wait; ``(exit code, timed_out)``. A job past ``timeout_s`` is stopped (code None).

    ``tick`` runs at every poll (the orchestrator notes when background jobs end, to time them).
    """
    job.start()
    deadline = time.monotonic() + max(0.0, timeout_s)
    while job.poll() is None:
        if tick is not None:
            tick()
        if time.monotonic() >= deadline:
            job.stop()
            return None, True
        time.sleep(poll_s)
    return job.poll(), False


_PROGRESS = re.compile(rb"\[(\d+)/(\d+)\]")


def build_progress(log: Path) -> tuple[int, int] | None:
    """The last ``[done/total]`` a ninja build printed, or None."""
    try:
        data = log.read_bytes()[-20000:]
    except OSError:
        return None
    found = _PROGRESS.findall(data)
    return (int(found[-1][0]), int(found[-1][1])) if found else None
