"""The chain adapter contract: everything a neuron asks of a chain, and nothing more.

Two implementations satisfy it:

- ``neurons.chain.subtensor.SubtensorChain``: the real ``bt.Subtensor`` (finney, test,
  or a local subtensor endpoint), created lazily because constructing it connects.
- ``neurons.chain.devnet.DevnetChain``: a local chain in one SQLite file, safe for
  several processes at once, with a block number that advances with wall-clock time.
  ``--subtensor.network devnet --devnet.db PATH`` selects it.

Neurons depend on this protocol only, so the miner, the validator and their tests run
unchanged against either. Chain failures surface as ``reward.errors.ChainUnavailable``;
``serve_axon`` for a hotkey the chain does not know raises ``HotkeyNotRegistered`` (a
configuration problem: register first). ``set_weights`` never raises for a refusal (rate
limit, no permit, ...): it returns ``(False, reason)`` like subtensor does.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # annotations only: importing the contract must not pay for bittensor
    import bittensor as bt

__all__ = ["NeuronInfo", "ChainAdapter", "HotkeyNotRegistered"]


class HotkeyNotRegistered(LookupError):
    """The wallet's hotkey holds no uid on the subnet: register it first."""


@dataclass(frozen=True)
class NeuronInfo:
    """One registered neuron as the chain sees it. ``stake`` is in TAO."""

    uid: int
    hotkey: str
    coldkey: str
    stake: float
    validator_permit: bool
    axon_ip: str
    axon_port: int
    last_update: int  # block of the neuron's last weights (0 if never)


@runtime_checkable
class ChainAdapter(Protocol):
    netuid: int

    def block(self) -> int:
        """Current block number."""

    def neurons(self) -> list[NeuronInfo]:
        """All neurons of the subnet, ordered by uid."""

    def uid_of(self, hotkey: str) -> int | None:
        """The hotkey's uid on this subnet, or None when it is not registered."""

    def metagraph(self) -> "bt.Metagraph":
        """A ``bt.Metagraph`` (n, uids, hotkeys, stake, validator_permit, axons) of the subnet."""

    def serve_axon(self, wallet: "bt.Wallet", ip: str, port: int) -> None:
        """Announce the wallet's hotkey's axon address on chain."""

    def set_weights(
        self,
        wallet: "bt.Wallet",
        uids: Sequence[int],
        weights: Sequence[float],
        version_key: int,
    ) -> tuple[bool, str]:
        """Set the wallet's weights; returns (success, message). Rate-limited per hotkey."""

    def weights_rate_limit(self) -> int:
        """Minimum number of blocks between two weight settings of one hotkey."""

    def weights(self) -> dict[int, dict[int, float]]:
        """Weights last set on chain: validator uid -> {miner uid: normalised weight}."""
