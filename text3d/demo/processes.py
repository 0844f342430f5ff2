"""Child processes of a local subnet: start with logs to files, watch, always clean up.

Each child runs in its own session (process group), so a Ctrl-C in the terminal
reaches only the orchestrator, which then stops every child in order: SIGTERM to the
group, SIGKILL after a grace period. ``ProcessGroup`` is a context manager; leaving it,
normally or by an exception, stops everything it started.
"""

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Mapping, Sequence

__all__ = ["ChildProcess", "ProcessGroup", "ChildFailed", "wait_until"]


class ChildFailed(RuntimeError):
    """A child exited early or a wait timed out; the message names the log to read."""


@dataclass
class ChildProcess:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen
    log_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n_lines: int = 20) -> str:
        """The last ``n_lines`` of the child's log, also after ``stop`` closed it."""
        if not self.log_file.closed:
            self.log_file.flush()
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n_lines:])

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM the child's process group, SIGKILL it after ``grace_s``; returns the exit code."""
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(timeout=grace_s)
        if not self.log_file.closed:
            self.log_file.close()
        return self.popen.returncode

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.popen.pid, signum)  # the child leads its own session
        except ProcessLookupError:
            pass


class ProcessGroup:
    """Children started by one orchestrator; stopping is idempotent and reverse-ordered."""

    def __init__(self, logs_dir: Path, *, cwd: Path | None = None, env: Mapping[str, str] | None = None):
        self.logs_dir = Path(logs_dir)
        self.cwd = cwd
        self.env = dict(env) if env is not None else dict(os.environ)
        self.children: list[ChildProcess] = []

    def start(self, name: str, argv: Sequence[str]) -> ChildProcess:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        log_file = open(log_path, "ab")
        log_file.write(f"$ {' '.join(argv)}\n".encode())
        log_file.flush()
        popen = subprocess.Popen(
            list(argv),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.cwd,
            env=self.env,
            start_new_session=True,
        )
        child = ChildProcess(name, list(argv), log_path, popen, log_file)
        self.children.append(child)
        return child

    def check_alive(self, *exempt: ChildProcess) -> None:
        """Raise ``ChildFailed`` if any child (other than ``exempt``) has exited."""
        for child in self.children:
            if child not in exempt and not child.running():
                raise ChildFailed(
                    f"{child.name} exited with code {child.popen.returncode}; see {child.log_path}:\n{child.log_tail()}"
                )

    def stop(self, child: ChildProcess, grace_s: float = 10.0) -> int | None:
        code = child.stop(grace_s)
        self.children.remove(child)
        return code

    def stop_all(self, grace_s: float = 10.0) -> None:
        for child in reversed(list(self.children)):
            child.stop(grace_s)
        self.children.clear()

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    poll_s: float = 0.25,
    check: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll ``condition`` until true; ``check`` runs each round (e.g. ``group.check_alive``).

    Raises ``ChildFailed`` naming ``what`` after ``timeout_s``.
    """
    deadline = clock() + timeout_s
    while True:
        if check is not None:
            check()
        if condition():
            return
        if clock() >= deadline:
            raise ChildFailed(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)
