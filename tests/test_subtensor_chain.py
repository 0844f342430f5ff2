"""The bittensor 11 adapter keeps one lazily connected Client on its own loop thread,
maps the SDK's typed metagraph onto the project's, sends ServeAxon/SetWeights intents
with the project's version, and turns every SDK or transport failure into
ChainUnavailable (quickly) while the chain's refusals stay ``(False, reason)``.
The fake client stands at the chain edge and answers with the SDK's own types."""

import asyncio
import threading
import time
from types import SimpleNamespace

import bittensor
import pytest
from bittensor.balance import Balance
from bittensor.metagraph import Metagraph as SdkMetagraph
from bittensor.metagraph import MetagraphNeuron
from bittensor.result import ErrorCode

from text3d.chain import ChainAdapter, HotkeyNotRegistered, Metagraph, SubtensorChain, open_chain
from text3d.chain.subtensor import parse_axon
from text3d.protocol.errors import ChainUnavailable, ConfigError
from tests.loopback import free_socket
from text3d.ops.net import free_port
from text3d.protocol.version import SPEC_VERSION

NETUID = 42


def sdk_neuron(uid: int, hotkey: str, *, stake: float = 0.0, permit: bool = False, axon: str | None = None,
               last_update: int = 0) -> MetagraphNeuron:
    zero = Balance.from_rao(0, NETUID)
    total = Balance.from_alpha(stake, NETUID) if stake else zero
    return MetagraphNeuron(
        uid=uid, hotkey=hotkey, coldkey=f"ck{uid}", active=True, validator_permit=permit, last_update=last_update,
        block_at_registration=0, rank=0.0, trust=0.0, consensus=0.0, incentive=0.0, dividends=0.0,
        pruning_score=0.0, emission=zero, alpha_stake=total, tao_stake=Balance.from_rao(0), total_stake=total,
        axon=axon, identity=None, commitment=None,
    )


def sdk_metagraph(neurons: list[MetagraphNeuron], block: int = 1234) -> SdkMetagraph:
    return SdkMetagraph(
        netuid=NETUID, mechid=0, name="text3d", symbol="t", block=block, tempo=360, last_step=0,
        blocks_since_last_step=0, owner_hotkey="owner", owner_coldkey="owner-ck", network_registered_at=0,
        num_uids=len(neurons), max_uids=256, price=None, moving_price=None, identity=None, neurons=neurons,
        commitments={}, unregistered_commitments={}, raw={},
    )


