"""The devnet enforces the subnet's rules the way subtensor does: dense uids, permits by
stake, rate-limited and versioned weights conformed by the same rules as bittensor 11's
SetWeights (so it stores what subtensor would), a block clock, uid replacement when full,
and one database shared safely by several processes. It never imports bittensor; the
wallet helpers and ``text3d devnet`` work with real bittensor 11 wallets."""

import multiprocessing
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import bittensor
import pytest

from text3d.chain import ChainAdapter, DevnetChain, HotkeyNotRegistered, Metagraph, NeuronInfo, open_chain
from text3d.chain.weight_rules import U16_MAX
from text3d.cli.main import main as text3d
from text3d.ops.registration import ensure_wallet, open_registered
from text3d.validator.weights import LINEAR, weights_for_chain
from text3d.protocol.errors import EXIT_CONFIG, EXIT_FAILURE, ChainUnavailable, ConfigError
from tests.test_weight_rules import sdk_set_weights


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
    chain.close()  # a no-op: every call has its own connection
    assert chain.block() == 0


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


def test_metagraph_fields(chain, clock):
    chain.register("validator", "ck-v")
    chain.register("miner", "ck-m")
    chain.add_stake("validator", 100.0)
    chain.serve_axon(wallet_of("miner"), "127.0.0.1", 8091)
    clock.now_s += 2.0 * 4
    graph = chain.metagraph()
    assert isinstance(graph, Metagraph)
    assert (graph.netuid, graph.block, graph.n) == (7, 4, 2)
    assert graph.hotkeys == ("validator", "miner")
    assert [n.coldkey for n in graph.neurons] == ["ck-v", "ck-m"]
    assert [n.stake for n in graph.neurons] == [100.0, 0.0]
    assert [n.validator_permit for n in graph.neurons] == [True, False]
    miner = graph.neuron(1)
    assert (miner.axon_ip, miner.axon_port, miner.is_serving) == ("127.0.0.1", 8091, True)
    assert graph.neuron(0).is_serving is False  # never served: 0.0.0.0:0
    assert graph.neurons == tuple(chain.neurons())


def test_metagraph_lookups_check_membership_before_indexing(chain):
    chain.register("validator", "ck")
    chain.add_stake("validator", 5.0)
    graph = chain.metagraph()
    assert graph.uid_of("validator") == 0 and graph.stake_of("validator") == 5.0
    assert graph.uid_of("stranger") is None and graph.stake_of("stranger") == 0.0
    with pytest.raises(KeyError):
        graph.neuron(1)
    with pytest.raises(KeyError):
        graph.neuron(-1)  # never wraps around to the last neuron
    with pytest.raises(ValueError, match="ordered by uid"):
        Metagraph(7, 0, (NeuronInfo(1, "hk", "ck", 0.0, False, "0.0.0.0", 0, 0),))


def test_a_served_address_must_be_numeric(chain):
    chain.register("miner", "ck")
    for ip, port in (("miner.example.com", 8091), ("127.0.0.1", 0), ("127.0.0.1", 70000)):
        with pytest.raises(ConfigError):
            chain.serve_axon(wallet_of("miner"), ip, port)
    chain.serve_axon(wallet_of("miner"), "::1", 8091)
    assert chain.metagraph().neuron(0).is_serving


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


def test_set_weights_stores_u16_and_reads_normalised(chain, clock):
    _subnet(chain)
    clock.now_s += 2.0 * 3  # block 3
    ok, message = chain.set_weights(wallet_of("validator"), [1, 2], [3.0, 1.0], version_key=1)
    assert ok, message
    assert _stored(chain) == {0: {1: 65535, 2: 21845}}  # max-upscaled u16, as subtensor stores them
    assert chain.weights() == {0: {1: 0.75, 2: 0.25}}
    validator: NeuronInfo = chain.neurons()[0]
    assert validator.last_update == 3


def _stored(chain: DevnetChain) -> dict[int, dict[int, int]]:
    """The raw weights table (u16 values), read straight from the file."""
    with sqlite3.connect(chain.db_path) as conn:
        rows = conn.execute("SELECT validator_uid, miner_uid, weight FROM weights").fetchall()
    table: dict[int, dict[int, int]] = {}
    for validator_uid, miner_uid, value in rows:
        table.setdefault(validator_uid, {})[miner_uid] = value
    return table


def _big_subnet(tmp_path, clock, miners: int, **params) -> DevnetChain:
    chain = DevnetChain.create(tmp_path / "big.db", clock=clock, **params)
    chain.register("validator", "ck")
    chain.add_stake("validator", 1000.0)
    for i in range(miners):
        chain.register(f"miner-{i}", "ck")
    return chain


