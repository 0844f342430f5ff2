"""Chain adapters: the real subtensor and the SQLite devnet, behind one protocol."""

from neurons.chain.base import ChainAdapter, NeuronInfo

__all__ = ["ChainAdapter", "NeuronInfo"]
