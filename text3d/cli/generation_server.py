"""``text3d generation-server ...``: one generator behind HTTP on one device, for miners' generation pools."""

from text3d.cli.passthrough import passthrough

__all__ = ["add_parser", "run"]

add_parser, run = passthrough(
    "generation-server",
    "serve one generator over HTTP on one device (a miner's --generation.endpoints)",
    "text3d.miner.generation_server",
)
