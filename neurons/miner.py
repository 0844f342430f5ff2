"""The miner: serves ``POST /v1/text3d`` (FastAPI under uvicorn), turning prompts into meshes.

Composition (built in ``main()``, passed in everywhere else): the settings tree, a
wallet, a chain adapter, a generation pool (``neurons.generation_pool``: by default one
generator, ``generate(prompts, seeds) -> list[Trimesh]``, on one single-worker executor
for all GPU/CPU-heavy work; or generation servers, or a Ray Serve deployment), the
stake-ordered ``GenerationQueue``, a replay store shared by the miner's workers, and the
ASGI app of ``neurons.miner_app``. The metagraph the caller policy reads is refreshed every
``--miner.resync_interval_s``; the axon address is announced on chain (``ServeAxon`` on
subtensor, a row on the devnet) once the server listens.

Run as ``text3d miner ...``, ``python -m neurons.miner ...`` or ``python neurons/miner.py ...``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # `python neurons/miner.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neurons.caller_policy import CallerPolicy
from neurons.generation_pool import InProcessPool, build_pool
from neurons.generation_queue import GenerationQueue
from neurons.autoupdate import start_autoupdate
from neurons.logs import setup_logging
from neurons.miner_app import MinerService, create_app
from neurons.settings import Settings, load_settings
from protocol.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigError, ValidatorFault
from protocol.limits import DEFAULT_LIMITS
from protocol.mesh_codec import MeshFormat, encode_mesh

__all__ = ["Miner", "encode_for_wire", "check_port_free", "main"]

log = logging.getLogger("text3d.miner")


def encode_for_wire(mesh: Any, fmt: MeshFormat) -> tuple[bytes, MeshFormat]:
    """Encode ``mesh`` as validators will accept it; ``ValueError`` saying why not otherwise."""
    limits = DEFAULT_LIMITS
    if len(mesh.vertices) > limits.max_vertices or len(mesh.faces) > limits.max_faces:
        raise ValueError(
            f"mesh has {len(mesh.vertices)} vertices and {len(mesh.faces)} faces, validators accept at most "
            f"{limits.max_vertices} and {limits.max_faces}; lower --generation.grid_size"
        )
    payload = encode_mesh(mesh, fmt)
    if len(payload) > limits.max_payload_bytes:
        raise ValueError(f"encoded mesh is {len(payload)} bytes, validators accept at most {limits.max_payload_bytes}")
    return payload, fmt


class Miner:
    """The serving loop around a ``MinerService``: metagraph resyncs, announce, shutdown."""

    def __init__(self, settings: Settings, *, wallet: Any, chain: Any, nonce_store: Any, generator: Any = None,
                 executor: ThreadPoolExecutor | None = None, pool: Any = None) -> None:
        """``pool`` (``neurons.generation_pool``) or, for the in-process default, ``generator``."""
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
        )
        self.app = create_app(self.service)

    async def sync(self) -> None:
        self.service.metagraph = await asyncio.to_thread(self.chain.metagraph)

    async def run(self, *, stop: asyncio.Event | None = None, sock: socket.socket | None = None) -> None:
        """Serve until ``stop`` is set. ``sock``: an already bound listening socket (tests, port checks)."""
        import uvicorn

        stop = stop or asyncio.Event()
        axon = self.settings.axon
        await self.pool.start()
        await self.sync()
        # http="h11": the same, tested request parser whatever else is installed (ray[serve] brings httptools,
        # which uvicorn would otherwise pick by itself); h11 caps a request's headers at 64 KiB.
        config = uvicorn.Config(self.app, host=axon.ip, port=axon.port, log_config=None, access_log=False,
                                lifespan="off", timeout_keep_alive=15, limit_concurrency=1024, http="h11")
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # ours handle SIGTERM
        serving = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if serving.done():
            serving.result()  # re-raise the server's own failure
        ip = self.settings.announced_ip() or _external_ip()
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


def _external_ip() -> str:
    """The address peers reach us at; only on public networks, and only the system's view of it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent by connect() on UDP
            return probe.getsockname()[0]
        except OSError:
            raise ConfigError("cannot determine this machine's address: set --axon.external_ip") from None


def check_port_free(ip: str, port: int, *, flags: tuple[str, str] = ("--axon.ip", "--axon.port")) -> socket.socket:
    """Bind the listening socket now, so a taken port is one sentence, not a log line after start-up.

    ``flags``: the (address, port) flags the sentence names (the generation server has its own).
    """
    ip_flag, port_flag = flags
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((ip, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{port_flag} {port} is already in use on {ip} (another miner?): pick a free one with {port_flag}"
            ) from None
        raise ConfigError(f"cannot listen on {ip}:{port} ({exc.strerror}): check {ip_flag} and {port_flag}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    from neurons.chain.factory import open_chain
    from neurons.nonce_store import SqliteNonceStore
    from neurons.registration import open_registered

    try:
        settings = load_settings("miner", argv)
        setup_logging(settings.logging, role="miner", name=settings.wallet.name)
        start_autoupdate(settings.autoupdate)  # off unless --autoupdate
        chain = open_chain(settings.subtensor.network, settings.netuid, chain_endpoint=settings.subtensor.chain_endpoint,
                           devnet_db=settings.devnet.db)
        wallet = open_registered(settings.wallet.name, settings.wallet.hotkey, settings.wallet.path, chain)
        sock = check_port_free(settings.axon.ip, settings.axon.port)
        pool = build_pool(settings, encode_for_wire)
        nonce_store = SqliteNonceStore(settings.miner.nonce_db or settings.data_dir() / "miner_nonces.sqlite")
    except ConfigError as exc:
        print(f"text3d miner: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValidatorFault as exc:  # the chain is down: a restart later may help
        print(f"text3d miner: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    miner = Miner(settings, wallet=wallet, chain=chain, pool=pool, nonce_store=nonce_store)

    async def serve() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):  # pm2/systemd stop: shut the server down cleanly
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await miner.run(stop=stop, sock=sock)

    try:
        asyncio.run(serve())
    finally:
        chain.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