def test_max_weight_limit_clips_and_redistributes(tmp_path, clock):
    chain = _big_subnet(tmp_path, clock, 3, max_weight_limit=0.4)
    assert chain.max_weight_limit() == 0.4
    # shares 0.5 0.4 0.1 -> both top shares lowered to 0.4, the clipped mass moves to uid 3 (see test_weight_rules)
    assert chain.set_weights(wallet_of("validator"), [1, 2, 3], [5.0, 4.0, 1.0], 0)[0]
    assert _stored(chain) == {0: {1: 65535, 2: 65535, 3: 32768}}
    assert chain.weights()[0] == pytest.approx({1: 0.4, 2: 0.4, 3: 0.2}, abs=1e-4)


def test_min_allowed_weights_refuses_without_starting_the_rate_limit(tmp_path, clock):
    chain = _big_subnet(tmp_path, clock, 4, min_allowed_weights=3, weights_rate_limit=50)
    assert chain.min_allowed_weights() == 3
    ok, message = chain.set_weights(wallet_of("validator"), [1, 2, 3, 4], [1.0, 1.0, 0.0, 0.0], 0)
    assert not ok and "at least 3 non-zero weights" in message
    assert chain.weights() == {}
    assert chain.set_weights(wallet_of("validator"), [1, 2, 3, 4], [1.0, 1.0, 1.0, 0.0], 0)[0]


def test_a_lone_self_weight_is_exempt_from_the_minimum(tmp_path, clock):
    chain = _big_subnet(tmp_path, clock, 4, min_allowed_weights=3)
    assert chain.set_weights(wallet_of("validator"), [0], [1.0], 0) == (True, "weights set at block 0")
    assert chain.weights() == {0: {0: 1.0}}


@pytest.mark.parametrize("limit_u16", [16384, U16_MAX])  # a quarter; no limit
def test_the_devnet_stores_what_subtensors_set_weights_would_submit(tmp_path, clock, limit_u16):
    """Same averages, same hyperparameters: the devnet's row equals the real SDK's u16
    vector, and the devnet refuses exactly what the SDK refuses."""
    rng = random.Random(limit_u16)
    chain = _big_subnet(tmp_path, clock, 24, max_weight_limit=limit_u16 / U16_MAX, min_allowed_weights=4, weights_rate_limit=0)
    outcomes = []
    for _ in range(30):
        averages = {uid: rng.random() ** 4 for uid in rng.sample(range(1, 25), rng.choice((1, 2, 3, 6, 24)))}
        uids, weights = weights_for_chain(averages, 25, LINEAR)
        try:
            expected = sdk_set_weights(uids.tolist(), weights.tolist(), self_uid=0, max_weight_limit_u16=limit_u16, min_allowed_weights=4)
        except bittensor.BittensorError as refusal:  # the SDK refuses: so must the devnet
            assert chain.set_weights(wallet_of("validator"), uids, weights, 0)[0] is False, refusal
            outcomes.append("refused")
            continue
        ok, message = chain.set_weights(wallet_of("validator"), uids, weights, 0)
        assert ok, message
        assert _stored(chain)[0] == dict(zip(*expected))
        outcomes.append("set")
    assert "set" in outcomes
    if limit_u16 == U16_MAX:  # without a clip, fewer than 4 scored miners is too few
        assert "refused" in outcomes


def test_databases_from_before_the_weight_limits_read_their_defaults(chain):
    with sqlite3.connect(chain.db_path) as conn:
        conn.execute("ALTER TABLE subnet DROP COLUMN max_weight_limit")
        conn.execute("ALTER TABLE subnet DROP COLUMN min_allowed_weights")
    params = DevnetChain.open(chain.db_path).params()
    assert (params.max_weight_limit, params.min_allowed_weights, params.weights_rate_limit) == (1.0, 1, 5)
    _subnet(chain)
    assert chain.set_weights(wallet_of("validator"), [1, 2], [1.0, 1.0], 0)[0]


def test_a_file_that_is_no_devnet_is_chain_unavailable(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ChainUnavailable, match="junk.db"):
        DevnetChain.open(junk)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(ChainUnavailable):
        DevnetChain.open(empty)


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
    cases = (([1, 1], [1.0, 1.0]), ([1], [-1.0]), ([1], [float("nan")]), ([1], [0.0]), ([9], [1.0]), ([1, 2], [1.0]))
    for uids, weights in cases:
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
    assert chain.metagraph().uid_of("validator") is None
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


