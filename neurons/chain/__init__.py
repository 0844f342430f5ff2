"""Chain adapters: the real subtensor and the SQLite devnet, behind one protocol.

Importing this package does not import bittensor; the adapters import it when they
first need it.
"""

from neurons.chain.base import ChainAdapter, HotkeyNotRegistered, NeuronInfo
from neurons.chain.devnet import DevnetChain, DevnetParams
from neurons.chain.factory import add_chain_args, chain_from_config
from neurons.chain.subtensor import SubtensorChain

__all__ = [
    "ChainAdapter",
    "NeuronInfo",
    "HotkeyNotRegistered",
    "DevnetChain",
    "DevnetParams",
    "SubtensorChain",
    "add_chain_args",
    "chain_from_config",
]