class FakeClient:
    """Stands in for ``bittensor.Client`` at the network edge: records calls, can fail or hang."""

    def __init__(self, network: str):
        self.network = network
        self.calls: list[tuple] = []
        self.fail_next: BaseException | None = None
        self.hang = False
        self.connected = self.closed = False
        self.loop_threads: set[str] = set()
        self.graph: SdkMetagraph | None = sdk_metagraph([
            sdk_neuron(0, "hk0", stake=10.5, permit=True, axon="10.0.0.1:8091", last_update=7),
            sdk_neuron(1, "hk1"),
            sdk_neuron(2, "hk2", axon="[2001:db8::1]:9000"),
        ])
        self.execute_result: bittensor.ExtrinsicResult | BaseException = bittensor.ExtrinsicResult(True, "included")
        self.hotkey_uids = {"known": 3}
        self.subnets = SimpleNamespace(metagraph=self._answer("metagraph", lambda netuid, commitments=True: self.graph))
        self.neurons = SimpleNamespace(uid=self._answer("uid", lambda hotkey, netuid: self.hotkey_uids.get(hotkey)))
        self.hyperparameters = SimpleNamespace(
            weights_rate_limit=self._answer("weights_rate_limit", lambda netuid: 100),
            min_allowed_weights=self._answer("min_allowed_weights", lambda netuid: 8),
            max_weight_limit=self._answer("max_weight_limit", lambda netuid: 16384),
        )
        self.weights = SimpleNamespace(weights=self._answer("weights", lambda netuid: {0: {1: 0.75, 2: 0.25}, 5: {}}))
        self.block = self._answer("block", lambda: 1234)

    def _answer(self, name, compute):
        async def method(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            self.loop_threads.add(threading.current_thread().name)
            assert self.connected, "used before connect()"
            if self.hang:
                await asyncio.sleep(3600)
            if self.fail_next is not None:
                error, self.fail_next = self.fail_next, None
                raise error
            return compute(*args, **kwargs)

        return method

    async def connect(self):
        self.connected = True
        return self

    async def close(self):
        self.closed = True

    async def execute(self, intent, wallet, **kwargs):
        self.calls.append(("execute", (intent, wallet), kwargs))
        if isinstance(self.execute_result, BaseException):
            raise self.execute_result
        return self.execute_result


@pytest.fixture
def fakes() -> list[FakeClient]:
    return []


@pytest.fixture
def chain(fakes):
    def factory(network: str) -> FakeClient:
        fakes.append(FakeClient(network))
        return fakes[-1]

    adapter = SubtensorChain("test", NETUID, client_factory=factory, read_timeout_s=5.0, write_timeout_s=5.0)
    yield adapter
    adapter.close()


def wallet_of(hotkey: str) -> SimpleNamespace:
    return SimpleNamespace(hotkey=SimpleNamespace(ss58_address=hotkey))


# -- connection ---------------------------------------------------------------------------


def test_constructing_does_not_connect_and_one_client_is_reused(chain, fakes):
    assert isinstance(chain, ChainAdapter)
    assert not chain.connected and fakes == []
    assert chain.block() == 1234
    assert chain.connected and [f.network for f in fakes] == ["test"]
    chain.block()
    chain.uid_of("known")
    assert len(fakes) == 1  # one connection, reused
    assert fakes[0].loop_threads == {f"subtensor-netuid{NETUID}"}  # every call ran on the adapter's loop thread


def test_concurrent_callers_share_one_connection(chain, fakes):
    threads = [threading.Thread(target=chain.block) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fakes) == 1 and len([c for c in fakes[0].calls if c[0] == "block"]) == 8


def test_unreachable_endpoint_raises_chain_unavailable_quickly():
    chain = SubtensorChain(f"ws://127.0.0.1:{free_port()}", 1)  # the real bittensor.Client, nothing listening
    try:
        with pytest.raises(ChainUnavailable, match="unavailable"):
            chain.block()
        assert not chain.connected
    finally:
        chain.close()


def test_a_silent_endpoint_times_out():
    with free_socket() as server:  # accepts TCP, never answers the websocket handshake
        chain = SubtensorChain(f"ws://127.0.0.1:{server.getsockname()[1]}", 1, read_timeout_s=0.5)
        try:
            with pytest.raises(ChainUnavailable):
                chain.block()
            assert not chain.connected
        finally:
            chain.close()


def test_transport_failures_drop_the_connection_and_the_next_call_reconnects(chain, fakes):
    chain.block()
    fakes[0].fail_next = ConnectionResetError("socket closed")
    with pytest.raises(ChainUnavailable, match="ConnectionResetError"):
        chain.uid_of("known")
    assert fakes[0].closed and not chain.connected
    assert chain.uid_of("known") == 3 and len(fakes) == 2
    fakes[1].fail_next = bittensor.RpcConnectionError("could not connect to any endpoint")
    with pytest.raises(ChainUnavailable, match="RpcConnectionError"):
        chain.block()
    assert fakes[1].closed and chain.block() == 1234 and len(fakes) == 3


def test_a_chain_error_on_a_read_is_unavailable_but_keeps_the_connection(chain, fakes):
    chain.block()
    fakes[0].fail_next = bittensor.ChainError("runtime call failed")
    with pytest.raises(ChainUnavailable, match="runtime call failed"):
        chain.metagraph()
    assert chain.connected and not fakes[0].closed


def test_a_hung_call_times_out_and_is_replaced(fakes):
    def factory(network):
        fakes.append(FakeClient(network))
        return fakes[-1]

    chain = SubtensorChain("test", NETUID, client_factory=factory, read_timeout_s=0.3)
    try:
        chain.block()
        fakes[0].hang = True
        with pytest.raises(ChainUnavailable, match="did not answer within 0.3 s"):
            chain.block()
        deadline = time.monotonic() + 5.0
        while not fakes[0].closed and time.monotonic() < deadline:  # the cancelled call drops its connection
            time.sleep(0.01)
        assert fakes[0].closed
        assert chain.block() == 1234 and len(fakes) == 2
    finally:
        chain.close()


def test_close_stops_the_thread_and_a_later_call_starts_again(chain, fakes):
    chain.block()
    chain.close()
    assert fakes[0].closed and not chain.connected
    assert f"subtensor-netuid{NETUID}" not in {t.name for t in threading.enumerate()}
    chain.close()  # idempotent
    assert chain.block() == 1234 and len(fakes) == 2


def test_an_unknown_network_name_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown subtensor network 'finny'"):
        SubtensorChain("finny", 1)


# -- reads ------------------------------------------------------------------------------


def test_metagraph_maps_the_sdks_neurons(chain):
    graph = chain.metagraph()
    assert isinstance(graph, Metagraph)
    assert (graph.netuid, graph.block, graph.n, graph.hotkeys) == (NETUID, 1234, 3, ("hk0", "hk1", "hk2"))
    first, second, third = graph.neurons
    assert (first.stake, first.validator_permit, first.last_update, first.coldkey) == (10.5, True, 7, "ck0")
    assert (first.axon_ip, first.axon_port, first.is_serving) == ("10.0.0.1", 8091, True)
    assert (second.axon_ip, second.axon_port, second.is_serving, second.stake) == ("0.0.0.0", 0, False, 0.0)
    assert (third.axon_ip, third.axon_port, third.is_serving) == ("2001:db8::1", 9000, True)
    assert graph.stake_of("hk0") == 10.5 and graph.uid_of("nobody") is None
    assert chain.neurons() == list(graph.neurons)


def test_metagraph_asks_without_commitments(chain, fakes):
    chain.metagraph()
    ((_, args, kwargs),) = [c for c in fakes[0].calls if c[0] == "metagraph"]
    assert args == (NETUID,) and kwargs == {"commitments": False}


def test_missing_subnet_or_undecodable_metagraph_is_chain_unavailable(chain, fakes):
    chain.block()
    fakes[0].graph = None
    with pytest.raises(ChainUnavailable, match=f"no subnet {NETUID}"):
        chain.metagraph()
    fakes[0].graph = sdk_metagraph([sdk_neuron(0, "hk0", axon="garbage")])
    with pytest.raises(ChainUnavailable, match="does not decode"):
        chain.metagraph()


def test_answers_of_an_unexpected_shape_are_chain_unavailable(chain, fakes):
    chain.block()
    fakes[0].block = fakes[0]._answer("block", lambda: None)
    fakes[0].weights.weights = fakes[0]._answer("weights", lambda netuid: [(0, [(1, 3)])])
    with pytest.raises(ChainUnavailable, match="a block number that does not decode"):
        chain.block()
    with pytest.raises(ChainUnavailable, match="weights that does not decode"):
        chain.weights()


def test_hyperparameters_and_weights(chain):
    assert chain.weights_rate_limit() == 100
    assert chain.min_allowed_weights() == 8
    assert chain.max_weight_limit() == pytest.approx(16384 / 65535)
    assert chain.weights() == {0: {1: 0.75, 2: 0.25}}  # validators without weights are left out
    assert chain.uid_of("known") == 3 and chain.uid_of("stranger") is None


def test_max_weight_limit_is_a_fraction_in_range(fakes):
    for raw, expected in ((65535, 1.0), (0, 1 / 65535), (70000, 1.0)):
        client = FakeClient("test")
        client.hyperparameters.max_weight_limit = client._answer("max_weight_limit", lambda netuid, raw=raw: raw)
        with SubtensorChain("test", NETUID, client_factory=lambda network, c=client: c) as chain:
            assert chain.max_weight_limit() == pytest.approx(expected)


@pytest.mark.parametrize(
    "endpoint, expected",
    [("1.2.3.4:8091", ("1.2.3.4", 8091)), ("[::1]:9000", ("::1", 9000)), (None, ("0.0.0.0", 0)), ("", ("0.0.0.0", 0))],
)
def test_parse_axon(endpoint, expected):
    assert parse_axon(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["1.2.3.4", "[::1]9000", ":80", "1.2.3.4:http"])
def test_parse_axon_refuses_junk(endpoint):
    with pytest.raises(ValueError):
        parse_axon(endpoint)


# -- writes -----------------------------------------------------------------------------


def executed(fake: FakeClient):
    ((_, (intent, wallet), kwargs),) = [c for c in fake.calls if c[0] == "execute"]
    return intent, wallet, kwargs


def test_set_weights_sends_a_set_weights_intent_with_the_version_key(chain, fakes):
    wallet = wallet_of("known")
    assert chain.set_weights(wallet, [1, 2], [0.75, 0.25], version_key=SPEC_VERSION) == (True, "included")
    intent, used_wallet, kwargs = executed(fakes[0])
    assert isinstance(intent, bittensor.SetWeights)
    assert (intent.netuid, intent.uids, intent.weights, intent.version_key) == (NETUID, [1, 2], [0.75, 0.25], SPEC_VERSION)
    assert used_wallet is wallet and kwargs == {"wait_for_finalization": False}


def test_set_weights_refusals_are_false_with_the_reason(chain, fakes):
    chain.block()
    fakes[0].execute_result = bittensor.ExtrinsicResult(
        False, "", error=bittensor.ChainError("NeuronNoValidatorPermit", code=ErrorCode.NOT_AUTHORIZED)
    )
    assert chain.set_weights(wallet_of("known"), [1], [1.0], 1) == (False, "NeuronNoValidatorPermit (not_authorized)")
    fakes[0].execute_result = bittensor.ChainError("retry in ~3 blocks", code=ErrorCode.RATE_LIMITED)  # the preflight
    assert chain.set_weights(wallet_of("known"), [1], [1.0], 1) == (False, "retry in ~3 blocks (rate_limited)")
    fakes[0].execute_result = bittensor.ChainError("not registered", code=ErrorCode.NOT_REGISTERED)
    assert chain.set_weights(wallet_of("stranger"), [1], [1.0], 1) == (False, "not registered (not_registered)")
    fakes[0].execute_result = bittensor.BittensorError("All weights are zero; nothing to set.")  # the SDK's conform
    assert chain.set_weights(wallet_of("known"), [1], [0.0], 1) == (False, "All weights are zero; nothing to set.")
    assert chain.connected and not fakes[0].closed  # refusals say nothing against the connection


def test_set_weights_refuses_duplicate_uids_before_the_chain(chain, fakes):
    ok, message = chain.set_weights(wallet_of("known"), [1, 1], [0.5, 0.5], 1)
    assert not ok and "Duplicate UIDs" in message
    assert fakes == []


def test_set_weights_transport_failure_is_chain_unavailable(chain, fakes):
    chain.block()
    fakes[0].execute_result = bittensor.RpcConnectionError("connection lost")
    with pytest.raises(ChainUnavailable, match="could not set weights"):
        chain.set_weights(wallet_of("known"), [1], [1.0], 1)
    assert fakes[0].closed
    chain.block()  # reconnects
    fakes[1].execute_result = OSError("network unreachable")
    with pytest.raises(ChainUnavailable, match="OSError"):
        chain.set_weights(wallet_of("known"), [1], [1.0], 1)
    assert fakes[1].closed and not chain.connected


def test_serve_axon_sends_serve_axon_with_the_spec_version(chain, fakes):
    chain.serve_axon(wallet_of("known"), "203.0.113.7", 8091)
    intent, _, kwargs = executed(fakes[0])
    assert isinstance(intent, bittensor.ServeAxon)
    assert (intent.netuid, intent.ip, intent.port, intent.protocol, intent.version) == (NETUID, "203.0.113.7", 8091, 4, SPEC_VERSION)
    assert kwargs == {"wait_for_finalization": False}


def test_serve_axon_checks_registration_first(chain, fakes):
    with pytest.raises(HotkeyNotRegistered, match=f"netuid {NETUID}"):
        chain.serve_axon(wallet_of("stranger"), "127.0.0.1", 8091)
    assert not [c for c in fakes[0].calls if c[0] == "execute"]


def test_serve_axon_failures(chain, fakes):
    chain.block()
    fakes[0].execute_result = bittensor.ExtrinsicResult(
        False, "HotKeyNotRegisteredInNetwork", error=bittensor.ChainError("gone", code=ErrorCode.NOT_REGISTERED)
    )
    with pytest.raises(HotkeyNotRegistered):  # deregistered between the check and the extrinsic
        chain.serve_axon(wallet_of("known"), "127.0.0.1", 8091)
    fakes[0].execute_result = bittensor.ChainError("ServingRateLimitExceeded", code=ErrorCode.RATE_LIMITED)
    with pytest.raises(ChainUnavailable, match="ServingRateLimitExceeded"):
        chain.serve_axon(wallet_of("known"), "127.0.0.1", 8091)
    with pytest.raises(ConfigError, match="not an IPv4 or IPv6 address"):
        chain.serve_axon(wallet_of("known"), "miner.example.com", 8091)


# -- open_chain -------------------------------------------------------------------------


def test_open_chain_selects_subtensor_without_connecting():
    chain = open_chain("test", 17)
    assert isinstance(chain, SubtensorChain) and not chain.connected
    assert (chain.network, chain.netuid) == ("test", 17)
    custom = open_chain("finney", 1, chain_endpoint="ws://127.0.0.1:9944")
    assert isinstance(custom, SubtensorChain) and custom.network == "ws://127.0.0.1:9944"
    with pytest.raises(ConfigError, match="unknown subtensor network"):
        open_chain("tset", 1)
