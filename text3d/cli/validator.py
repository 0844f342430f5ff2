"""``text3d validator ...``: run the validator neuron (the same flags as ``python -m neurons.validator``)."""

from text3d.cli.passthrough import passthrough

__all__ = ["add_parser", "run"]

add_parser, run = passthrough(
    "validator", "run a validator: query miners, score their meshes, set weights", "neurons.validator"
)
