"""The validator's step logic: who gets scored what, and when nobody's score may move.

Pinned rules: a scored answer moves the uid's moving average toward its score; missing,
late, refused, oversize, malformed and undecodable answers count 0; each miner of a step
gets the same prompt and its own seed; a ``ValidatorFault`` (our captioner or models
failed), a ``MemoryError`` while decoding or scoring, a crash of our scoring code, an
unreachable chain, or *every* miner failing at the transport level (our network) changes
nobody's average; a hotkey that changed behind a uid loses that uid's history; weights
are set at the chain's cadence with the subnet's ``version_key`` and never before any
evidence; state resumes after a restart; each step leaves a report folder, capped in
size; one broken step never ends the loop; ``main`` refuses unknown flags (exit 2) and an
unregistered hotkey (exit 78, one sentence).

The chain and the network are faked (the edges): the chain returns the project's
``Metagraph``, the client returns ``MinerAnswer`` objects carrying real Draco bytes and
real answer headers. The RewardModel is a stand-in that returns real ``RewardReport``
objects, so the scoring itself is not under test here.
"""

import asyncio
import json
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

import text3d.validator.outcomes as outcomes_module  # where judge_answer decodes
from text3d.chain.base import Metagraph, NeuronInfo
from text3d.chain.devnet import DevnetChain
from text3d.validator.client import MinerAnswer
from text3d.validator.prompts import PromptSampler
from text3d.validator.reports import StepReports
from text3d.settings import ValidatorSettings
from text3d.validator.state import ValidatorState
from text3d.validator.engine import Validator
from text3d.validator.main import main
from text3d.protocol.errors import EXIT_CONFIG, EXIT_USAGE
from text3d.protocol.mesh_codec import MeshFormat
from text3d.protocol.version import SPEC_VERSION
from text3d.protocol.wire import MAX_SEED, TextTo3DResponse
from text3d.reward.errors import CaptionerUnavailable, ChainUnavailable
from text3d.reward.reporting.evidence import RewardReport
from tests.loopback import make_wallet, tiny_mesh, tiny_mesh_payload

REPO = Path(__file__).resolve().parent.parent
OWN_HOTKEY = "validator-hotkey"
PAYLOAD = tiny_mesh_payload(MeshFormat.DRACO)
FACES = len(tiny_mesh().faces)
HEADERS = {k.lower(): v for k, v in TextTo3DResponse(payload=PAYLOAD, format="draco", generation_time_s=0.2).headers().items()}
OOM = b"DRACO pretend this decodes into 40 GB"


class FakeWallet:
    class hotkey:  # noqa: N801 -- mirrors bittensor.Wallet.hotkey.ss58_address
        ss58_address = OWN_HOTKEY


class FakeChain:
    """The chain edge: the project Metagraph from hotkeys, a settable block, recorded set_weights calls."""

    netuid = 1

    def __init__(self, hotkeys, rate_limit=10):
        self.hotkeys = list(hotkeys)
        self.block_now = 100
        self.rate_limit = rate_limit
        self.weight_calls = []
        self.down = False
        self.refuse = None

    def metagraph(self):
        if self.down:
            raise ChainUnavailable("devnet database is locked")
        neurons = tuple(
            NeuronInfo(uid=uid, hotkey=h, coldkey=f"cold-{uid}", stake=100.0 if h == OWN_HOTKEY else 0.0,
                       validator_permit=h == OWN_HOTKEY, axon_ip="0.0.0.0" if h.startswith("idle") else "127.0.0.1",
                       axon_port=0 if h.startswith("idle") else 9000 + uid, last_update=0)
            for uid, h in enumerate(self.hotkeys)
        )  # fmt: skip
        return Metagraph(netuid=1, block=self.block_now, neurons=neurons)

    def block(self):
        if self.down:
            raise ChainUnavailable("devnet database is locked")
        return self.block_now

    def weights_rate_limit(self):
        return self.rate_limit

    def set_weights(self, wallet, uids, weights, version_key):
        self.weight_calls.append((list(uids), list(weights), version_key))
        return (False, self.refuse) if self.refuse else (True, "ok")


