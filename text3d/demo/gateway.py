"""The demo's organic gateway: started beside the miners, a demo key, one prompt sent through it.

``start_gateway`` runs ``text3d gateway`` on a free loopback port with its store in the demo's
folder and waits until ``/health`` answers; ``demo_key`` creates the key the demo prints;
``ask`` sends one prompt through the public API (as any app would, with ``GatewayClient``),
waits for a validator worker to finish it and saves the mesh beside the other results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from text3d.demo.processes import ProcessGroup, wait_until
from text3d.demo.subnet import LocalSubnet
from text3d.ops.net import free_port

__all__ = ["DemoGateway", "start_gateway", "demo_key", "ask", "DEMO_PROMPT"]

DEMO_PROMPT = "a red wooden chair"


@dataclass(frozen=True)
class DemoGateway:
    url: str
    key: str
    store: Path


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_gateway(group: ProcessGroup, subnet: LocalSubnet, *, timeout_s: float, debug: bool = False) -> DemoGateway:
    """The gateway process, healthy, with a demo key (raises ``ChildFailed`` naming its log)."""
    port = free_port()
    group.start("gateway", subnet.gateway_argv(port, debug=debug, extra=["--gateway.min_free_mb", "0"]))
    url = f"http://127.0.0.1:{port}/"
    wait_until(lambda: _healthy(url), timeout_s=timeout_s, what="the gateway to answer", check=group.check_alive)
    return DemoGateway(url, demo_key(subnet.gateway_store), subnet.gateway_store)


def demo_key(store_path: Path) -> str:
    """A fresh key named ``demo-N`` (a rerun in the same folder makes another)."""
    from text3d.gateway.quotas import Limits
    from text3d.gateway.store import open_store

    store = open_store(store_path)
    try:
        taken = {k.name for k in store.list_keys() if k.active}
        name = next(f"demo-{i}" for i in range(1, 10_000) if f"demo-{i}" not in taken)
        return store.create_key(name, Limits(per_minute=30, per_day=1000, concurrency=4))[1]
    finally:
        store.close()


def ask(gateway: DemoGateway, out_dir: Path, *, timeout_s: float, prompt: str = DEMO_PROMPT) -> tuple[dict[str, Any], Path]:
    """Send ``prompt``, wait for it, save the mesh as ``out_dir/gateway_asset.glb``; the finished job and the path."""
    from text3d.gateway.client import GatewayClient

    with GatewayClient(gateway.url, gateway.key) as client:
        job = client.submit(prompt, format="glb")
        done = client.wait(job["id"], timeout_s=timeout_s, poll_s=0.5)
        path = out_dir / "gateway_asset.glb"
        path.write_bytes(client.mesh(done["id"]))
    return done, path
