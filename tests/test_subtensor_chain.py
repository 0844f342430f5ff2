"""The real-subtensor adapter connects lazily, turns every transport/SDK failure into
ChainUnavailable (quickly), and speaks the same contract as the devnet; the factory
picks between them from bittensor-style flags."""

import argparse
import socket
import time
from types import SimpleNamespace

import bittensor as bt
import numpy as np
import pytest
from bittensor.core.types import ExtrinsicResponse

from neurons.chain import ChainAdapter, DevnetChain, HotkeyNotRegistered, SubtensorChain, add_chain_args, chain_from_config
from reward.errors import ChainUnavailable


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeSubtensor:
    """Stands in for ``bt.Subtensor`` at the network edge; records calls."""

    def __init__(self, network: str):
        self.network = network
        self.calls: list[tuple] = []
        self.fail_next: Exception | None = None
        self.closed = False

    def _record(self, *call):
        self.calls.append(call)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    def get_current_block(self) -> int:
        self._record("block")
        return 1234

    def get_uid_for_hotkey_on_subnet(self, hotkey, netuid):
        self._record("uid", hotkey, netuid)
        return {"known": 3}.get(hotkey)

    def weights_rate_limit(self, netuid):
        self._record("rate", netuid)
        return None if netuid == 99 else 100

    def min_allowed_weights(self, netuid):
        self._record("min_allowed_weights", netuid)
        return 8

    def max_weight_limit(self, netuid):
        self._record("max_weight_limit", netuid)
        return 0.25

    def weights(self, netuid):
        self._record("weights", netuid)
        return [(0, [(1, 30000), (2, 10000)]), (5, [])]

    def set_weights(self, **kwargs):
        self._record("set_weights", kwargs)
        return ExtrinsicResponse(False, "too soon")

    def metagraph(self, netuid):
        self._record("metagraph", netuid)
        graph = bt.Metagraph(netuid, network="local", sync=False)
        graph.n = np.array(2)
        graph.uids = np.array([0, 1])
        graph.stake = np.array([10.0, 0.0], dtype=np.float32)
        graph.validator_permit = np.array([True, False])
        graph.last_update = np.array([7, 0])
        graph.axons = [
            bt.AxonInfo(version=1, ip="10.0.0.1", port=8091, ip_type=4, hotkey="hk0", coldkey="ck0"),
            bt.AxonInfo(version=1, ip="0.0.0.0", port=0, ip_type=4, hotkey="hk1", coldkey="ck1"),
        ]
        return graph

    def close(self):
        self.closed = True


@pytest.fixture
def fakes() -> list[FakeSubtensor]:
    return []


@pytest.fixture
def chain(fakes) -> SubtensorChain:
    def factory(network: str) -> FakeSubtensor:
        fakes.append(FakeSubtensor(network))
        return fakes[-1]

    return SubtensorChain("test", 42, subtensor_factory=factory)


def wallet_of(hotkey: str) -> SimpleNamespace:
    return SimpleNamespace(hotkey=SimpleNamespace(ss58_address=hotkey))


def test_constructing_does_not_connect(chain, fakes):
    assert isinstance(chain, ChainAdapter)
    assert not chain.connected and fakes == []
    assert chain.block() == 1234
    assert chain.connected and [f.network for f in fakes] == ["test"]
    chain.block()
    assert len(fakes) == 1  # one connection, reused


def test_unreachable_endpoint_raises_chain_unavailable_quickly():
    chain = SubtensorChain(f"ws://127.0.0.1:{closed_port()}", 1)  # real bt.Subtensor, nothing listening
    assert not chain.connected
    started = time.monotonic()
    with pytest.raises(ChainUnavailable, match="unavailable"):
        chain.block()
    assert time.monotonic() - started < 10.0
    assert not chain.connected


def test_failures_are_translated_and_the_next_call_reconnects(chain, fakes):
    chain.block()
    fakes[0].fail_next = ConnectionResetError("socket closed")
    with pytest.raises(ChainUnavailable, match="ConnectionResetError"):
        chain.uid_of("known")
    assert fakes[0].closed and not chain.connected
    assert chain.uid_of("known") == 3 and len(fakes) == 2


