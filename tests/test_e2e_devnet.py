"""End to end on the devnet: real processes, real Axon/Dendrite signing, tiny models.

Rules pinned here:
- honest miners earn non-zero weight on chain; a miner answering garbage bytes earns 0;
- a validator killed mid-run (SIGKILL, no goodbye) resumes from its saved moving
  averages: the first step after the restart folds into the old averages exactly;
- SIGTERM stops a validator and the miners with exit 0, the finished steps saved;
- ``text3d demo --models tiny`` runs the whole show and prints a leaderboard and the
  path of an HTML page of the last step, the gateway's address and a demo key.
"""

import json
import math
import os
import re
import signal
import subprocess
import sys

import pytest

from text3d.demo import LocalSubnet, ProcessGroup, wait_until
from text3d.ops.net import free_port
from text3d.common.paths import source_root

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

HONEST = ("miner1", "miner2")
GARBAGE = "garbage"
ALPHA = 0.5


def child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source_root()), env.get("PYTHONPATH", "")) if p)
    return env


def step_summary(subnet: LocalSubnet, step: int) -> dict:
    return json.loads((subnet.reports_dir / f"step_{step:06d}" / "step.json").read_text())


def test_honest_miners_earn_weight_garbage_earns_nothing_and_state_survives_a_kill(tmp_path):
    subnet = LocalSubnet.create(tmp_path, miners=(*HONEST, GARBAGE), block_time_s=1.0, weights_rate_limit=2)
    validator_flags = dict(captioner="none", step_interval_s=0.5, extra=["--validator.alpha", str(ALPHA)])
    with ProcessGroup(subnet.logs_dir, cwd=source_root(), env=child_env()) as group:
        miners = {name: group.start(name, subnet.miner_argv(name, free_port())) for name in HONEST}
        group.start(GARBAGE, [
            sys.executable, str(source_root() / "tests" / "garbage_miner.py"), "--devnet.db", str(subnet.chain.db_path),
            "--wallet.name", GARBAGE, "--wallet.path", str(subnet.wallets_dir), "--axon.port", str(free_port()),
        ])
        wait_until(lambda: subnet.serving((*HONEST, GARBAGE)), timeout_s=240, what="miners serving",
                   check=group.check_alive)

        # Phase 1: run until two steps are saved and weights from real scores are on chain, then kill -9.
        validator = group.start("validator", subnet.validator_argv(max_steps=0, **validator_flags))
        evidence = subnet.weights_after_evidence("validator")
        wait_until(lambda: subnet.saved_state()["step"] >= 2 and evidence(), timeout_s=300,
                   what="two validator steps and weights from scores on chain", check=group.check_alive, poll_s=0.2)
        os.killpg(validator.pid, signal.SIGKILL)
        validator.popen.wait(timeout=30)
        group.stop(validator)

        weights = subnet.weights_of("validator")
        for name in HONEST:
            assert weights.get(subnet.uids[name], 0.0) > 0.0, (name, weights)
        assert weights.get(subnet.uids[GARBAGE], 0.0) == 0.0, weights
        assert math.isclose(sum(weights.values()), 1.0, rel_tol=1e-6)

        before = subnet.saved_state()
        for name in HONEST:
            assert before["averages"][str(subnet.uids[name])] > 0.0
        assert before["averages"].get(str(subnet.uids[GARBAGE]), 0.0) == 0.0

        # Phase 2: restart for one step; it must continue from the saved averages.
        restarted = group.start("validator-restarted", subnet.validator_argv(max_steps=1, **validator_flags))
        wait_until(lambda: not restarted.running(), timeout_s=240, what="the restarted validator's step",
                   check=lambda: group.check_alive(restarted))
        assert restarted.popen.returncode == 0, restarted.log_tail()
        group.stop(restarted)
        after = subnet.saved_state()

        # Phase 3: SIGTERM (pm2 stop, systemctl stop) ends a validator and the miners cleanly: exit 0,
        # and the validator keeps the state of every step it finished.
        stopped = group.start("validator-sigterm", subnet.validator_argv(max_steps=0, **validator_flags))
        wait_until(lambda: subnet.saved_state()["step"] > after["step"], timeout_s=240,
                   what="a step of the third validator", check=group.check_alive)
        assert group.stop(stopped, grace_s=120) == 0, stopped.log_tail()
        assert subnet.saved_state()["step"] > after["step"]
        for name, miner in miners.items():
            assert group.stop(miner, grace_s=60) == 0, (name, miner.log_tail())

    assert after["step"] == before["step"] + 1
    summary = step_summary(subnet, after["step"])
    assert summary["updated"], summary
    garbage = [m for m in summary["miners"] if m["uid"] == subnet.uids[GARBAGE]]
    assert garbage and garbage[0]["status"] == "invalid", garbage
    for miner in summary["miners"]:
        uid = str(miner["uid"])
        score = miner["score"] if miner["status"] == "ok" else 0.0
        expected = ALPHA * score + (1 - ALPHA) * before["averages"].get(uid, 0.0)
        assert after["averages"][uid] == pytest.approx(expected, abs=1e-9), (uid, miner, before, after)


def test_text3d_demo_tiny_end_to_end(tmp_path):
    workdir = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "text3d.cli.main", "demo", "--models", "tiny", "--workdir", str(workdir), "--validator-steps", "2"],
        cwd=source_root(), env=dict(child_env(), COLUMNS="200"), capture_output=True, text=True, timeout=540,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    out = done.stdout
    assert "leaderboard" in out and "moving avg score" in out
    for name in ("validator", "miner1", "miner2"):
        assert name in out
    page = workdir / "leaderboard.html"
    assert f"leaderboard page: {page}" in out.replace("\n", "")
    text = page.read_text()
    assert "miner1" in text and "step_" in text  # links the last step's report
    reports = sorted((workdir / "validator" / "reports").glob("step_*/index.html"))
    assert reports and str(reports[-1]) in out.replace("\n", "")
    step = json.loads((reports[-1].parent / "step.json").read_text())
    scored = [_as_dict(m["report"]) for m in step["miners"] if m["report"]]
    assert scored, step  # the last step scored at least one mesh ...
    captions = [view["caption"] for report in scored for view in report["views"]]
    assert captions and all(isinstance(c, str) for c in captions), captions  # ... captioned by the tiny LLaVA server
    lines = out.splitlines()  # the gateway's address and the demo key, each on a line of its own
    assert sum(bool(re.fullmatch(r"gateway: http://127\.0\.0\.1:\d+/", line)) for line in lines) == 1, out
    assert sum(bool(re.fullmatch(r"gateway key: t3d_[A-Za-z0-9_-]{43}", line)) for line in lines) == 1, out
    assert (workdir / "gateway_asset.glb").read_bytes().startswith(b"glTF")  # one prompt went through it
    assert _processes_mentioning(str(workdir)) == [], "the demo left neuron processes behind"


def _as_dict(report) -> dict:
    return json.loads(report) if isinstance(report, str) else report


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line mentions ``text`` (the demo's children run in their own sessions)."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if text in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process.info["pid"])
    return found