def answer_for(kind, uid, timeout_s):
    """What a miner behaving as ``kind`` sends back, as ``MinerClient`` would report it."""
    if kind == "ok":
        return MinerAnswer(uid, "ok", http_status=200, elapsed_s=0.5, headers=dict(HEADERS), body=PAYLOAD,
                           bytes_received=len(PAYLOAD))  # fmt: skip
    if kind == "no_response":
        return MinerAnswer(uid, "no_response", "ConnectError: connection refused", elapsed_s=0.01)
    if kind == "late":
        return MinerAnswer(uid, "late", f"no complete answer within {timeout_s:g}s (0 bytes received)", elapsed_s=timeout_s)
    if kind == "trickled":  # headers came, the body did not finish in time: the miner's fault
        return MinerAnswer(uid, "late", "no complete answer within 12s (900 bytes received)", http_status=200,
                           elapsed_s=timeout_s, headers=dict(HEADERS), bytes_received=900)  # fmt: skip
    if kind == "refused":
        return MinerAnswer(uid, "refused", "HTTP 503: the miner's queue is full", http_status=503, elapsed_s=0.1)
    if kind == "oversize":
        return MinerAnswer(uid, "oversize", "more than 67174400 bytes, the cap", http_status=200, elapsed_s=2.0,
                           headers=dict(HEADERS), bytes_received=67174401)  # fmt: skip
    if kind == "bad_headers":
        headers = dict(HEADERS, **{"x-text3d-format": "obj"})
        return MinerAnswer(uid, "ok", http_status=200, elapsed_s=0.5, headers=headers, body=PAYLOAD)
    if kind == "bad_time":
        headers = dict(HEADERS, **{"x-text3d-generation-time-s": "soon"})
        return MinerAnswer(uid, "ok", http_status=200, elapsed_s=0.5, headers=headers, body=PAYLOAD)
    if kind == "garbage":
        return MinerAnswer(uid, "ok", http_status=200, elapsed_s=0.5, headers=dict(HEADERS), body=b"DRACO not really")
    if kind == "oom":
        return MinerAnswer(uid, "ok", http_status=200, elapsed_s=0.5, headers=dict(HEADERS), body=OOM)
    raise AssertionError(f"unknown behaviour {kind}")


class FakeClient:
    """The network edge: each hotkey's behaviour decides its ``MinerAnswer``; records every request."""

    def __init__(self, behaviour):
        self.behaviour = behaviour  # hotkey -> kind of answer_for, or "crash"
        self.steps = []  # per query_many: [(target, request)]

    async def query_many(self, targets, requests, timeout_s):
        if any(self.behaviour.get(t.hotkey) == "crash" for t in targets):
            raise RuntimeError("the event loop's selector exploded")
        self.steps.append(list(zip(targets, requests)))
        return [answer_for(self.behaviour.get(t.hotkey, "ok"), t.uid, timeout_s) for t in targets]


class StubRewardModel:
    """Scores every mesh ``score`` (invalid for ``invalid`` prompts); raises ``fault`` instead when set."""

    def __init__(self, score=0.8, fault=None):
        self.score, self.fault, self.calls, self.threads = score, fault, [], []
        self.invalid_from = None  # index in the batch from which meshes are reported invalid

    def rig_for(self, step_seed=None, rig=None):
        return rig  # no secret rig: this stub draws nothing

    def score_batch(self, meshes, prompts, references=None, **options):
        self.calls.append([len(mesh.faces) for mesh in meshes])
        self.threads.append(threading.current_thread())
        if self.fault is not None:
            raise self.fault
        image = Image.new("RGB", (8, 8), (255, 0, 0))
        reports = []
        for i, prompt in enumerate(prompts):
            if self.invalid_from is not None and i >= self.invalid_from:
                reports.append(RewardReport.invalid(prompt, "renders empty from every view"))
            else:
                reports.append(RewardReport(score=self.score, prompt=prompt, metric="cosine",
                                            aggregation="mean").attach_images([image]))  # fmt: skip
        return reports


def make_validator(tmp_path, hotkeys, behaviour=None, reward=None, state=None, reports=False, **config):
    chain = FakeChain(hotkeys)
    config = {"sample_size": 16, "alpha": 0.5, "state_path": tmp_path / "state.json", "step_interval_s": 0,
              "canary_every_steps": 0, **config}  # the stub scorer cannot score the canary: see test_validator_defences
    cfg = ValidatorSettings(**config)
    rng = random.Random(0)
    validator = Validator(
        cfg,
        wallet=FakeWallet(),
        chain=chain,
        client=FakeClient(behaviour or {}),
        reward_model=reward or StubRewardModel(),
        state=state or ValidatorState(),
        sampler=PromptSampler(["a red chair", "a blue mug"], rng),
        rng=rng,
        reports=StepReports(tmp_path / "reports", 50.0) if reports else None,
    )
    return validator, chain


