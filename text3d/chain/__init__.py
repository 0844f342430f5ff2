"""Chain adapters: the real subtensor (bittensor 11) and the SQLite devnet, behind one protocol.

    base.py           the chain contract (``ChainAdapter``) and the project's own ``Metagraph``
    subtensor.py      ``SubtensorChain``: a real subtensor through bittensor 11's async ``Client``
    devnet.py         ``DevnetChain``: a local chain in one SQLite file (demo, end-to-end tests)
    factory.py        ``open_chain``: the adapter a neuron's settings name
    weight_rules.py   what a chain stores for given weights (max-weight clip, u16, minimum count)

Importing this package does not import bittensor; ``SubtensorChain`` imports it when it
is constructed. ``HotkeyNotRegistered`` and ``ChainUnavailable`` are defined in
``text3d.protocol.errors`` (the one error tree) and re-exported here for existing callers.
"""

from text3d.chain.base import ChainAdapter, ChainUnavailable, HotkeyNotRegistered, Metagraph, NeuronInfo
from text3d.chain.devnet import DevnetChain, DevnetParams
from text3d.chain.factory import open_chain
from text3d.chain.subtensor import SubtensorChain
from text3d.chain.weight_rules import WeightsRefused, conform_weights

__all__ = [
    "ChainAdapter",
    "Metagraph",
    "NeuronInfo",
    "ChainUnavailable",
    "HotkeyNotRegistered",
    "DevnetChain",
    "DevnetParams",
    "SubtensorChain",
    "open_chain",
    "conform_weights",
    "WeightsRefused",
]
