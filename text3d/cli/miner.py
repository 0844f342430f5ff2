"""``text3d miner ...``: run the miner neuron (the same flags as ``python -m neurons.miner``)."""

from text3d.cli.passthrough import passthrough

__all__ = ["add_parser", "run"]

add_parser, run = passthrough("miner", "run a miner: serve POST /v1/text3d with Shap-E", "neurons.miner")
