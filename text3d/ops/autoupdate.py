"""Optional auto-update for the neurons: pull, reinstall and restart when ``spec_version`` changes.

Off by default (``--autoupdate`` turns it on). Every ``--autoupdate.interval_s`` seconds a
daemon thread asks git whether the checkout's upstream branch carries a different
``SPEC_VERSION`` (read from the upstream's ``text3d/protocol/version.py`` without touching the
working tree). Only then does it update, in this order, stopping at the first problem:

1. the working tree must be clean (local edits are never overwritten);
2. ``git merge --ff-only`` to the upstream commit (a diverged branch is left alone);
3. reinstall (``pip install -e <checkout>``: new pins come with the new code);
4. restart: a clean stop (SIGTERM to this process, which the neurons answer by finishing
   the request or step in flight and saving their state), then the same command line
   again (``os.execv`` at exit). Under pm2 or systemd the process manager restarts it
   anyway; ``os.execv`` makes it work without one.

New commits with the same ``spec_version`` are not pulled: a running neuron only changes
for a release. Every decision is one log line. Nothing here runs unless asked.
"""

from __future__ import annotations

import ast
import atexit
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from text3d.common.paths import source_root

__all__ = ["AutoUpdater", "UpdateResult", "spec_version_of", "start_autoupdate", "restart_cleanly"]

log = logging.getLogger("text3d.autoupdate")

VERSION_FILE = "text3d/protocol/version.py"
REPO_ROOT = source_root()  # a git checkout: auto-update pulls there


_EVALUATE = "import sys; namespace = {}; exec(sys.stdin.read(), namespace); print(int(namespace['SPEC_VERSION']))"


