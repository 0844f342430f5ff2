"""The validator's step logic: who gets scored what, and when nobody's score may move.

Pinned rules: a scored answer moves the uid's moving average toward its score; missing,
late, empty and undecodable answers count 0; a ``ValidatorFault`` (our captioner or
models failed) or an unreachable chain changes nobody's average; a hotkey that changed
behind a uid loses that uid's history; weights are set at the chain's cadence with the
subnet's ``version_key``; state resumes after a restart; each step leaves a report
folder; one broken step never ends the loop.

The chain and the network are faked (the edges); the RewardModel is a stand-in that
returns real ``RewardReport`` objects, so the scoring itself is not under test here.
"""

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path

import bittensor as bt
import numpy as np
import pytest
import trimesh
from bittensor.core.synapse import TerminalInfo
from PIL import Image

from neurons.config import ValidatorConfig
from neurons.prompts import PromptSampler
from neurons.reports import StepReports
from neurons.state import ValidatorState
from neurons.chain.devnet import DevnetChain
from neurons.validator import Validator, main
from protocol import TextTo3D
from protocol.version import SPEC_VERSION
from reward.errors import CaptionerUnavailable, ChainUnavailable
from reward.report import RewardReport

REPO = Path(__file__).resolve().parent.parent
OWN_HOTKEY = "validator-hotkey"


def coloured_box(extent=1.0):
    mesh = trimesh.creation.box(extents=(extent, extent, extent))
    mesh.visual.vertex_colors = np.full((len(mesh.vertices), 4), 200, dtype=np.uint8)
    return mesh


PAYLOAD = TextTo3D().attach_mesh(coloured_box()).mesh_b64


class FakeWallet:
    class hotkey:  # noqa: N801 -- mirrors bt.Wallet.hotkey.ss58_address
        ss58_address = OWN_HOTKEY


class FakeChain:
    """The chain edge: a hand-built metagraph, a settable block, recorded set_weights calls."""

    netuid = 1

    def __init__(self, hotkeys, rate_limit=10):
        self.hotkeys = list(hotkeys)
        self.block_now = 100
        self.rate_limit = rate_limit
        self.weight_calls = []
        self.down = False

    def metagraph(self):
        if self.down:
            raise ChainUnavailable("devnet database is locked")
        graph = bt.Metagraph(1, network="local", sync=False)
        n = len(self.hotkeys)
        graph.n, graph.uids = np.array(n), np.arange(n)
        graph.stake = np.zeros(n, dtype=np.float32)
        graph.validator_permit = np.array([h == OWN_HOTKEY for h in self.hotkeys])
        graph.axons = [
            bt.AxonInfo(version=1, ip="0.0.0.0" if h.startswith("idle") else "127.0.0.1", port=9000 + i, ip_type=4,
                        hotkey=h, coldkey="c")
            for i, h in enumerate(self.hotkeys)
        ]  # fmt: skip
        return graph

    def block(self):
        return self.block_now

    def weights_rate_limit(self):
        return self.rate_limit

    def set_weights(self, wallet, uids, weights, version_key):
        self.weight_calls.append((list(uids), list(weights), version_key))
        return True, "ok"


class FakeDendrite:
    """The network edge: each hotkey's behaviour decides its response."""

    def __init__(self, behaviour):
        self.behaviour = behaviour  # hotkey -> ok | timeout | late | empty | garbage | crash
        self.queried = []

    async def forward(self, axons, synapse, timeout, deserialize):
        responses = []
        for axon in axons:
            kind = self.behaviour.get(axon.hotkey, "ok")
            if kind == "crash":
                raise RuntimeError("aiohttp exploded")
            self.queried.append(axon.hotkey)
            response = synapse.model_copy()
            response.dendrite = TerminalInfo(status_code=200, process_time=0.5)
            if kind == "timeout":
                response.dendrite.status_code, response.dendrite.status_message = 408, "Timeout"
            elif kind == "late":
                response.dendrite.process_time = timeout + 1.0
                response.mesh_b64 = PAYLOAD
            elif kind == "garbage":
                response.mesh_b64, response.mesh_format = "RFJBQ08gbm90IHJlYWxseQ==", "draco"
            elif kind == "ok":
                response.mesh_b64, response.mesh_format, response.generation_time_s = PAYLOAD, "draco", 0.2
            responses.append(response)
        return responses


class StubRewardModel:
    """Scores every mesh ``score``; raises ``fault`` instead when set."""

    def __init__(self, score=0.8, fault=None):
        self.score, self.fault, self.calls = score, fault, 0

    def score_batch(self, meshes, prompts):
        self.calls += 1
        if self.fault is not None:
            raise self.fault
        image = Image.new("RGB", (8, 8), (255, 0, 0))
        return [
            RewardReport(score=self.score, prompt=p, metric="cosine", aggregation="mean").attach_images([image])
            for p in prompts
        ]


