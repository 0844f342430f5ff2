"""Pick the chain adapter from bittensor-style flags.

``--subtensor.network devnet --devnet.db PATH`` selects the SQLite devnet; any other
network (``finney``, ``test``, ``local``, a ``ws://`` endpoint, or
``--subtensor.chain_endpoint``) selects the real subtensor.

``chain_from_config`` reads either a ``bt.Config`` (nested: ``config.subtensor.network``)
or a plain ``argparse.Namespace`` (flat: ``getattr(ns, "subtensor.network")``). Note that
bittensor 10.5's ``bt.Config(parser)`` ignores the command line unless the environment
has ``BT_NO_PARSE_CLI_ARGS=false``.
"""

import argparse
import time
from typing import Any, Callable

from neurons.chain.base import ChainAdapter
from reward.errors import ChainUnavailable

__all__ = ["DEVNET", "add_chain_args", "chain_from_config"]

DEVNET = "devnet"


def add_chain_args(parser: argparse.ArgumentParser) -> None:
    """Add the devnet flags (``--devnet.db``). ``bt.Subtensor.add_args`` adds the rest."""
    try:
        parser.add_argument(
            "--devnet.db",
            dest="devnet.db",
            type=str,
            default=None,
            help="SQLite file of the local devnet; used when --subtensor.network is 'devnet'.",
        )
    except argparse.ArgumentError:  # added twice (bittensor's add_args convention)
        pass


def chain_from_config(config: Any, *, clock: Callable[[], float] = time.time) -> ChainAdapter:
    """Build the adapter the flags describe; nothing connects yet for a real subtensor.

    Raises ``ChainUnavailable`` with a one-sentence reason for a devnet that cannot be
    used (no ``--devnet.db``, a missing file, or a database holding another netuid).
    """
    from neurons.chain.devnet import DevnetChain
    from neurons.chain.subtensor import SubtensorChain

    netuid = _get(config, "netuid")
    network = _get(config, "subtensor.network") or "finney"
    endpoint = _get(config, "subtensor.chain_endpoint")
    if network == DEVNET:
        db_path = _get(config, "devnet.db")
        if not db_path:
            raise ChainUnavailable("--subtensor.network devnet needs --devnet.db PATH (create one with `text3d devnet init`)")
        chain = DevnetChain.open(db_path, clock=clock)
        if netuid is not None and int(netuid) != chain.netuid:
            raise ChainUnavailable(f"devnet database {db_path} holds netuid {chain.netuid}, not --netuid {netuid}")
        return chain
    if netuid is None:
        raise ChainUnavailable("--netuid is required for a subtensor network")
    return SubtensorChain(_target(network, endpoint), int(netuid))


def _target(network: str, endpoint: str | None) -> str:
    """The network name, unless ``--subtensor.chain_endpoint`` names a custom endpoint.

    bittensor fills ``chain_endpoint`` with finney's address by default, so that value
    (or the named network's own address) is no override.
    """
    from bittensor.core import settings

    if endpoint and endpoint not in (settings.DEFAULTS.subtensor.chain_endpoint, settings.NETWORK_MAP.get(network)):
        return endpoint
    return network


def _get(config: Any, dotted: str) -> Any:
    """``config.a.b`` for nested configs, ``getattr(config, "a.b")`` for flat namespaces."""
    if isinstance(config, argparse.Namespace) and hasattr(config, dotted):
        return getattr(config, dotted)
    node = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node is None:
            return None
    return node
