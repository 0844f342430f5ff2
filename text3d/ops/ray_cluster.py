"""Joining a Ray cluster, one way for every part that scales out on Ray.

The miner's generation replicas (Ray Serve, ``--generation.ray_address``) and the asset
library's indexing (Ray Data, ``text3d index --ray-address``) both call ``connect``: once
per process, quietly, with the cluster's auth token found the way an operator's shell would
find it, and a ``ConfigError`` naming the flag when Ray is missing or the cluster does not
answer. Nothing leaves the machine (usage stats off).
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

from text3d.protocol.errors import ConfigError

__all__ = ["connect", "token_available"]


def connect(address: str, *, flag: str, modules: tuple[str, ...] = (), install: str = "pip install 'text3d[ray]'",
            env_vars: dict[str, str] | None = None) -> None:
    """``ray.init(address)`` once per process; ``modules`` (``ray.serve``, ``ray.data``) must
    import too. ``env_vars`` go to this job's workers. ``ConfigError`` names ``flag``."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    if "RAY_AUTH_MODE" not in os.environ and token_available():
        # Ray 2.60 clusters use token auth by default, but a process joining one sends its token only when
        # told to (read when ray is imported): without it, joining a cluster started by `ray.init()` fails.
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray

        for module in modules:
            importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{flag} {address}: install the Ray extra first: {install}.") from None
    if ray.is_initialized():
        return
    try:
        kwargs = {"runtime_env": {"env_vars": dict(env_vars)}} if env_vars else {}
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"{flag} {address}: cannot join that Ray cluster ({str(exc)[:200]}); start one with "
            "`ray start --head` or fix the address (a cluster with token auth also needs its token here: "
            "~/.ray/auth_token or RAY_AUTH_TOKEN)."
        ) from None


def token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return (Path.home() / ".ray" / "auth_token").is_file()
