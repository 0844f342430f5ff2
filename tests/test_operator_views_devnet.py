"""What an operator sees of a running subnet, on the devnet with real processes: metrics, reports, status.

One devnet run (two miners and a validator as separate processes, tiny models, 127.0.0.1) pins:
- ``/metrics`` of a running validator, read with Prometheus' own text parser, has a step-duration
  histogram counting the steps it ran, every phase, each queried miner's score and average by uid
  (the same numbers as its saved state), and the answers by status;
- ``/metrics`` of a running miner counts the validator's answered requests (status 200, caller
  class validator) and times generation;
- the validator's logs carry one line per miner per step (uid, hotkey prefix, status, score,
  seconds, bytes); the reports folder has an index listing the steps and one page per miner;
- ``text3d miner status`` with the miner's flags and its log folder shows its uid, the validator
  that asked it (by uid) and its answers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from text3d.common.paths import source_root
from text3d.demo import LocalSubnet, ProcessGroup, wait_until
from text3d.ops.net import free_port
from tests.devnet_miner import child_env

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

MINERS = ("miner1", "miner2")


def scrape(port: int) -> dict[str, list]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10.0, trust_env=False).text
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def one(samples: dict, name: str, **labels: str) -> float:
    found = [value for got, value in samples.get(name, []) if all(got.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


def test_metrics_reports_and_miner_status_of_a_running_subnet(tmp_path):
    subnet = LocalSubnet.create(tmp_path, miners=MINERS, block_time_s=1.0, weights_rate_limit=2)
    ports = {name: free_port() for name in (*MINERS, "validator")}
    metrics = {name: free_port() for name in ports}
    logs = tmp_path / "neuron-logs"
    with ProcessGroup(subnet.logs_dir, cwd=source_root(), env=child_env()) as group:
        for name in MINERS:
            group.start(name, subnet.miner_argv(name, ports[name], extra=[
                "--metrics.port", str(metrics[name]), "--logging.dir", str(logs)]))
        wait_until(lambda: subnet.serving(MINERS), timeout_s=300, what="miners serving", check=group.check_alive)
        group.start("validator", subnet.validator_argv(max_steps=0, step_interval_s=0.5, extra=[
            "--metrics.port", str(metrics["validator"]), "--logging.dir", str(logs)]))
        wait_until(lambda: subnet.saved_state()["step"] >= 2, timeout_s=300, what="two validator steps",
                   check=group.check_alive, poll_s=0.3)
        validator = scrape(metrics["validator"])
        miner = scrape(metrics["miner1"])
        state = subnet.saved_state()

    steps = one(validator, "text3d_validator_step")
    assert steps >= 2
    assert one(validator, "text3d_validator_step_phase_seconds_count", phase="total") >= 2
    for phase in ("sync", "select", "query", "decode", "score", "update", "weights", "save"):
        assert one(validator, "text3d_validator_step_phase_seconds_count", phase=phase) >= 2, phase
    assert one(validator, "text3d_validator_steps_total", result="scored") >= 2
    for name in MINERS:
        uid = str(subnet.uids[name])
        score = one(validator, "text3d_validator_miner_score", uid=uid)
        average = one(validator, "text3d_validator_miner_average", uid=uid)
        assert 0.0 < score <= 1.0 and 0.0 < average <= 1.0
        if one(validator, "text3d_validator_step") == state["step"]:  # the scrape and the state saw the same step
            assert average == pytest.approx(state["averages"][uid], abs=1e-9)
    assert one(validator, "text3d_validator_answers_total", status="ok") >= 4
    assert one(validator, "text3d_validator_canary_ok") == 1.0

    answered = one(miner, "text3d_miner_requests_total", status="200", caller_class="validator")
    assert answered >= 2
    assert one(miner, "text3d_miner_generation_seconds_count") == answered
    assert one(miner, "text3d_miner_metagraph_synced") == 1.0

    lines = (logs / "validator.log").read_text()
    for name in MINERS:
        hotkey = subnet.hotkey_of(name)[:8]
        assert re.search(rf"step 1 uid {subnet.uids[name]} {hotkey}: ok score 0\.\d+ avg 0\.\d+, \d+\.\d+s, [\d,]+ bytes",
                         lines), lines[-3000:]

    index = (subnet.reports_dir / "index.html").read_text()
    assert 'href="step_000001/index.html"' in index and 'href="step_000002/index.html"' in index
    for name in MINERS:
        assert (subnet.reports_dir / "miners" / f"uid_{subnet.uids[name]:03d}.html").is_file()

    done = subprocess.run(
        [sys.executable, "-m", "text3d.cli.main", "miner", "status", "--netuid", "1", "--subtensor.network", "devnet",
         "--devnet.db", str(subnet.chain.db_path), "--wallet.name", "miner1", "--wallet.path", str(subnet.wallets_dir),
         "--logging.dir", str(logs), "--json"],
        cwd=source_root(), env=child_env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["uid"] == subnet.uids["miner1"] and status["by_status"].get("200", 0) >= 2
    assert status["callers"][0]["uid"] == subnet.uids["validator"] and status["callers"][0]["validator_permit"]
    assert status["generation_s"]["n"] >= 2
