"""Open the chain a neuron's settings name: the SQLite devnet or a real subtensor.

``network == "devnet"`` selects the SQLite devnet (``devnet_db`` names its file); any
other network is a subtensor: ``finney``, ``test``, ``local`` or a ``ws://``/``wss://``
endpoint, with ``chain_endpoint`` overriding it when given. "devnet" here always means
the project's SQLite devnet; bittensor 11's own ``devnet`` network name (opentensor's
development chain) is reachable by passing its ``wss://`` address as ``network``.
"""

import time
from pathlib import Path
from typing import Callable

from text3d.chain.base import ChainAdapter
from text3d.protocol.errors import ConfigError

__all__ = ["DEVNET", "open_chain"]

DEVNET = "devnet"


def open_chain(
    network: str,
    netuid: int,
    *,
    chain_endpoint: str | None = None,
    devnet_db: str | Path | None = None,
    clock: Callable[[], float] = time.time,
) -> ChainAdapter:
    """The adapter for ``network``; a subtensor is not contacted until its first call.

    Raises ``ConfigError`` (one sentence naming the flag) for a devnet without
    ``devnet_db`` or with a ``chain_endpoint``, a devnet database holding another netuid, or an unknown network name,
    and ``ChainUnavailable`` for a devnet database that is missing or unreadable.
    ``clock`` drives the devnet's block number (tests inject one).
    """
    if network == DEVNET:
        from text3d.chain.devnet import DevnetChain

        if chain_endpoint:
            raise ConfigError(
                "--subtensor.chain_endpoint cannot be used with --subtensor.network devnet (the SQLite devnet); "
                "drop one of them"
            )
        if not devnet_db:
            raise ConfigError("--subtensor.network devnet needs --devnet.db PATH (create one with `text3d devnet init`)")
        chain = DevnetChain.open(devnet_db, clock=clock)
        if int(netuid) != chain.netuid:
            raise ConfigError(f"devnet database {devnet_db} holds netuid {chain.netuid}, not --netuid {netuid}")
        return chain

    from text3d.chain.subtensor import SubtensorChain

    return SubtensorChain(chain_endpoint or network, int(netuid))