def test_set_weights_unpacks_the_extrinsic_response(chain, fakes):
    ok, message = chain.set_weights(wallet_of("known"), [1, 2], [0.5, 0.5], version_key=1010)
    assert (ok, message) == (False, "too soon")
    (_, kwargs), = [c for c in fakes[0].calls if c[0] == "set_weights"]
    assert kwargs["netuid"] == 42 and kwargs["version_key"] == 1010 and kwargs["uids"] == [1, 2]


def test_reads(chain):
    assert chain.weights_rate_limit() == 100
    assert chain.weights() == {0: {1: 0.75, 2: 0.25}}
    assert chain.uid_of("stranger") is None
    neurons = chain.neurons()
    assert [(n.uid, n.hotkey, n.stake, n.validator_permit, n.axon_port, n.last_update) for n in neurons] == [
        (0, "hk0", 10.0, True, 8091, 7),
        (1, "hk1", 0.0, False, 0, 0),
    ]


def test_subnet_weight_limits_reach_process_weights(chain):
    """The validator's weights must obey the chain's min_allowed_weights / max_weight_limit."""
    from neurons.weights import limits_of

    limits = limits_of(chain)
    assert limits.min_allowed_weights(42) == 8
    assert limits.max_weight_limit(42) == pytest.approx(0.25)


def test_missing_subnet_is_chain_unavailable(fakes):
    chain = SubtensorChain("test", 99, subtensor_factory=lambda n: FakeSubtensor(n))
    with pytest.raises(ChainUnavailable, match="no subnet 99"):
        chain.weights_rate_limit()


def test_serve_axon_checks_registration_first(chain):
    with pytest.raises(HotkeyNotRegistered):
        chain.serve_axon(wallet_of("stranger"), "127.0.0.1", 8091)


# -- the factory ----------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--netuid", type=int, default=None)
    bt.Subtensor.add_args(parser)
    add_chain_args(parser)
    add_chain_args(parser)  # idempotent, like bittensor's add_args
    return parser.parse_args(argv)


def test_factory_selects_devnet(tmp_path):
    db = tmp_path / "chain.db"
    DevnetChain.create(db, netuid=5)
    chain = chain_from_config(parse(["--netuid", "5", "--subtensor.network", "devnet", "--devnet.db", str(db)]))
    assert isinstance(chain, DevnetChain) and chain.netuid == 5


def test_factory_devnet_errors_are_one_sentence(tmp_path):
    with pytest.raises(ChainUnavailable, match="needs --devnet.db"):
        chain_from_config(parse(["--netuid", "5", "--subtensor.network", "devnet"]))
    with pytest.raises(ChainUnavailable, match="does not exist"):
        chain_from_config(parse(["--subtensor.network", "devnet", "--devnet.db", str(tmp_path / "missing.db")]))
    DevnetChain.create(tmp_path / "c.db", netuid=5)
    with pytest.raises(ChainUnavailable, match="holds netuid 5"):
        chain_from_config(parse(["--netuid", "6", "--subtensor.network", "devnet", "--devnet.db", str(tmp_path / "c.db")]))


def test_factory_selects_subtensor_without_connecting():
    chain = chain_from_config(parse(["--netuid", "17", "--subtensor.network", "test"]))
    assert isinstance(chain, SubtensorChain) and not chain.connected
    assert (chain.network, chain.netuid) == ("test", 17)
    custom = chain_from_config(parse(["--netuid", "1", "--subtensor.chain_endpoint", "ws://127.0.0.1:9944"]))
    assert custom.network == "ws://127.0.0.1:9944"


def test_factory_reads_nested_bittensor_configs(tmp_path):
    DevnetChain.create(tmp_path / "c.db", netuid=2)
    config = bt.Config()  # nested munch, as the neurons build it
    config.netuid = 2
    config.subtensor.network = "devnet"
    config.devnet = bt.Config(default={"db": str(tmp_path / "c.db")})
    assert isinstance(chain_from_config(config), DevnetChain)
