"""The miner: serves ``POST /v1/text3d`` (FastAPI under uvicorn), turning prompts into meshes.

Composition (built in ``main()``, passed in everywhere else): the settings tree, a
wallet, a chain adapter, a generation pool (``text3d.miner.pool``: by default one
generator, ``generate(prompts, seeds) -> list[Trimesh]``, on one single-worker executor
for all GPU/CPU-heavy work; or generation servers, or a Ray Serve deployment), the
stake-ordered ``GenerationQueue``, a replay store shared by the miner's workers, and the
ASGI app of ``text3d.miner.app``. The metagraph the caller policy reads is refreshed every
``--miner.resync_interval_s``; the axon address is announced on chain (``ServeAxon`` on
subtensor, a row on the devnet) once the server listens.

Run as ``text3d miner ...``, ``python -m neurons.miner ...`` or ``python neurons/miner.py ...``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from text3d.common.stopping import stop_on_signals
from text3d.miner.caller_policy import CallerPolicy
from text3d.miner.connections import ConnectionGuard, guarded_protocol
from text3d.miner.pool import InProcessPool, build_pool
from text3d.miner.queue import GenerationQueue
from text3d.ops.autoupdate import start_autoupdate
from text3d.ops.logs import setup_logging
from text3d.ops.metrics import MinerMetrics, start_metrics_server
from text3d.miner.app import MinerService, create_app
from text3d.settings import Settings, load_settings
from text3d.protocol.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigError, ValidatorFault
from text3d.protocol.mesh_codec import MeshFormat
from text3d.miner.encoding import encode_for_wire
from text3d.ops.net import check_port_free, external_ip

__all__ = ["Miner", "main", "server_config"]

log = logging.getLogger("text3d.miner")


def server_config(app: Any, host: str, port: int, guard: ConnectionGuard) -> Any:
    """The ``uvicorn.Config`` the miner serves ``app`` with (tests serve through it too).

    http: the h11 parser, guarded (``text3d.miner.connections``): the same, tested request
    parser whatever else is installed (ray[serve] brings httptools, which uvicorn would
    otherwise pick by itself); h11 caps a request's headers at 64 KiB; the guard closes
    connections over its caps at once and requests that arrive too slowly. uvicorn's own
    ``limit_concurrency`` (503 to everyone) sits above the guard's total cap, so it never decides.
    """
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
                          timeout_keep_alive=15, limit_concurrency=guard.limits.max_connections + 64,
                          http=guarded_protocol(guard))


class Miner:
    """The serving loop around a ``MinerService``: metagraph resyncs, announce, shutdown."""

    def __init__(self, settings: Settings, *, wallet: Any, chain: Any, nonce_store: Any, generator: Any = None,
                 executor: ThreadPoolExecutor | None = None, pool: Any = None, metrics: MinerMetrics | None = None) -> None:
        """``pool`` (``text3d.miner.pool``) or, for the in-process default, ``generator``; ``metrics``
        (served by ``main`` on ``--metrics.port``) or a fresh set."""
        self.settings = settings
        self.wallet = wallet
        self.chain = chain
        self.format = MeshFormat(settings.miner.format)
        self.pool = pool if pool is not None else InProcessPool(generator, self.format, encode_for_wire, executor)
        self.generator = getattr(self.pool, "generator", None)
        self.executor = self.pool.executor
        section = settings.miner
        self.queue = GenerationQueue(
            self.pool.generate,
            self.executor,
            max_batch_size=section.max_batch_size,
            window_s=section.batch_window_s,
            max_queue=section.max_queue,
            max_in_flight_per_caller=section.max_in_flight_per_caller,
            workers=self.pool.workers,
        )
        self.service = MinerService(
            hotkey=wallet.hotkey.ss58_address,
            policy=CallerPolicy(section.min_validator_stake, section.require_validator_permit),
            queue=self.queue,
            nonce_store=nonce_store,
            max_timeout_s=section.max_timeout_s,
            deadline_margin_s=section.deadline_margin_s,
            metrics=metrics if metrics is not None else MinerMetrics(),
        )
        self.service.metrics.watch(self.queue, self.service)
        self.app = create_app(self.service)
        self.guard = ConnectionGuard(section.connection_limits())
        self.service.metrics.watch_connections(self.guard)

    async def sync(self) -> None:
        self.service.metagraph = await asyncio.to_thread(self.chain.metagraph)

    async def run(self, *, stop: asyncio.Event | None = None, sock: socket.socket | None = None) -> None:
        """Serve until ``stop`` is set. ``sock``: an already bound listening socket (tests, port checks)."""
        import uvicorn

        stop = stop or asyncio.Event()
        axon = self.settings.axon
        await self.pool.start()
        await self.sync()
        raise_open_files_limit(self.guard.limits.max_connections + 256)
        server = uvicorn.Server(server_config(self.app, axon.ip, axon.port, self.guard))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # ours handle SIGTERM
        serving = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if serving.done():
            serving.result()  # re-raise the server's own failure
        ip = self.settings.announced_ip() or external_ip()
        port = axon.external_port or (sock.getsockname()[1] if sock is not None else axon.port)
        await asyncio.to_thread(self.chain.serve_axon, self.wallet, ip, port)
        log.info("miner %s serving POST /v1/text3d on %s:%d, announced %s:%d", self.service.hotkey, axon.ip,
                 port, ip, port)
        try:
            while not stop.is_set() and not serving.done():
                try:
                    await asyncio.wait_for(stop.wait(), self.settings.miner.resync_interval_s)
                except asyncio.TimeoutError:
                    pass
                if stop.is_set():
                    break
                try:
                    await self.sync()
                except ValidatorFault as exc:  # keep serving on the last metagraph
                    log.warning("metagraph resync failed, keeping the previous one: %s", exc)
                    continue
                if self.service.metagraph.uid_of(self.service.hotkey) is None:
                    log.error("this miner's hotkey is no longer registered: re-register it to earn again")
        finally:
            server.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)
            await self.queue.close()
            await self.pool.close()


def raise_open_files_limit(wanted: int) -> None:
    """Raise the soft limit on open files towards ``wanted`` (never past the hard limit): a
    soft limit of 1024 would refuse sockets below the guard's caps."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, ValueError, OSError) as exc:  # not POSIX, or not allowed: the OS limit stays
        log.warning("could not raise the open-files limit to %d: %s", wanted, exc)