def spec_version_of(source: str) -> int | None:
    """``SPEC_VERSION`` of a ``text3d/protocol/version.py`` source (None when it has none).

    A literal ``SPEC_VERSION = N`` is read without running anything; a computed one (the
    project derives it from ``__version__``) is evaluated in a separate, isolated Python
    process -- the same code this neuron would run after the update.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    assigned = False
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "SPEC_VERSION" for t in targets):
            assigned = True
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, int):
                return value.value
    if not assigned:
        return None
    try:
        done = subprocess.run([sys.executable, "-I", "-c", _EVALUATE], input=source, capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired:
        return None
    return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip().isdigit() else None


@dataclass(frozen=True)
class UpdateResult:
    """What one check decided: ``action`` is up-to-date | same-spec | updated | skipped | failed."""

    action: str
    detail: str
    old_spec: int | None = None
    new_spec: int | None = None


class GitError(RuntimeError):
    pass


def restart_cleanly() -> None:
    """Stop this process the way pm2 would (SIGTERM), then run the same command line again at exit."""
    argv = [sys.executable, *sys.argv] if not sys.argv[0].endswith("text3d") else [sys.argv[0], *sys.argv[1:]]

    def again() -> None:
        os.execv(argv[0], argv)

    atexit.register(again)
    os.kill(os.getpid(), signal.SIGTERM)


class AutoUpdater:
    """Checks one git checkout against its upstream; ``check_once`` is the whole policy."""

    def __init__(
        self,
        repo: str | Path = REPO_ROOT,
        *,
        reinstall: Sequence[str] | None = None,
        restart: Callable[[], None] = restart_cleanly,
        git: str = "git",
        timeout_s: float = 300.0,
    ) -> None:
        self.repo = Path(repo)
        self.reinstall = list(reinstall) if reinstall is not None else [sys.executable, "-m", "pip", "install",
                                                                         "--quiet", "-e", str(self.repo)]
        self.restart = restart
        self.git_binary = git
        self.timeout_s = timeout_s
        self.current_spec = spec_version_of((self.repo / VERSION_FILE).read_text())

    def _git(self, *args: str) -> str:
        done = subprocess.run([self.git_binary, "-C", str(self.repo), *args], capture_output=True, text=True,
                              timeout=self.timeout_s, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
        if done.returncode != 0:
            raise GitError(f"git {' '.join(args)}: {(done.stderr or done.stdout).strip().splitlines()[-1:] or ['failed']}")
        return done.stdout.strip()

    def check_once(self) -> UpdateResult:
        try:
            upstream = self._git("rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}")
        except GitError:
            return UpdateResult("skipped", f"{self.repo} has no upstream branch to update from")
        remote = upstream.split("/", 1)[0]
        try:
            self._git("fetch", "--quiet", remote)
            head, target = self._git("rev-parse", "HEAD"), self._git("rev-parse", "@{u}")
            if head == target:
                return UpdateResult("up-to-date", f"at {head[:10]} ({upstream})", self.current_spec, self.current_spec)
            new_spec = spec_version_of(self._git("show", f"@{{u}}:{VERSION_FILE}"))
        except (GitError, subprocess.TimeoutExpired) as exc:
            return UpdateResult("failed", f"could not read {upstream}: {exc}")
        if new_spec is None:
            return UpdateResult("failed", f"{upstream}:{VERSION_FILE} has no integer SPEC_VERSION")
        if new_spec == self.current_spec:
            return UpdateResult("same-spec", f"{upstream} is at {target[:10]} with the same spec_version {new_spec}: "
                                             "not updating", self.current_spec, new_spec)
        try:
            if self._git("status", "--porcelain", "--untracked-files=no"):
                return UpdateResult("skipped", f"spec_version {self.current_spec} -> {new_spec} on {upstream}, but the "
                                               f"checkout has local changes: commit or stash them to update",
                                    self.current_spec, new_spec)
            self._git("merge", "--ff-only", "@{u}")
        except (GitError, subprocess.TimeoutExpired) as exc:
            return UpdateResult("failed", f"could not fast-forward to {upstream} ({exc})", self.current_spec, new_spec)
        installed = subprocess.run(self.reinstall, capture_output=True, text=True, timeout=self.timeout_s * 4,
                                   stdin=subprocess.DEVNULL)
        if installed.returncode != 0:
            tail = (installed.stderr or installed.stdout).strip().splitlines()[-1:] or ["no output"]
            return UpdateResult("failed", f"pulled {target[:10]} but reinstalling failed ({tail[0]}); fix it and "
                                          "restart by hand", self.current_spec, new_spec)
        return UpdateResult("updated", f"spec_version {self.current_spec} -> {new_spec}: pulled {target[:10]}, "
                                       "reinstalled, restarting", self.current_spec, new_spec)

    def check_and_act(self) -> UpdateResult:
        result = self.check_once()
        level = {"updated": logging.WARNING, "failed": logging.ERROR, "skipped": logging.WARNING}.get(
            result.action, logging.DEBUG)
        log.log(level, "auto-update: %s", result.detail)
        if result.action == "updated":
            self.current_spec = result.new_spec
            self.restart()
        return result

    def run_forever(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.wait(interval_s):
            try:
                if self.check_and_act().action == "updated":
                    return
            except Exception as exc:  # the updater must never take a neuron down
                log.error("auto-update check crashed: %s: %s", type(exc).__name__, exc)


def start_autoupdate(settings, *, repo: str | Path = REPO_ROOT) -> threading.Event | None:
    """Start the update thread when ``settings.enabled`` (``--autoupdate``); returns its stop event."""
    if not getattr(settings, "enabled", False):
        return None
    try:
        updater = AutoUpdater(repo)
    except OSError as exc:
        log.error("auto-update is on but %s is not a text3d checkout (%s): it stays off", repo, exc)
        return None
    stop = threading.Event()
    threading.Thread(target=updater.run_forever, args=(settings.interval_s, stop), daemon=True,
                     name="text3d-autoupdate").start()
    log.info("auto-update on: checking %s every %.0f s (spec_version %s)", repo, settings.interval_s,
             updater.current_spec)
    return stop
