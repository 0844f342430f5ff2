"""The devnet enforces the subnet's rules the way subtensor does: dense uids, permits by
stake, rate-limited and versioned weights, a block clock, uid replacement when full, and
one database shared safely by several processes."""

import multiprocessing
from pathlib import Path
from types import SimpleNamespace

import pytest

from neurons.chain import ChainAdapter, DevnetChain, HotkeyNotRegistered, NeuronInfo
from reward.errors import ChainUnavailable


class Clock:
    """Injected wall time: tests move it by hand."""

    def __init__(self, now_s: float = 1_000_000.0):
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def wallet_of(hotkey: str) -> SimpleNamespace:
    """The chain only reads ``wallet.hotkey.ss58_address``; real wallets are used in the e2e test."""
    return SimpleNamespace(hotkey=SimpleNamespace(ss58_address=hotkey))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def chain(tmp_path: Path, clock: Clock) -> DevnetChain:
    return DevnetChain.create(tmp_path / "chain.db", netuid=7, clock=clock, block_time_s=2.0, weights_rate_limit=5)


def test_implements_the_adapter_protocol(chain):
    assert isinstance(chain, ChainAdapter)
    assert chain.netuid == 7


def test_create_refuses_to_clobber_and_open_reads_params(tmp_path, chain, clock):
    with pytest.raises(FileExistsError):
        DevnetChain.create(chain.db_path, netuid=7)
    reopened = DevnetChain.open(chain.db_path, clock=clock)
    assert reopened.netuid == 7
    assert reopened.params().weights_rate_limit == 5
    assert DevnetChain.create(chain.db_path, netuid=3, overwrite=True).netuid == 3


def test_missing_database_is_chain_unavailable(tmp_path):
    with pytest.raises(ChainUnavailable, match="does not exist"):
        DevnetChain.open(tmp_path / "nope.db")


def test_register_assigns_dense_uids_and_is_idempotent(chain):
    assert [chain.register(f"hk{i}", "ck") for i in range(3)] == [0, 1, 2]
    assert chain.register("hk1", "ck") == 1
    assert chain.uid_of("hk2") == 2
    assert chain.uid_of("unknown") is None
    assert [n.hotkey for n in chain.neurons()] == ["hk0", "hk1", "hk2"]


def test_permits_go_to_top_stakes_above_minimum(tmp_path, clock):
    chain = DevnetChain.create(tmp_path / "c.db", clock=clock, max_validators=2, min_validator_stake_tao=10.0)
    for i in range(4):
        chain.register(f"hk{i}", "ck")
    chain.add_stake("hk0", 5.0)  # below the minimum
    chain.add_stake("hk1", 50.0)
    chain.add_stake("hk2", 20.0)
    assert chain.add_stake("hk3", 30.0) == 30.0
    permits = {n.hotkey: n.validator_permit for n in chain.neurons()}
    assert permits == {"hk0": False, "hk1": True, "hk2": False, "hk3": True}
    with pytest.raises(HotkeyNotRegistered):
        chain.add_stake("stranger", 1.0)


def test_metagraph_fields(chain):
    import bittensor as bt

    chain.register("validator", "ck-v")
    chain.register("miner", "ck-m")
    chain.add_stake("validator", 100.0)
    chain.serve_axon(wallet_of("miner"), "127.0.0.1", 8091)
    graph = chain.metagraph()
    assert isinstance(graph, bt.Metagraph)
    assert int(graph.n) == 2
    assert graph.uids.tolist() == [0, 1]
    assert graph.hotkeys == ["validator", "miner"]
    assert graph.coldkeys == ["ck-v", "ck-m"]
    assert graph.S.tolist() == [100.0, 0.0]
    assert graph.validator_permit.tolist() == [True, False]
    miner_axon = graph.axons[1]
    assert isinstance(miner_axon, bt.AxonInfo)
    assert (miner_axon.ip, miner_axon.port, miner_axon.is_serving) == ("127.0.0.1", 8091, True)
    assert graph.axons[0].is_serving is False  # never served


def test_serve_axon_requires_registration(chain):
    with pytest.raises(HotkeyNotRegistered):
        chain.serve_axon(wallet_of("stranger"), "127.0.0.1", 8091)
    chain.register("miner", "ck")
    chain.serve_axon(wallet_of("miner"), "127.0.0.1", 9000)
    chain.serve_axon(wallet_of("miner"), "127.0.0.1", 9001)  # re-serving updates
    (info,) = chain.neurons()
    assert (info.axon_ip, info.axon_port) == ("127.0.0.1", 9001)


def _subnet(chain: DevnetChain) -> None:
    chain.register("validator", "ck")
    chain.register("miner-a", "ck")
    chain.register("miner-b", "ck")
    chain.add_stake("validator", 1000.0)


def test_set_weights_normalises_and_records_last_update(chain, clock):
    _subnet(chain)
    clock.now_s += 2.0 * 3  # block 3
    ok, message = chain.set_weights(wallet_of("validator"), [1, 2], [3.0, 1.0], version_key=1)
    assert ok, message
    assert chain.weights() == {0: {1: 0.75, 2: 0.25}}
    validator: NeuronInfo = chain.neurons()[0]
    assert validator.last_update == 3
    assert chain.metagraph().W[0].tolist() == [0.0, 0.75, 0.25]