def step(validator):
    return asyncio.run(validator.step())


HOTKEYS = [OWN_HOTKEY, "good", "slow", "late", "refused", "oversize", "bad-headers", "bad-time", "garbage", "idle-miner"]
BEHAVIOUR = {"slow": "no_response", "late": "late", "refused": "refused", "oversize": "oversize",
             "bad-headers": "bad_headers", "bad-time": "bad_time", "garbage": "garbage"}  # fmt: skip
MINERS = [h for h in HOTKEYS if h not in (OWN_HOTKEY, "idle-miner")]


# -- who is asked, and what ---------------------------------------------------------------------


def test_queries_serving_miners_but_not_itself(tmp_path):
    validator, _ = make_validator(tmp_path, HOTKEYS, BEHAVIOUR)
    result = step(validator)
    assert sorted(o.hotkey for o in result.outcomes) == sorted(MINERS)
    (sent,) = validator.client.steps
    for target, _ in sent:  # each request is signed for the miner's own hotkey and sent to its axon
        assert target.hotkey == HOTKEYS[target.uid] and (target.ip, target.port) == ("127.0.0.1", 9000 + target.uid)


def test_sample_size_bounds_the_miners_asked(tmp_path):
    validator, _ = make_validator(tmp_path, HOTKEYS, BEHAVIOUR, sample_size=3)
    result = step(validator)
    assert len(result.outcomes) == 3 and {o.hotkey for o in result.outcomes} <= set(MINERS)


def test_each_miner_gets_the_same_prompt_and_its_own_seed(tmp_path):
    validator, _ = make_validator(tmp_path, HOTKEYS, BEHAVIOUR, timeout_s=7.5)
    first = step(validator)
    second = step(validator)
    for result, sent in zip((first, second), validator.client.steps):
        requests = {target.uid: request for target, request in sent}
        assert len({r.prompt for r in requests.values()}) == 1 and result.task.prompt == next(iter(requests.values())).prompt
        seeds = [r.seed for r in requests.values()]
        assert len(set(seeds)) == len(seeds) == len(MINERS)  # no miner can copy another's answer
        assert all(0 <= s <= MAX_SEED for s in seeds)
        assert all(r.timeout_s == 7.5 for r in requests.values())
        assert {o.uid: o.seed for o in result.outcomes} == {uid: r.seed for uid, r in requests.items()}
    seeds_of = [{t.uid: r.seed for t, r in sent} for sent in validator.client.steps]
    assert seeds_of[0] != seeds_of[1]  # and fresh seeds every step


# -- scores ----------------------------------------------------------------------------------


def test_moving_average_of_a_good_miner(tmp_path):
    reward = StubRewardModel()
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "good"], reward=reward)
    result = step(validator)
    assert validator.state.averages[1] == pytest.approx(0.4)
    step(validator)
    assert validator.state.averages[1] == pytest.approx(0.6)
    assert reward.calls == [[FACES], [FACES]]  # the real Draco bytes were decoded before scoring
    (good,) = result.outcomes
    assert (good.status, good.score, good.mesh_format, good.generation_time_s) == ("ok", pytest.approx(0.8), "draco", 0.2)
    assert good.payload_bytes == len(PAYLOAD) and good.response_s == 0.5


def test_missing_late_refused_oversize_malformed_and_invalid_answers_score_zero(tmp_path):
    state = ValidatorState(averages={uid: 1.0 for uid in range(1, 9)}, hotkeys=dict(enumerate(HOTKEYS)))
    reward = StubRewardModel()
    validator, _ = make_validator(tmp_path, HOTKEYS, BEHAVIOUR, reward=reward, state=state)
    result = step(validator)
    assert result.updated and result.fault is None
    status = {o.hotkey: o.status for o in result.outcomes}
    assert status == {"good": "ok", "slow": "no_response", "late": "late", "refused": "refused", "oversize": "oversize",
                      "bad-headers": "malformed", "bad-time": "malformed", "garbage": "invalid"}  # fmt: skip
    detail = {o.hotkey: o.detail for o in result.outcomes}
    assert "expected one of draco, ply, glb" in detail["bad-headers"] and "not a number" in detail["bad-time"]
    assert "HTTP 503" in detail["refused"] and detail["garbage"]  # every zero says why
    assert reward.calls == [[FACES]]  # only the one decodable mesh reached the reward model
    assert validator.state.averages[1] == pytest.approx(0.9)  # 0.5 * 0.8 + 0.5 * 1.0
    for uid in range(2, 9):
        assert validator.state.averages[uid] == pytest.approx(0.5), HOTKEYS[uid]  # 0.5 * 0 + 0.5 * 1.0
    assert all(o.score == 0.0 for o in result.outcomes if o.status != "ok")


