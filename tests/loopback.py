"""Real components on 127.0.0.1 for transport tests: wallets, a miner app under uvicorn, stub miners.

- ``make_wallet(root, name)``: a real bittensor 11 wallet (password-less keyfiles on disk).
- ``hand_metagraph([...])``: the project's ``Metagraph`` from (hotkey, stake, permit) rows.
- ``ServedApp``: any ASGI app served by a real uvicorn server on a free loopback port, in a
  background thread with its own event loop (``with ServedApp(app) as served: served.port``).
- ``tiny_mesh_payload()``: a small coloured mesh encoded as Draco, what an honest miner sends.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import trimesh

from text3d.chain.base import Metagraph, NeuronInfo
from text3d.protocol.mesh_codec import MeshFormat, encode_mesh

__all__ = ["make_wallet", "hand_metagraph", "ServedApp", "tiny_mesh", "tiny_mesh_payload", "free_socket"]


def make_wallet(root: str | Path, name: str) -> Any:
    """A wallet ``name``/default under ``root``, created once without passwords."""
    import bittensor as bt

    wallet = bt.Wallet(name=name, hotkey="default", path=str(root))
    if not Path(root, name, "hotkeys", "default").exists():
        wallet.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
        wallet.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
    return wallet


def hand_metagraph(rows: Sequence[tuple[str, float, bool]], *, ports: Sequence[int] | None = None) -> Metagraph:
    """``rows``: (hotkey, stake, validator_permit) by uid; axons at 127.0.0.1:ports[uid] when given."""
    neurons = tuple(
        NeuronInfo(
            uid=uid,
            hotkey=hotkey,
            coldkey=f"cold-{uid}",
            stake=float(stake),
            validator_permit=bool(permit),
            axon_ip="127.0.0.1" if ports else "0.0.0.0",
            axon_port=int(ports[uid]) if ports else 0,
            last_update=0,
        )
        for uid, (hotkey, stake, permit) in enumerate(rows)
    )
    return Metagraph(netuid=1, block=1, neurons=neurons)


def free_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(1024)
    return sock


class ServedApp:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a background thread; stops on exit."""

    def __init__(self, app: Any, *, limit_concurrency: int | None = None) -> None:
        self.app = app
        self.limit_concurrency = limit_concurrency
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread = threading.Thread(target=self._run, name="served-app", daemon=True)

    def _run(self) -> None:
        import uvicorn

        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off",
                                limit_concurrency=self.limit_concurrency, http="h11")  # as neurons.miner serves
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._server.serve(sockets=[self.sock]))

    def __enter__(self) -> "ServedApp":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not (self._server is not None and self._server.started):
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()


def tiny_mesh(subdivisions: int = 2) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    mesh.visual.vertex_colors = np.tile(np.array([200, 60, 40, 255], dtype=np.uint8), (len(mesh.vertices), 1))
    return mesh


def tiny_mesh_payload(fmt: MeshFormat = MeshFormat.DRACO) -> bytes:
    return encode_mesh(tiny_mesh(), fmt)
