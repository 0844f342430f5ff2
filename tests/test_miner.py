"""The miner batches concurrent requests and answers within the caller's timeout or not at all.

Pinned rules: requests arriving together share one ``generate`` call (up to
``max_batch_size``); an answer that would arrive after the caller's timeout is dropped;
a request whose budget is shorter than a typical batch is never started; a failing
batch fails only its own requests; an unregistered hotkey stops ``main()`` with exit
code 2 and one sentence.
"""

import asyncio
import subprocess
import sys
from pathlib import Path

import bittensor as bt
import numpy as np
import pytest
import trimesh
from bittensor.core.synapse import TerminalInfo

from neurons.chain.devnet import DevnetChain
from neurons.config import MinerConfig
from neurons.miner import Miner, main
from protocol import TextTo3D

REPO = Path(__file__).resolve().parent.parent


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


class RecordingGenerator:
    """Coloured tetrahedra; records each batch; optionally advances a clock or fails."""

    def __init__(self, clock=None, cost_s=0.0, fail_on=None):
        self.calls = []
        self.clock, self.cost_s, self.fail_on = clock, cost_s, fail_on

    def generate(self, prompts, seeds):
        self.calls.append((list(prompts), list(seeds)))
        if self.clock is not None:
            self.clock.now += self.cost_s
        if self.fail_on is not None and self.fail_on in prompts:
            raise RuntimeError("CUDA out of memory")
        meshes = []
        for _ in prompts:
            mesh = trimesh.creation.box()
            mesh.visual.vertex_colors = np.full((len(mesh.vertices), 4), 255, dtype=np.uint8)
            meshes.append(mesh)
        return meshes


def request(prompt, timeout_s=12.0, seed=7):
    synapse = TextTo3D(prompt=prompt, seed=seed, timeout=timeout_s)
    synapse.dendrite = TerminalInfo(hotkey="validator")
    return synapse


def make_miner(generator, clock=None, **config):
    config = {"batch_window_s": 0.2, **config}
    kwargs = {"clock": clock} if clock is not None else {}
    return Miner(MinerConfig(**config), chain=None, generator=generator, **kwargs)


def answer_all(miner, synapses):
    async def go():
        try:
            return await asyncio.gather(*(miner.answer(s) for s in synapses))
        finally:
            await miner.batcher.close()

    return asyncio.run(go())


def test_concurrent_requests_share_one_generate_call():
    generator = RecordingGenerator()
    miner = make_miner(generator, max_batch_size=4)
    answers = answer_all(miner, [request(f"prompt {i}", seed=i) for i in range(4)])
    assert len(generator.calls) == 1
    assert sorted(generator.calls[0][0]) == [f"prompt {i}" for i in range(4)]
    assert sorted(generator.calls[0][1]) == [0, 1, 2, 3]
    for synapse in answers:
        assert synapse.mesh_format == "draco"
        assert len(synapse.decode().faces) == 12
        assert synapse.generation_time_s >= 0


def test_batches_never_exceed_max_batch_size():
    generator = RecordingGenerator()
    miner = make_miner(generator, max_batch_size=4)
    answers = answer_all(miner, [request(f"p{i}") for i in range(6)])
    assert [len(prompts) for prompts, _ in generator.calls] == [4, 2]
    assert all(s.mesh_b64 for s in answers)


def test_answer_finishing_after_the_deadline_is_dropped():
    clock = FakeClock()
    generator = RecordingGenerator(clock=clock, cost_s=5.0)
    miner = make_miner(generator, clock=clock)
    (synapse,) = answer_all(miner, [request("a slow chair", timeout_s=3.0)])
    assert len(generator.calls) == 1  # it was started: no batch had been timed yet
    assert synapse.mesh_b64 is None and synapse.generation_time_s is None
    assert miner.dropped == 1


def test_request_shorter_than_a_typical_batch_is_not_started():
    clock = FakeClock()
    generator = RecordingGenerator(clock=clock, cost_s=5.0)
    miner = make_miner(generator, clock=clock)

    async def go():
        first = await miner.answer(request("warm up", timeout_s=30.0))
        second = await miner.answer(request("hurry", timeout_s=2.0))
        await miner.batcher.close()
        return first, second

    first, second = asyncio.run(go())
    assert first.mesh_b64 is not None
    assert len(generator.calls) == 1  # "hurry" never reached the generator
    assert second.mesh_b64 is None and miner.dropped == 1
    assert miner.batcher.expected_batch_s == pytest.approx(4.0)  # the estimate decays: a slow warm-up is forgotten