def test_a_mesh_the_reward_model_reports_invalid_scores_zero(tmp_path):
    reward = StubRewardModel()
    reward.invalid_from = 1
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "good", "empty-render"], reward=reward)
    result = step(validator)
    by_hotkey = {o.hotkey: o for o in result.outcomes}
    assert by_hotkey["good"].status == "ok" and validator.state.averages[1] == pytest.approx(0.4)
    assert by_hotkey["empty-render"].status == "invalid" and by_hotkey["empty-render"].detail == "renders empty from every view"
    assert validator.state.averages[2] == 0.0 and by_hotkey["empty-render"].report is not None


def test_decoding_and_scoring_run_off_the_event_loop(tmp_path, monkeypatch):
    threads = []
    real_decode = outcomes_module.decode_mesh

    def recording_decode(payload, limits):
        threads.append(threading.current_thread())
        return real_decode(payload, limits)

    monkeypatch.setattr(outcomes_module, "decode_mesh", recording_decode)
    reward = StubRewardModel()
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "a", "b"], reward=reward)
    step(validator)
    main_thread = threading.main_thread()  # asyncio.run drives the loop on this thread
    assert len(threads) == 2 and all(t is not main_thread for t in threads)
    assert reward.threads and all(t is not main_thread for t in reward.threads)


# -- when nobody's score may move ---------------------------------------------------------------


def test_validator_fault_updates_nobody(tmp_path):
    state = ValidatorState(averages={1: 0.7, 2: 0.3}, hotkeys=dict(enumerate(HOTKEYS)))
    reward = StubRewardModel(fault=CaptionerUnavailable("llama-server at 127.0.0.1:8080 is down"))
    validator, _ = make_validator(tmp_path, HOTKEYS, BEHAVIOUR, reward=reward, state=state)
    result = step(validator)
    assert not result.updated and "CaptionerUnavailable" in result.fault
    assert validator.state.averages == {1: 0.7, 2: 0.3}  # not even the unreachable miner moves
    assert validator.state.step == 1  # the step still counts, and is saved
    assert ValidatorState.load(tmp_path / "state.json").averages == {1: 0.7, 2: 0.3}


@pytest.mark.parametrize(
    "fault, name",
    [(MemoryError(), "ResourceExhausted"), (KeyError("views"), "KeyError")],
    ids=["out-of-memory", "our-bug"],
)
def test_our_scoring_crashing_updates_nobody(tmp_path, fault, name):
    state = ValidatorState(averages={1: 0.7}, hotkeys=dict(enumerate(HOTKEYS)))
    validator, _ = make_validator(tmp_path, HOTKEYS, BEHAVIOUR, reward=StubRewardModel(fault=fault), state=state)
    result = step(validator)
    assert not result.updated and result.fault.startswith(name)
    assert validator.state.averages == {1: 0.7}


def test_a_memory_error_while_decoding_is_our_fault(tmp_path, monkeypatch):
    real_decode = outcomes_module.decode_mesh

    def decode(payload, limits):
        if payload == OOM:
            raise MemoryError
        return real_decode(payload, limits)

    monkeypatch.setattr(outcomes_module, "decode_mesh", decode)
    state = ValidatorState(averages={1: 0.7, 2: 0.3}, hotkeys={0: OWN_HOTKEY, 1: "good", 2: "bomb"})
    reward = StubRewardModel()
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "good", "bomb"], {"bomb": "oom"}, reward=reward, state=state)
    result = step(validator)
    assert not result.updated and result.fault.startswith("ResourceExhausted")
    assert "uid 2" in result.fault
    assert validator.state.averages == {1: 0.7, 2: 0.3}  # neither the miner that sent it nor the honest one moves
    assert reward.calls == []  # nothing was scored on a validator out of memory
    assert validator.state.step == 1


def test_every_miner_failing_at_the_transport_level_updates_nobody(tmp_path):
    state = ValidatorState(averages={1: 0.7, 2: 0.3}, hotkeys={0: OWN_HOTKEY, 1: "a", 2: "b"})
    reward = StubRewardModel()
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "a", "b"], {"a": "no_response", "b": "late"}, reward=reward,
                                  state=state)  # fmt: skip
    result = step(validator)
    assert not result.updated and result.fault.startswith("NetworkUnavailable: all 2 queried miners")
    assert {o.hotkey: o.status for o in result.outcomes} == {"a": "no_response", "b": "late"}  # still reported
    assert validator.state.averages == {1: 0.7, 2: 0.3} and reward.calls == []
    assert validator.state.step == 1