def main(argv: Sequence[str] | None = None) -> int:
    from text3d.chain.factory import open_chain
    from text3d.miner.nonce_store import SqliteNonceStore
    from text3d.ops.registration import open_registered

    try:
        settings = load_settings("miner", argv, require_netuid=True)
        setup_logging(settings.logging, role="miner", name=settings.wallet.name)
        start_autoupdate(settings.autoupdate)  # off unless --autoupdate
        chain = open_chain(settings.subtensor.network, settings.netuid, chain_endpoint=settings.subtensor.chain_endpoint,
                           devnet_db=settings.devnet.db)
        wallet = open_registered(settings.wallet.name, settings.wallet.hotkey, settings.wallet.path, chain)
        sock = check_port_free(settings.axon.ip, settings.axon.port)
        pool = build_pool(settings, encode_for_wire)
        nonce_store = SqliteNonceStore(settings.miner.nonce_db or settings.data_dir() / "miner_nonces.sqlite")
        metrics = MinerMetrics()
        metrics_server = start_metrics_server(settings.metrics, metrics.registry)
    except ConfigError as exc:
        print(f"text3d miner: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValidatorFault as exc:  # the chain is down: a restart later may help
        print(f"text3d miner: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    miner = Miner(settings, wallet=wallet, chain=chain, pool=pool, nonce_store=nonce_store, metrics=metrics)

    async def serve() -> None:
        stop = stop_on_signals()  # pm2/systemd stop: shut the server down cleanly
        await miner.run(stop=stop, sock=sock)

    try:
        asyncio.run(serve())
    finally:
        chain.close()
        if metrics_server is not None:
            metrics_server.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
