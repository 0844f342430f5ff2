"""Offline or online: decide once, before the Hugging Face hub library is imported.

``huggingface_hub`` reads ``HF_HUB_OFFLINE`` when it is imported. Unset on a machine without
network, every lookup of missing weights retries DNS and HTTP for about 50 s before the
error a user needs ("get the weights with ..."), and cached weights wait for a timeout too.
``prefer_offline_when_unreachable()`` settles it first: when the variable is unset it tries
one TCP connection to the hub (``HF_ENDPOINT`` or huggingface.co, port 443/80) within
``timeout_s``, on a daemon thread so a hanging DNS resolver cannot hold the caller, and sets
``HF_HUB_OFFLINE=1`` when nothing answers. Cached weights then load at once and missing
ones fail at once with the project's one sentence. A user who sets the variable keeps it.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from urllib.parse import urlparse

__all__ = ["prefer_offline_when_unreachable", "hub_reachable"]

DEFAULT_ENDPOINT = "https://huggingface.co"


def hub_reachable(endpoint: str | None = None, timeout_s: float = 2.0) -> bool:
    """Whether a TCP connection to the hub's host opens within ``timeout_s`` (DNS included)."""
    url = urlparse(endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    host = url.hostname or ""
    port = url.port or (80 if url.scheme == "http" else 443)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, name="text3d-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)
    return bool(result and result[0])


def prefer_offline_when_unreachable(timeout_s: float = 2.0) -> bool:
    """Set ``HF_HUB_OFFLINE=1`` when it is unset and the hub does not answer; returns whether
    the process now runs offline. Call before anything imports ``huggingface_hub`` (when it
    is already imported the variable would come too late, so nothing is changed)."""
    current = os.environ.get("HF_HUB_OFFLINE")
    if current is not None:
        return current.strip().lower() in ("1", "true", "yes", "on")
    if "huggingface_hub" in sys.modules:
        return False
    if hub_reachable(timeout_s=timeout_s):
        return False
    os.environ["HF_HUB_OFFLINE"] = "1"
    return True
