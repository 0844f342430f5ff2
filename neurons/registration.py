"""Open a neuron's wallet and chain, refusing to start when the hotkey holds no uid.

Both neurons need the same fail-fast check at start-up: a miner or validator whose
hotkey is not registered can do nothing useful, and saying so in one sentence beats
serving requests that every peer will blacklist.
"""

from typing import Any

import bittensor as bt

from neurons.chain.base import ChainAdapter
from neurons.config import ConfigError, NeuronConfig

__all__ = ["open_registered"]


def open_registered(bt_config: Any, neuron: NeuronConfig) -> tuple["bt.Wallet", ChainAdapter]:
    """The wallet and the chain adapter. Raises ``ConfigError`` when the hotkey is unregistered."""
    from neurons.chain.factory import chain_from_config

    wallet = bt.Wallet(config=bt_config)
    hotkey = wallet.hotkey.ss58_address
    chain = chain_from_config(bt_config)
    if chain.uid_of(hotkey) is None:
        raise ConfigError(
            f"hotkey {hotkey} ({neuron.wallet.name}/{neuron.wallet.hotkey}) is not registered on netuid "
            f"{neuron.netuid}: register it first."
        )
    return wallet, chain