def test_set_weights_rate_limit(chain, clock):
    _subnet(chain)
    assert chain.set_weights(wallet_of("validator"), [1], [1.0], version_key=0)[0]
    clock.now_s += 2.0 * 4  # 4 blocks later: the limit is 5
    ok, message = chain.set_weights(wallet_of("validator"), [2], [1.0], version_key=0)
    assert not ok and "rate limited" in message
    assert chain.weights() == {0: {1: 1.0}}
    clock.now_s += 2.0
    assert chain.set_weights(wallet_of("validator"), [2], [1.0], version_key=0)[0]
    assert chain.weights() == {0: {2: 1.0}}  # replaces, never merges


def test_set_weights_refusals(tmp_path, clock):
    chain = DevnetChain.create(tmp_path / "c.db", clock=clock, weights_version=5)
    _subnet(chain)
    assert chain.set_weights(wallet_of("stranger"), [1], [1.0], 5) == (False, "hotkey stranger is not registered on netuid 1")
    ok, message = chain.set_weights(wallet_of("miner-a"), [2], [1.0], 5)
    assert not ok and "no validator permit" in message
    ok, message = chain.set_weights(wallet_of("validator"), [1], [1.0], 4)
    assert not ok and "version_key" in message
    for uids, weights in (([1, 1], [1.0, 1.0]), ([1], [-1.0]), ([1], [0.0]), ([9], [1.0]), ([1, 2], [1.0])):
        assert chain.set_weights(wallet_of("validator"), uids, weights, 5)[0] is False
    assert chain.weights() == {}
    assert chain.set_weights(wallet_of("validator"), [1], [1.0], 6)[0]  # refusals did not start the rate limit


def test_block_advances_with_injected_time(chain, clock):
    assert chain.block() == 0
    clock.now_s += 2.0 * 10 + 1.9
    assert chain.block() == 10
    assert chain.weights_rate_limit() == 5


def test_full_subnet_replaces_lowest_stake_oldest_non_validator(tmp_path, clock):
    chain = DevnetChain.create(tmp_path / "c.db", clock=clock, max_uids=3)
    _subnet(chain)  # validator (staked, permit), miner-a, miner-b
    chain.add_stake("miner-a", 0.5)  # miner-a gets a permit too, having positive stake
    chain.serve_axon(wallet_of("miner-b"), "127.0.0.1", 7000)
    uid = chain.register("newcomer", "ck-new")
    assert uid == 2 and chain.uid_of("miner-b") is None
    fresh = chain.neurons()[2]
    assert (fresh.hotkey, fresh.coldkey, fresh.stake, fresh.axon_port) == ("newcomer", "ck-new", 0.0, 0)


def test_full_subnet_of_validators_refuses_registration(tmp_path, clock):
    chain = DevnetChain.create(tmp_path / "c.db", clock=clock, max_uids=1)
    chain.register("validator", "ck")
    chain.add_stake("validator", 1.0)
    with pytest.raises(ChainUnavailable, match="full"):
        chain.register("other", "ck")


def test_replace_hotkey_behind_a_uid(chain, clock):
    _subnet(chain)
    assert chain.set_weights(wallet_of("validator"), [1, 2], [1.0, 1.0], 0)[0]
    chain.replace_hotkey(0, "validator-2", "ck2")
    assert chain.uid_of("validator") is None and chain.uid_of("validator-2") == 0
    assert chain.weights() == {}  # the old hotkey's weights went with it
    assert chain.metagraph().hotkeys[0] == "validator-2"
    with pytest.raises(ValueError):
        chain.replace_hotkey(9, "x", "ck")
    with pytest.raises(ValueError):
        chain.replace_hotkey(0, "miner-a", "ck")


def _worker(db_path: str, worker: int, per_worker: int, queue) -> None:
    """Child process: register hotkeys, stake one, set weights, all against one db file."""
    chain = DevnetChain.open(db_path)
    uids = [chain.register(f"w{worker}-{i}", f"ck{worker}") for i in range(per_worker)]
    chain.add_stake(f"w{worker}-0", 10.0 + worker)
    ok, message = chain.set_weights(wallet_of(f"w{worker}-0"), uids, [1.0] * len(uids), 0)
    queue.put((worker, uids, ok, message))


def test_several_processes_share_one_database(tmp_path):
    chain = DevnetChain.create(tmp_path / "shared.db", weights_rate_limit=1000)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers, per_worker = 4, 12
    processes = [context.Process(target=_worker, args=(str(chain.db_path), w, per_worker, queue)) for w in range(workers)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    all_uids = sorted(uid for _, uids, _, _ in results for uid in uids)
    assert all_uids == list(range(workers * per_worker))  # no uid handed out twice
    assert all(ok for _, _, ok, _ in results), results
    weights = chain.weights()
    assert len(weights) == workers
    for worker, uids, _, _ in results:
        assert sorted(weights[uids[0]]) == sorted(uids)
        assert sum(weights[uids[0]].values()) == pytest.approx(1.0)