def make_validator(tmp_path, hotkeys, behaviour=None, reward=None, state=None, reports=False, **config):
    chain = FakeChain(hotkeys)
    cfg = ValidatorConfig(sample_size=16, alpha=0.5, state_path=tmp_path / "state.json", step_interval_s=0, **config)
    rng = random.Random(0)
    validator = Validator(
        cfg,
        wallet=FakeWallet(),
        chain=chain,
        dendrite=FakeDendrite(behaviour or {}),
        reward_model=reward or StubRewardModel(),
        state=state or ValidatorState(),
        sampler=PromptSampler(["a red chair", "a blue mug"], rng),
        rng=rng,
        reports=StepReports(tmp_path / "reports", 50.0) if reports else None,
    )
    return validator, chain


def step(validator):
    return asyncio.run(validator.step())


HOTKEYS = [OWN_HOTKEY, "good", "slow", "late", "empty", "garbage", "idle-miner"]
BEHAVIOUR = {"slow": "timeout", "late": "late", "empty": "empty", "garbage": "garbage"}


def test_queries_serving_miners_but_not_itself(tmp_path):
    validator, _ = make_validator(tmp_path, HOTKEYS, BEHAVIOUR)
    result = step(validator)
    assert sorted(o.hotkey for o in result.outcomes) == ["empty", "garbage", "good", "late", "slow"]


def test_moving_average_of_a_good_miner(tmp_path):
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "good"])
    step(validator)
    assert validator.state.averages[1] == pytest.approx(0.4)
    step(validator)
    assert validator.state.averages[1] == pytest.approx(0.6)


def test_missing_late_empty_and_invalid_answers_score_zero(tmp_path):
    state = ValidatorState(averages={uid: 1.0 for uid in range(1, 6)}, hotkeys=dict(enumerate(HOTKEYS)))
    validator, _ = make_validator(tmp_path, HOTKEYS, BEHAVIOUR, state=state)
    result = step(validator)
    status = {o.hotkey: o.status for o in result.outcomes}
    assert status == {"good": "ok", "slow": "no_response", "late": "late", "empty": "empty", "garbage": "invalid"}
    assert validator.state.averages[1] == pytest.approx(0.9)  # 0.5 * 0.8 + 0.5 * 1.0
    for uid in range(2, 6):
        assert validator.state.averages[uid] == pytest.approx(0.5)  # 0.5 * 0 + 0.5 * 1.0


def test_validator_fault_updates_nobody(tmp_path):
    state = ValidatorState(averages={1: 0.7, 2: 0.3}, hotkeys=dict(enumerate(HOTKEYS)))
    reward = StubRewardModel(fault=CaptionerUnavailable("llama-server at 127.0.0.1:8080 is down"))
    validator, _ = make_validator(tmp_path, HOTKEYS, BEHAVIOUR, reward=reward, state=state)
    result = step(validator)
    assert not result.updated and "CaptionerUnavailable" in result.fault
    assert validator.state.averages == {1: 0.7, 2: 0.3}  # not even the timed-out miner moves
    assert validator.state.step == 1  # the step still counts, and is saved
    assert ValidatorState.load(tmp_path / "state.json").averages == {1: 0.7, 2: 0.3}


def test_unreachable_chain_skips_the_step(tmp_path):
    state = ValidatorState(averages={1: 0.7}, hotkeys=dict(enumerate(HOTKEYS)))
    validator, chain = make_validator(tmp_path, HOTKEYS, state=state)
    chain.down = True
    result = step(validator)
    assert not result.updated and "ChainUnavailable" in result.fault
    assert validator.state.averages == {1: 0.7}


def test_changed_hotkey_loses_its_history(tmp_path):
    state = ValidatorState(averages={1: 0.9}, hotkeys={0: OWN_HOTKEY, 1: "old-owner"})
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "new-owner"], state=state)
    step(validator)
    assert validator.state.hotkeys[1] == "new-owner"
    assert validator.state.averages[1] == pytest.approx(0.4)  # 0.5 * 0.8 from zero, not from 0.9


def test_weights_follow_the_rate_limit_and_carry_the_spec_version(tmp_path):
    validator, chain = make_validator(tmp_path, [OWN_HOTKEY, "good", "slow"], {"slow": "timeout"})
    first = step(validator)
    assert first.weights.startswith("set at block 100")
    uids, weights, version_key = chain.weight_calls[0]
    assert version_key == SPEC_VERSION
    assert dict(zip(uids, weights)) == {1: pytest.approx(1.0)}
    chain.block_now = 105
    assert step(validator).weights is None  # within weights_rate_limit = 10 blocks
    chain.block_now = 110
    step(validator)
    assert len(chain.weight_calls) == 2 and validator.state.last_weight_block == 110