def test_deadline_counts_time_already_spent_in_transit():
    clock, wall = FakeClock(50.0), FakeClock(2_000_000.0)
    miner = Miner(MinerConfig(deadline_margin_s=0.25), chain=None, generator=None, clock=clock, wall_clock=wall)
    synapse = request("x", timeout_s=10.0)
    synapse.dendrite.nonce = int((wall.now - 2.0) * 1e9)  # sent two seconds ago
    assert miner.deadline_of(synapse) == pytest.approx(50.0 + 10.0 - 2.0 - 0.25)
    synapse.dendrite.nonce = int((wall.now + 3600) * 1e9)  # clocks disagree: trust arrival time
    assert miner.deadline_of(synapse) == pytest.approx(50.0 + 10.0 - 0.25)


def test_failed_batch_fails_only_its_requests_and_the_loop_survives():
    generator = RecordingGenerator(fail_on="boom")
    miner = make_miner(generator, batch_window_s=0.0)

    async def go():
        failed = await miner.answer(request("boom"))
        fine = await miner.answer(request("a lamp"))
        await miner.batcher.close()
        return failed, fine

    failed, fine = asyncio.run(go())
    assert failed.mesh_b64 is None
    assert fine.decode() is not None


def test_axon_hooks_have_the_signatures_bittensor_requires():
    miner = make_miner(RecordingGenerator())
    axon = bt.Axon(wallet=bt.Wallet(name="unused", path="/nonexistent"), ip="127.0.0.1", port=18998, external_ip="127.0.0.1")
    miner.attach(axon)  # bt.Axon.attach asserts the exact signatures
    assert axon.forward_class_types["TextTo3D"] is TextTo3D
    assert miner.blacklist(request("x")) == (True, "metagraph not synced yet")


def _wallet(root, name):
    wallet = bt.Wallet(name=name, hotkey="default", path=str(root))
    wallet.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=False, suppress=True)
    return wallet


def test_unregistered_hotkey_exits_2_with_one_sentence(tmp_path, capsys):
    DevnetChain.create(tmp_path / "devnet.db", 3)
    _wallet(tmp_path / "wallets", "lonely")
    argv = [
        "--netuid", "3", "--subtensor.network", "devnet", "--devnet.db", str(tmp_path / "devnet.db"),
        "--wallet.name", "lonely", "--wallet.path", str(tmp_path / "wallets"), "--models", "tiny",
        "--axon.ip", "127.0.0.1", "--axon.port", "18999",
    ]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "is not registered on netuid 3" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_runs_as_a_script():
    for command in ([sys.executable, "neurons/miner.py", "--help"],):  # `-m` form: test_validator_unit
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "--miner.max_batch_size" in done.stdout and "--axon.external_ip" in done.stdout


def test_flags_become_typed_sections_once():
    from neurons.config import ConfigError, axon_config, generation_settings, miner_config, neuron_config, parse_bt_config

    flags = ["--netuid", "4", "--subtensor.network", "devnet", "--devnet.db", "/tmp/x.db", "--logging.debug",
             "--axon.port", "9100", "--miner.max_batch_size", "8", "--miner.format", "ply", "--generation.grid_size", "64"]  # fmt: skip
    config = parse_bt_config("miner", flags)
    assert config.wallet.name == "default" and config.logging.debug is True  # what bt.Wallet / bt.logging read
    neuron = neuron_config(config)
    assert (neuron.netuid, neuron.devnet_db, neuron.is_local) == (4, "/tmp/x.db", True)
    axon = axon_config(config, neuron)
    assert (axon.ip, axon.port, axon.external_ip) == ("0.0.0.0", 9100, "127.0.0.1")  # local: never looked up
    assert miner_config(config).max_batch_size == 8 and miner_config(config).format == "ply"
    assert generation_settings(config).grid_size == 64
    finney = neuron_config(parse_bt_config("miner", ["--netuid", "4"]))
    assert not finney.is_local and axon_config(parse_bt_config("miner", []), finney).external_ip is None
    with pytest.raises(ConfigError, match="--devnet.db"):
        neuron_config(parse_bt_config("miner", ["--subtensor.network", "devnet"]))
    with pytest.raises(ConfigError, match="max_batch_size"):
        miner_config(parse_bt_config("miner", ["--miner.max_batch_size", "0"]))
