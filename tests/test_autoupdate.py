"""Auto-update: off by default; pull, reinstall and restart only when ``spec_version`` changes.

Rules pinned here, on real git repositories in tmp_path (an "upstream" bare repository, the
neuron's checkout cloned from it, and a developer's clone that pushes releases):
- nothing new upstream: nothing happens;
- new commits with the same spec_version: not pulled, no restart;
- a new spec_version: fast-forward pulled, reinstalled, restarted, in that order;
- local changes or a diverged branch are never overwritten; a failed reinstall does not
  restart; a checkout without an upstream says so;
- ``--autoupdate`` is off unless given, and ``start_autoupdate`` starts nothing then.
"""

import subprocess
import threading
from pathlib import Path

import pytest

from text3d.ops.autoupdate import AutoUpdater, spec_version_of, start_autoupdate
from text3d.settings import load_settings


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@example.invalid", "HOME": str(cwd), "PATH": "/usr/bin:/bin"})
    return done.stdout.strip()


def release(clone: Path, spec: int, note: str) -> None:
    (clone / "text3d" / "protocol").mkdir(parents=True, exist_ok=True)
    (clone / "text3d" / "protocol" / "version.py").write_text(f'__version__ = "0.1.{spec}"\nSPEC_VERSION = {spec}\n')
    (clone / "NOTES").write_text(note)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", note)
    git(clone, "push", "-q", "origin", "HEAD:main")


@pytest.fixture
def repos(tmp_path):
    upstream = tmp_path / "upstream.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(upstream))
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(upstream), str(dev))
    git(dev, "checkout", "-q", "-b", "main")
    release(dev, 10, "release 10")
    node = tmp_path / "node"
    git(tmp_path, "clone", "-q", "-b", "main", str(upstream), str(node))
    return dev, node


class Recorder:
    def __init__(self, tmp_path: Path) -> None:
        self.marker = tmp_path / "reinstalled"
        self.restarts = 0

    def reinstall(self, ok: bool = True) -> list[str]:
        return ["bash", "-c", f"echo done >> {self.marker}" + ("" if ok else "; echo 'no matching dist' >&2; exit 1")]

    def restart(self) -> None:
        self.restarts += 1


def updater(node: Path, recorder: Recorder, ok: bool = True) -> AutoUpdater:
    return AutoUpdater(node, reinstall=recorder.reinstall(ok), restart=recorder.restart)


def test_nothing_new_means_nothing_happens(repos, tmp_path):
    _, node = repos
    recorder = Recorder(tmp_path)
    result = updater(node, recorder).check_and_act()
    assert result.action == "up-to-date" and recorder.restarts == 0 and not recorder.marker.exists()


def test_new_commits_with_the_same_spec_version_are_not_pulled(repos, tmp_path):
    dev, node = repos
    release(dev, 10, "a docs fix")
    before = git(node, "rev-parse", "HEAD")
    recorder = Recorder(tmp_path)
    result = updater(node, recorder).check_and_act()
    assert result.action == "same-spec" and git(node, "rev-parse", "HEAD") == before
    assert recorder.restarts == 0 and not recorder.marker.exists()


def test_a_new_spec_version_is_pulled_reinstalled_and_restarted(repos, tmp_path):
    dev, node = repos
    release(dev, 11, "release 11")
    recorder = Recorder(tmp_path)
    up = updater(node, recorder)
    assert up.current_spec == 10
    result = up.check_and_act()
    assert (result.action, result.old_spec, result.new_spec) == ("updated", 10, 11)
    assert git(node, "rev-parse", "HEAD") == git(dev, "rev-parse", "HEAD")
    assert spec_version_of((node / "text3d" / "protocol" / "version.py").read_text()) == 11
    assert recorder.marker.read_text() == "done\n" and recorder.restarts == 1
    assert up.check_and_act().action == "up-to-date" and recorder.restarts == 1  # once


def test_local_changes_and_diverged_branches_are_never_overwritten(repos, tmp_path):
    dev, node = repos
    release(dev, 11, "release 11")
    recorder = Recorder(tmp_path)
    (node / "NOTES").write_text("my local edit")
    result = updater(node, recorder).check_and_act()
    assert result.action == "skipped" and "local changes" in result.detail
    assert (node / "NOTES").read_text() == "my local edit" and recorder.restarts == 0
    git(node, "checkout", "-q", "--", "NOTES")
    (node / "LOCAL").write_text("a local commit")
    git(node, "add", "LOCAL")
    git(node, "commit", "-q", "-m", "local")
    result = updater(node, recorder).check_and_act()
    assert result.action == "failed" and "fast-forward" in result.detail and recorder.restarts == 0
    assert (node / "LOCAL").exists()


def test_a_failed_reinstall_does_not_restart(repos, tmp_path):
    dev, node = repos
    release(dev, 11, "release 11")
    recorder = Recorder(tmp_path)
    result = updater(node, recorder, ok=False).check_and_act()
    assert result.action == "failed" and "reinstalling failed (no matching dist)" in result.detail
    assert recorder.restarts == 0


def test_no_upstream_is_said_and_skipped(tmp_path):
    lone = tmp_path / "lone"
    lone.mkdir()
    git(lone, "init", "-q", "-b", "main")
    release_dir = lone / "text3d" / "protocol"
    release_dir.mkdir(parents=True)
    (release_dir / "version.py").write_text("SPEC_VERSION = 3\n")
    result = AutoUpdater(lone, reinstall=["true"], restart=lambda: None).check_once()
    assert result.action == "skipped" and "no upstream" in result.detail


def test_off_by_default():
    assert load_settings("miner", []).autoupdate.enabled is False
    assert load_settings("validator", []).autoupdate.enabled is False
    assert start_autoupdate(load_settings("validator", []).autoupdate) is None
    assert load_settings("validator", ["--autoupdate"]).autoupdate.enabled is True


def test_the_loop_stops_when_asked(repos, tmp_path):
    _, node = repos
    up = updater(node, Recorder(tmp_path))
    checks = []
    check_and_act = up.check_and_act
    up.check_and_act = lambda: checks.append(1) or check_and_act()
    stop = threading.Event()
    stop.set()
    up.run_forever(0.01, stop)  # asked before it started: returns without a check
    assert checks == []

    def check_then_stop():
        checks.append(1)
        stop.set()
        return check_and_act()

    up.check_and_act = check_then_stop
    stop.clear()
    up.run_forever(0.01, stop)  # asked during its first check: that check is the last
    assert checks == [1]


def test_spec_version_is_read_from_the_source():
    assert spec_version_of('__version__ = "1"\nSPEC_VERSION = 42\n') == 42
    assert spec_version_of("SPEC_VERSION: int = 7\n") == 7
    assert spec_version_of("SPEC_VERSION = compute()\n") is None and spec_version_of("not python (") is None
    assert spec_version_of("def f(v):\n    return 1000 * v\n\nSPEC_VERSION = f(3)\n") == 3000  # computed
    assert spec_version_of("__version__ = '1'\n") is None
    here = Path(__file__).resolve().parents[1] / "text3d" / "protocol" / "version.py"
    from text3d.protocol.version import SPEC_VERSION

    assert spec_version_of(here.read_text()) == SPEC_VERSION
