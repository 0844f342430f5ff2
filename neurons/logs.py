"""Logging for the neurons: one handler on the ``text3d`` logger, plain lines, no colour codes.

bittensor 11 logs through standard ``logging`` under ``bittensor.*`` and never configures
handlers; we configure ours once per process. The default level is INFO (the miner logs
one line per request, the validator one per step); ``--logging.debug`` adds detail.
Lines go to stderr, which pm2, systemd and the demo capture into files: no colour codes.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["setup_logging"]

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(settings: Any, *, role: str) -> logging.Logger:
    """Configure the ``text3d`` logger (idempotent: a second call replaces the handler)."""
    level = logging.DEBUG if getattr(settings, "debug", False) else logging.INFO
    logger = logging.getLogger("text3d")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # never twice through the root logger
    sdk = logging.getLogger("bittensor")
    sdk.setLevel(logging.DEBUG if level == logging.DEBUG else logging.WARNING)
    if handler not in sdk.handlers:
        sdk.addHandler(handler)
    return logger.getChild(role)
