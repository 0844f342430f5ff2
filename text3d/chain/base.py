"""The chain contract: the project's own metagraph, and everything a neuron asks of a chain.

Two implementations satisfy ``ChainAdapter``:

- ``text3d.chain.subtensor.SubtensorChain``: a real subtensor (finney, test, local, any
  ``ws://``/``wss://`` endpoint) through bittensor 11's async ``Client``.
- ``text3d.chain.devnet.DevnetChain``: a local chain in one SQLite file, safe for several
  processes at once, with a block number that advances with wall-clock time.

Neurons depend on this module only, so the miner, the validator and their tests run
unchanged against either chain, and nothing here imports bittensor. The adapter methods
are synchronous (they block on I/O): async code calls them through ``asyncio.to_thread``.

Errors (all from ``text3d.protocol.errors``, the one tree):

- ``ChainUnavailable``: the chain cannot be reached or failed (a validator fault: no
  score changes because of it).
- ``HotkeyNotRegistered``: ``serve_axon`` for a hotkey without a uid (register first).
- ``set_weights`` never raises for a refusal (rate limit, no permit, too few weights,
  ...): it returns ``(False, reason)``.
"""

from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

from text3d.protocol.errors import ChainUnavailable, ConfigError, HotkeyNotRegistered

if TYPE_CHECKING:  # annotations only: the contract must not pay for importing bittensor
    import bittensor

__all__ = [
    "NeuronInfo",
    "Metagraph",
    "ChainAdapter",
    "ChainUnavailable",
    "HotkeyNotRegistered",
    "check_axon_address",
]

_UNSPECIFIED_IPS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class NeuronInfo:
    """One registered neuron as the chain sees it.

    ``stake`` is the neuron's stake weight in whole tokens: TAO on the devnet, the
    subnet's ``total_stake`` (alpha plus weighted root TAO, in alpha units) on subtensor;
    either way the number validator permits and stake gates compare. ``axon_ip`` is
    ``"0.0.0.0"`` and ``axon_port`` 0 when the neuron never served an axon.
    ``last_update`` is the block of the neuron's last weights (0 if never).
    ``incentive`` is the neuron's share of the miners' emission in [0, 1] (all uids sum to 1
    once weights are set); ``emission`` what it earned in the last tempo, in the subnet's
    units (alpha on subtensor; on the devnet a model of it, see ``text3d.chain.devnet``).
    """

    uid: int
    hotkey: str
    coldkey: str
    stake: float
    validator_permit: bool
    axon_ip: str
    axon_port: int
    last_update: int
    incentive: float = 0.0
    emission: float = 0.0

    @property
    def is_serving(self) -> bool:
        """True when the neuron announced a reachable address (a real ip and a port)."""
        return self.axon_ip not in _UNSPECIFIED_IPS and self.axon_port > 0


@dataclass(frozen=True)
class Metagraph:
    """A subnet's neurons at one block, ordered by uid (uids are dense: 0 .. n-1).

    Lookups by hotkey check membership first and answer ``None``/0 for strangers: a
    caller's claimed hotkey is untrusted input and must never be used as an index.
    Raises ``ValueError`` when ``neurons`` is not ordered 0 .. n-1.
    """

    netuid: int
    block: int
    neurons: tuple[NeuronInfo, ...]
    _uid_by_hotkey: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        neurons = tuple(self.neurons)
        for position, neuron in enumerate(neurons):
            if neuron.uid != position:
                raise ValueError(f"metagraph neurons must be ordered by uid 0..n-1; position {position} holds uid {neuron.uid}")
        object.__setattr__(self, "neurons", neurons)
        object.__setattr__(self, "_uid_by_hotkey", {neuron.hotkey: neuron.uid for neuron in neurons})

    @property
    def n(self) -> int:
        """Number of uids on the subnet."""
        return len(self.neurons)

    @property
    def hotkeys(self) -> tuple[str, ...]:
        """Hotkeys by uid."""
        return tuple(neuron.hotkey for neuron in self.neurons)

    def uid_of(self, hotkey: str) -> int | None:
        """The hotkey's uid, or None when it holds none."""
        return self._uid_by_hotkey.get(hotkey)

    def neuron(self, uid: int) -> NeuronInfo:
        """The neuron at ``uid``; raises ``KeyError`` for a uid outside 0 .. n-1."""
        if 0 <= uid < len(self.neurons):
            return self.neurons[uid]
        raise KeyError(f"no uid {uid} on netuid {self.netuid} ({len(self.neurons)} uids)")

    def stake_of(self, hotkey: str) -> float:
        """The hotkey's stake, 0.0 when it is not registered."""
        uid = self._uid_by_hotkey.get(hotkey)
        return 0.0 if uid is None else self.neurons[uid].stake


def check_axon_address(ip: str, port: int) -> None:
    """Raise ``ConfigError`` unless ``ip`` is an IPv4/IPv6 address and ``port`` in 1..65535.

    Both chains apply it, so a miner learns about a bad ``--axon.external_ip`` the same
    way on the devnet as on subtensor (which can only store a numeric address).
    """
    try:
        ip_address(ip)
    except ValueError:
        raise ConfigError(f"axon address {ip!r} is not an IPv4 or IPv6 address; pass one with --axon.external_ip") from None
    if not 0 < int(port) < 65536:
        raise ConfigError(f"axon port must be in 1..65535, got {port}")


@runtime_checkable
class ChainAdapter(Protocol):
    """What a neuron needs from a chain. Every method may raise ``ChainUnavailable``."""

    netuid: int

    def block(self) -> int:
        """Current block number."""

    def neurons(self) -> list[NeuronInfo]:
        """All neurons of the subnet, ordered by uid."""

    def uid_of(self, hotkey: str) -> int | None:
        """The hotkey's uid on this subnet, or None when it is not registered."""

    def metagraph(self) -> Metagraph:
        """The subnet's neurons and the block they were read at, in one consistent read."""

    def serve_axon(self, wallet: "bittensor.Wallet | Any", ip: str, port: int) -> None:
        """Announce the wallet's hotkey's address.

        Raises ``HotkeyNotRegistered`` for a hotkey without a uid and ``ConfigError`` for
        an address the chain cannot store.
        """

    def set_weights(
        self,
        wallet: "bittensor.Wallet | Any",
        uids: Sequence[int],
        weights: Sequence[float],
        version_key: int,
    ) -> tuple[bool, str]:
        """Set the wallet's weights, conformed to the subnet's rules (see ``weight_rules``).

        Returns ``(True, message)`` or ``(False, reason)`` for a refusal (unregistered,
        no permit, rate limit, old ``version_key``, too few non-zero weights, ...).
        """

    def weights_rate_limit(self) -> int:
        """Minimum number of blocks between two weight settings of one hotkey."""

    def min_allowed_weights(self) -> int:
        """Fewest non-zero weights one setting may carry (a lone self-weight is exempt)."""

    def max_weight_limit(self) -> float:
        """Largest share of the total one uid may get, as a fraction in (0, 1]."""

    def weights(self) -> dict[int, dict[int, float]]:
        """Weights on chain: validator uid -> {miner uid: weight}, each row summing to 1."""

    def close(self) -> None:
        """Release the connection (composition roots call it on shutdown); idempotent, never raises."""