def test_one_miner_answering_proves_our_network_works(tmp_path):
    """Then the silent ones are the miners' fault: a refusal is an HTTP answer."""
    state = ValidatorState(averages={1: 0.7, 2: 0.3}, hotkeys={0: OWN_HOTKEY, 1: "a", 2: "b"})
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "a", "b"], {"a": "no_response", "b": "refused"}, state=state)
    result = step(validator)
    assert result.updated and result.fault is None
    assert validator.state.averages == {1: pytest.approx(0.35), 2: pytest.approx(0.15)}


def test_miners_that_trickle_their_bodies_are_at_fault_even_all_together(tmp_path):
    state = ValidatorState(averages={1: 0.7, 2: 0.3}, hotkeys={0: OWN_HOTKEY, 1: "a", 2: "b"})
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "a", "b"], {"a": "trickled", "b": "trickled"}, state=state)
    result = step(validator)
    assert result.updated and {o.status for o in result.outcomes} == {"late"}
    assert validator.state.averages == {1: pytest.approx(0.35), 2: pytest.approx(0.15)}


def test_unreachable_chain_skips_the_step(tmp_path):
    state = ValidatorState(averages={1: 0.7}, hotkeys=dict(enumerate(HOTKEYS)))
    validator, chain = make_validator(tmp_path, HOTKEYS, state=state)
    chain.down = True
    result = step(validator)
    assert not result.updated and "ChainUnavailable" in result.fault
    assert validator.state.averages == {1: 0.7} and validator.client.steps == []  # nobody was even asked


def test_changed_hotkey_loses_its_history(tmp_path):
    state = ValidatorState(averages={1: 0.9}, hotkeys={0: OWN_HOTKEY, 1: "old-owner"})
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "new-owner"], state=state)
    step(validator)
    assert validator.state.hotkeys[1] == "new-owner"
    assert validator.state.averages[1] == pytest.approx(0.4)  # 0.5 * 0.8 from zero, not from 0.9


# -- weights ---------------------------------------------------------------------------------


def test_weights_follow_the_rate_limit_and_carry_the_spec_version(tmp_path):
    validator, chain = make_validator(tmp_path, [OWN_HOTKEY, "good", "slow"], {"slow": "no_response"})
    first = step(validator)
    assert first.weights.startswith("set at block 100 for 1 uids")
    uids, weights, version_key = chain.weight_calls[0]
    assert version_key == SPEC_VERSION
    assert uids == [0, 1, 2]  # every uid, zeros kept (the chain clips against all of them)
    assert weights == [0.0, pytest.approx(1.0), 0.0]
    chain.block_now = 105
    assert step(validator).weights is None  # within weights_rate_limit = 10 blocks
    chain.block_now = 110
    step(validator)
    assert len(chain.weight_calls) == 2 and validator.state.last_weight_block == 110
    assert ValidatorState.load(tmp_path / "state.json").last_weight_block == 110


def test_weights_follow_the_incentive_curve_of_the_averages(tmp_path):
    """Default curve: w ~ average**4. After everyone is refused the averages are 0.3, 0.1 and 0:
    0.3**4 / (0.3**4 + 0.1**4) = 81/82, 0.1**4 / (...) = 1/82 (linear would pay 0.75 / 0.25)."""
    state = ValidatorState(averages={1: 0.6, 2: 0.2}, hotkeys={0: OWN_HOTKEY, 1: "a", 2: "b", 3: "c"})
    validator, chain = make_validator(tmp_path, [OWN_HOTKEY, "a", "b", "c"], {"a": "refused", "b": "refused",
                                                                              "c": "refused"}, state=state)  # fmt: skip
    step(validator)  # everyone refused: 0.3, 0.1 and 0
    (uids, weights, _), = chain.weight_calls
    assert dict(zip(uids, weights)) == {0: 0.0, 1: pytest.approx(81 / 82), 2: pytest.approx(1 / 82), 3: 0.0}


