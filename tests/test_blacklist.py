"""A miner answers only registered validators with enough stake, and refusing never crashes it.

Unit tests pin the pure rule; the integration test runs a real Axon miner on the
devnet chain and calls it with real Dendrites from an unregistered hotkey, a
registered non-validator and a low-stake validator (all 403, no traceback in the
miner's log), and from a proper validator (answered with a mesh).
"""

import asyncio
import socket
import threading
import time

import bittensor as bt
import numpy as np
import pytest
import trimesh

from neurons.blacklist import BlacklistPolicy, caller_stake, check_caller
from neurons.chain.devnet import DevnetChain
from neurons.config import MinerConfig
from neurons.miner import Miner
from neurons.validator import build_dendrite
from protocol import TextTo3D


def hand_metagraph(hotkeys, stakes, permits):
    graph = bt.Metagraph(1, network="local", sync=False)
    graph.n = np.array(len(hotkeys))
    graph.uids = np.arange(len(hotkeys))
    graph.stake = np.array(stakes, dtype=np.float32)
    graph.validator_permit = np.array(permits, dtype=bool)
    graph.axons = [
        bt.AxonInfo(version=1, ip="127.0.0.1", port=9000 + i, ip_type=4, hotkey=h, coldkey="c") for i, h in enumerate(hotkeys)
    ]
    return graph


GRAPH = hand_metagraph(["miner", "validator", "poor-validator"], [0.0, 100.0, 2.0], [False, True, True])
POLICY = BlacklistPolicy(min_validator_stake=10.0)


def test_unknown_hotkey_is_refused_without_raising():
    assert check_caller(GRAPH, "stranger", POLICY) == (True, "hotkey stranger is not registered")
    assert check_caller(GRAPH, None, POLICY)[0] is True
    assert check_caller(GRAPH, "", POLICY)[0] is True


def test_registered_non_validator_is_refused():
    refused, reason = check_caller(GRAPH, "miner", POLICY)
    assert refused and "no validator permit" in reason


def test_validator_below_minimum_stake_is_refused():
    refused, reason = check_caller(GRAPH, "poor-validator", POLICY)
    assert refused and "below the minimum" in reason


def test_validator_with_enough_stake_is_allowed():
    assert check_caller(GRAPH, "validator", POLICY)[0] is False
    assert check_caller(GRAPH, "poor-validator", BlacklistPolicy(min_validator_stake=1.0))[0] is False


def test_priority_is_stake_and_zero_for_strangers():
    assert caller_stake(GRAPH, "validator") == 100.0
    assert caller_stake(GRAPH, "stranger") == 0.0


# -- a real Axon miner on the devnet ------------------------------------------------------


class SphereGenerator:
    """A stand-in for Shap-E: one coloured icosphere per prompt."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, seeds):
        self.calls.append(list(prompts))
        meshes = []
        for _ in prompts:
            mesh = trimesh.creation.icosphere(subdivisions=1)
            mesh.visual.vertex_colors = np.tile(np.array([200, 40, 40, 255], dtype=np.uint8), (len(mesh.vertices), 1))
            meshes.append(mesh)
        return meshes


def make_wallet(root, name):
    wallet = bt.Wallet(name=name, hotkey="default", path=str(root))
    wallet.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=False, suppress=True)
    return wallet


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def devnet_miner(tmp_path_factory):
    root = tmp_path_factory.mktemp("blacklist")
    chain = DevnetChain.create(root / "devnet.db", 1, block_time_s=1.0)
    wallets = {name: make_wallet(root / "wallets", name) for name in ("miner", "validator", "poor", "plain", "stranger")}
    for name in ("miner", "validator", "poor", "plain"):
        chain.register(wallets[name].hotkey.ss58_address, wallets[name].coldkeypub.ss58_address)
    chain.add_stake(wallets["validator"].hotkey.ss58_address, 100.0)
    chain.add_stake(wallets["poor"].hotkey.ss58_address, 2.0)

    miner = Miner(MinerConfig(min_validator_stake=10.0, resync_interval_s=0.5), chain=chain, generator=SphereGenerator())
    axon = bt.Axon(wallet=wallets["miner"], ip="127.0.0.1", port=free_port(), external_ip="127.0.0.1")
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(miner.run(axon, stop=stop),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not chain.metagraph().axons[0].is_serving:
        assert time.monotonic() < deadline, "miner did not announce its axon"
        time.sleep(0.05)
    yield chain, wallets, miner
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=10)


def call_miner(chain, wallet, prompt="a red ball"):
    async def go():
        dendrite = build_dendrite(wallet, "127.0.0.1")
        try:
            return await dendrite.call(
                chain.metagraph().axons[0], TextTo3D(prompt=prompt, seed=1), timeout=10.0, deserialize=False
            )
        finally:
            await dendrite.aclose_session()

    return asyncio.run(go())


def miner_log(caplog, capfd, until, wait_s=2.0):
    """Everything the in-process miner logged (bt.logging hands records to a queue thread)."""
    deadline = time.monotonic() + wait_s
    while until not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    captured = capfd.readouterr()
    records = "\n".join(r.getMessage() + (" Traceback" if r.exc_info else "") for r in caplog.records)
    return "\n".join([caplog.text, records, captured.out, captured.err])


EXPECTED_REASON = {"stranger": "is not registered", "plain": "no validator permit", "poor": "below the minimum"}


@pytest.mark.integration
@pytest.mark.parametrize("caller", ["stranger", "plain", "poor"])
def test_real_axon_refuses_with_403_and_no_traceback(devnet_miner, caller, capfd, caplog):
    chain, wallets, miner = devnet_miner
    response = call_miner(chain, wallets[caller])
    assert response.dendrite.status_code == 403
    assert EXPECTED_REASON[caller] in response.dendrite.status_message
    assert response.mesh_b64 is None
    log = miner_log(caplog, capfd, until="Blacklisted")
    assert "Blacklisted" in log  # the refusal is logged ...
    assert "Traceback" not in log  # ... as one line, not a crash


@pytest.mark.integration
def test_real_axon_answers_a_staked_validator(devnet_miner, capfd, caplog):
    chain, wallets, miner = devnet_miner
    response = call_miner(chain, wallets["validator"], prompt="a blue cube")
    assert response.dendrite.status_code == 200
    assert response.mesh_format == "draco"
    mesh = response.decode()
    assert len(mesh.faces) == 80
    assert response.generation_time_s is not None and response.generation_time_s >= 0
    assert ["a blue cube"] in miner.generator.calls
    assert "Traceback" not in miner_log(caplog, capfd, until="", wait_s=0)