def test_the_devnet_never_imports_bittensor(tmp_path):
    code = (
        "import sys; from text3d.chain import open_chain, DevnetChain; "
        f"DevnetChain.create({str(tmp_path / 'c.db')!r}, netuid=2); "
        f"chain = open_chain('devnet', 2, devnet_db={str(tmp_path / 'c.db')!r}); chain.metagraph(); "
        "assert 'bittensor' not in sys.modules, 'bittensor imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# -- open_chain --------------------------------------------------------------------------


def test_open_chain_selects_the_devnet(tmp_path, clock):
    DevnetChain.create(tmp_path / "c.db", netuid=5)
    chain = open_chain("devnet", 5, devnet_db=tmp_path / "c.db", clock=clock)
    assert isinstance(chain, DevnetChain) and chain.netuid == 5
    assert isinstance(chain, ChainAdapter)


def test_open_chain_devnet_errors_are_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="needs --devnet.db"):
        open_chain("devnet", 5)
    with pytest.raises(ChainUnavailable, match="does not exist"):
        open_chain("devnet", 5, devnet_db=tmp_path / "missing.db")
    DevnetChain.create(tmp_path / "c.db", netuid=5)
    with pytest.raises(ConfigError, match="holds netuid 5, not --netuid 6"):
        open_chain("devnet", 6, devnet_db=tmp_path / "c.db")
    with pytest.raises(ConfigError, match="chain_endpoint"):
        open_chain("devnet", 5, devnet_db=tmp_path / "c.db", chain_endpoint="ws://127.0.0.1:9944")


# -- wallets: open_registered and `text3d devnet` -----------------------------------------------


def test_open_registered_loads_a_registered_v11_wallet(tmp_path, chain):
    created = ensure_wallet("miner", "default", tmp_path / "wallets")
    chain.register(created.hotkey.ss58_address, created.coldkeypub.ss58_address)
    wallet = open_registered("miner", "default", tmp_path / "wallets", chain)
    assert wallet.hotkey.ss58_address == created.hotkey.ss58_address
    assert ensure_wallet("miner", "default", tmp_path / "wallets").hotkey.ss58_address == created.hotkey.ss58_address


def test_open_registered_refuses_an_unregistered_hotkey(tmp_path, chain):
    wallet = ensure_wallet("stranger", "hk", tmp_path / "wallets")
    with pytest.raises(HotkeyNotRegistered, match="not registered on netuid 7") as caught:
        open_registered("stranger", "hk", tmp_path / "wallets", chain)
    assert wallet.hotkey.ss58_address in str(caught.value)
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, LookupError)


def test_open_registered_names_the_fix_for_a_missing_or_broken_wallet(tmp_path, chain):
    with pytest.raises(ConfigError) as caught:
        open_registered("nobody", "default", tmp_path / "wallets", chain)
    message = str(caught.value)
    assert "text3d devnet register --create-wallet" in message and "btcli wallet create -w nobody" in message
    ensure_wallet("broken", "default", tmp_path / "wallets")
    (tmp_path / "wallets" / "broken" / "hotkeys" / "default").write_text("{not json")
    with pytest.raises(ConfigError, match="no readable hotkey"):
        open_registered("broken", "default", tmp_path / "wallets", chain)


def test_devnet_command_creates_registers_stakes_and_shows(tmp_path, capsys):
    db, wallets = str(tmp_path / "chain.db"), str(tmp_path / "wallets")
    assert text3d(["devnet", "init", "--devnet.db", db, "--netuid", "3", "--max-weight-limit", "0.5",
                   "--min-allowed-weights", "2", "--weights-rate-limit", "7"]) == 0
    params = DevnetChain.open(db).params()
    assert (params.netuid, params.max_weight_limit, params.min_allowed_weights, params.weights_rate_limit) == (3, 0.5, 2, 7)
    flags = ["--devnet.db", db, "--wallet.name", "validator", "--wallet.path", wallets]
    assert text3d(["devnet", "register", *flags]) == EXIT_CONFIG  # no wallet yet
    assert "--create-wallet" in capsys.readouterr().err
    assert text3d(["devnet", "register", *flags, "--create-wallet"]) == 0
    assert text3d(["devnet", "register", *flags, "--create-wallet"]) == 0  # idempotent: same keys, same uid
    assert text3d(["devnet", "stake", *flags, "--amount", "12.5"]) == 0
    hotkey = open_registered("validator", "default", wallets, DevnetChain.open(db)).hotkey.ss58_address
    assert [(n.uid, n.hotkey, n.stake) for n in DevnetChain.open(db).neurons()] == [(0, hotkey, 12.5)]
    capsys.readouterr()
    assert text3d(["devnet", "show", "--devnet.db", db]) == 0
    assert "12.5" in capsys.readouterr().out


def test_devnet_command_exit_codes(tmp_path, capsys):
    db = str(tmp_path / "chain.db")
    assert text3d(["devnet", "init", "--devnet.db", db]) == 0
    assert text3d(["devnet", "init", "--devnet.db", db]) == EXIT_CONFIG  # exists: pass --overwrite
    assert text3d(["devnet", "init", "--devnet.db", str(tmp_path / "x.db"), "--max-weight-limit", "2"]) == EXIT_CONFIG
    assert text3d(["devnet", "show", "--devnet.db", str(tmp_path / "missing.db")]) == EXIT_FAILURE
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("text3d devnet: ") for line in errors)