def test_a_linear_incentive_curve_pays_in_proportion(tmp_path):
    from text3d.validator.weights import IncentiveCurve

    state = ValidatorState(averages={1: 0.6, 2: 0.2}, hotkeys={0: OWN_HOTKEY, 1: "a", 2: "b", 3: "c"})
    validator, chain = make_validator(tmp_path, [OWN_HOTKEY, "a", "b", "c"], {"a": "refused", "b": "refused",
                                                                              "c": "refused"}, state=state)  # fmt: skip
    validator.incentive = IncentiveCurve(exponent=1.0)
    step(validator)
    (uids, weights, _), = chain.weight_calls
    assert dict(zip(uids, weights)) == {0: 0.0, 1: pytest.approx(0.75), 2: pytest.approx(0.25), 3: 0.0}


def test_a_refused_or_failed_weight_setting_is_retried_next_step(tmp_path):
    validator, chain = make_validator(tmp_path, [OWN_HOTKEY, "good"])
    chain.refuse = "no validator permit"
    assert step(validator).weights == "refused: no validator permit"
    assert validator.state.last_weight_block is None
    chain.refuse = None
    assert step(validator).weights.startswith("set at block 100")
    assert validator.state.last_weight_block == 100


def test_no_weights_before_anyone_scored(tmp_path):
    """No evidence is no ranking: uniform weights would pay garbage miners and ourselves."""
    validator, chain = make_validator(tmp_path, [OWN_HOTKEY, "slow", "idle-miner"], {"slow": "refused"})
    assert step(validator).weights.startswith("skipped")
    assert chain.weight_calls == [] and validator.state.last_weight_block is None


# -- state and reports ---------------------------------------------------------------------


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
    assert set(summary["timing_s"]) >= {"sync_s", "select_s", "query_s", "decode_s", "score_s", "update_s", "weights_s", "save_s", "total_s"}
    assert summary["updated"] is True and summary["fault"] is None
    good = next(m for m in summary["miners"] if m["hotkey"] == "good")
    assert good["score"] == pytest.approx(0.8) and good["report"]["score"] == pytest.approx(0.8)
    assert good["mesh_format"] == "draco" and good["payload_bytes"] == len(PAYLOAD) and good["seed"] is not None
    statuses = {m["hotkey"]: m["status"] for m in summary["miners"]}
    assert statuses["oversize"] == "oversize" and statuses["bad-headers"] == "malformed"
    assert summary["task"]["prompt"] in ("a red chair", "a blue mug")
    assert (folder / "index.html").exists()
    assert list(folder.rglob("*.png"))


def test_a_faulty_step_still_leaves_its_report(tmp_path):
    reward = StubRewardModel(fault=CaptionerUnavailable("llama-server is down"))
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "good"], reward=reward, reports=True)
    step(validator)
    summary = json.loads((tmp_path / "reports" / "step_000001" / "step.json").read_text())
    assert summary["updated"] is False and "CaptionerUnavailable" in summary["fault"]


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


# -- the loop and the entry point ------------------------------------------------------------


def test_a_broken_step_does_not_end_the_loop(tmp_path):
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "good", "bad"], {"bad": "crash"}, max_steps=3)
    assert asyncio.run(validator.run()) == 3
    assert validator.state.step == 0  # every step crashed in the network layer ...
    validator.client.behaviour = {}
    assert asyncio.run(validator.run()) == 3  # ... and the loop kept going once it recovered
    assert validator.state.step == 3


def test_the_loop_stops_when_told(tmp_path):
    validator, _ = make_validator(tmp_path, [OWN_HOTKEY, "good"], step_interval_s=3600.0)

    async def go():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, stop.set)
        return await asyncio.wait_for(validator.run(stop), 30)

    assert asyncio.run(go()) == 1  # one step, then the hour-long wait ends at the stop


def test_runs_as_a_module_and_refuses_unknown_flags():
    done = subprocess.run([sys.executable, "-m", "neurons.validator", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--validator.sample_size" in done.stdout and "--captioner" in done.stdout
    assert "--axon.port" not in done.stdout
    with pytest.raises(SystemExit) as exit_info:
        main(["--validator.bogus", "1"])
    assert exit_info.value.code == EXIT_USAGE


def test_unregistered_hotkey_exits_78_with_one_sentence(tmp_path, capsys):
    DevnetChain.create(tmp_path / "devnet.db", 2)
    wallet = make_wallet(tmp_path / "wallets", "v")
    argv = ["--netuid", "2", "--subtensor.network", "devnet", "--devnet.db", str(tmp_path / "devnet.db"),
            "--wallet.name", "v", "--wallet.path", str(tmp_path / "wallets"), "--models", "tiny"]  # fmt: skip
    assert main(argv) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"text3d validator: hotkey {wallet.hotkey.ss58_address}")
    assert "is not registered on netuid 2" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
