"""``text3d gateway ...``: serve the organic gateway, or ``text3d gateway keys create|list|revoke`` its keys."""

from text3d.cli.passthrough import passthrough

__all__ = ["add_parser", "run"]

add_parser, run = passthrough(
    "gateway", "serve the organic gateway (API keys, quotas, a web page; validators are its workers)",
    "text3d.gateway.main",
)