def test_no_weights_before_anyone_scored(tmp_path):
    """No evidence is no ranking: uniform weights would pay garbage miners and ourselves."""
    validator, chain = make_validator(tmp_path, [OWN_HOTKEY, "slow", "idle-miner"], {"slow": "timeout"})
    assert step(validator).weights.startswith("skipped")
    assert chain.weight_calls == [] and validator.state.last_weight_block is None


def test_restart_resumes_from_saved_state(tmp_path):
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "good"])
    step(validator)
    step(validator)
    resumed, chain = make_validator(tmp_path, [OWN_HOTKEY, "good"], state=ValidatorState.load(tmp_path / "state.json"))
    assert resumed.state.step == 2 and resumed.state.last_weight_block == 100
    assert step(resumed).step == 3
    assert resumed.state.averages[1] == pytest.approx(0.7)  # continued: 0.5 * 0.8 + 0.5 * 0.6
    assert chain.weight_calls == []  # rate limit remembered across the restart


def test_each_step_writes_a_report_folder(tmp_path):
    validator, _ = make_validator(tmp_path, HOTKEYS, BEHAVIOUR, reports=True)
    step(validator)
    folder = tmp_path / "reports" / "step_000001"
    summary = json.loads((folder / "step.json").read_text())
    assert set(summary["timing_s"]) >= {"network_s", "decode_s", "render_score_s", "total_s"}
    good = next(m for m in summary["miners"] if m["hotkey"] == "good")
    assert good["score"] == pytest.approx(0.8) and good["report"]["score"] == pytest.approx(0.8)
    assert summary["task"]["prompt"] in ("a red chair", "a blue mug")
    assert (folder / "index.html").exists()
    assert list(folder.rglob("*.png"))


def test_report_folder_is_capped_oldest_first(tmp_path):
    reports = StepReports(tmp_path, max_mb=0.25)
    for step_no in range(1, 6):
        folder = reports.write(step_no, {"step": step_no})
        (folder / "blob.bin").write_bytes(b"x" * 100_000)
    reports.prune()
    assert [p.name for p in reports.step_folders()] == ["step_000004", "step_000005"]
    tiny = StepReports(tmp_path, max_mb=0.0)
    tiny.write(6, {"step": 6})  # the newest step is kept even when alone over the cap
    assert [p.name for p in tiny.step_folders()] == ["step_000006"]


def test_a_broken_step_does_not_end_the_loop(tmp_path):
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "good", "bad"], {"bad": "crash"}, max_steps=3)
    assert asyncio.run(validator.run()) == 3
    assert validator.state.step == 0  # every step crashed in the network layer ...
    validator.dendrite.behaviour = {}
    assert asyncio.run(validator.run()) == 3  # ... and the loop kept going once it recovered
    assert validator.state.step == 3


def test_runs_as_a_module_and_refuses_unknown_flags():
    done = subprocess.run([sys.executable, "-m", "neurons.validator", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--validator.sample_size" in done.stdout and "--captioner" in done.stdout
    with pytest.raises(SystemExit) as exit_info:
        main(["--validator.bogus", "1"])
    assert exit_info.value.code == 2


def test_unregistered_hotkey_exits_2_with_one_sentence(tmp_path, capsys):
    DevnetChain.create(tmp_path / "devnet.db", 2)
    wallet = bt.Wallet(name="v", hotkey="default", path=str(tmp_path / "wallets"))
    wallet.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=False, suppress=True)
    argv = ["--netuid", "2", "--subtensor.network", "devnet", "--devnet.db", str(tmp_path / "devnet.db"),
            "--wallet.name", "v", "--wallet.path", str(tmp_path / "wallets"), "--models", "tiny"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "is not registered on netuid 2" in err and len(err.splitlines()) == 1


def test_validator_flags_become_a_typed_section(tmp_path):
    from neurons.config import ConfigError, neuron_config, parse_bt_config, validator_config

    config = parse_bt_config("validator", ["--captioner", "http://127.0.0.1:8080", "--validator.sample_size", "32",
                                           "--validator.state_path", str(tmp_path / "s.json")])  # fmt: skip
    section = validator_config(config, neuron_config(config))
    assert section.captioner == "http://127.0.0.1:8080" and section.sample_size == 32
    assert section.state_path == tmp_path / "s.json" and section.max_steps == 0
    assert validator_config(parse_bt_config("validator", []), neuron_config(config)).captioner is None
    with pytest.raises(ConfigError, match="alpha"):
        validator_config(parse_bt_config("validator", ["--validator.alpha", "0"]), neuron_config(config))
