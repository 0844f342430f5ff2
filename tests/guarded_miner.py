"""A real miner app served the way ``text3d miner`` serves it, in its own process (for slow-loris tests).

    python -m tests.guarded_miner MINER_HOTKEY VALIDATOR_HOTKEY PORT_FILE [SETTINGS_JSON]

``MinerService`` + the stake-ordered ``GenerationQueue`` (a tiny pre-encoded mesh per
prompt) under ``text3d.miner.main.server_config`` with the default ``MinerSettings``
connection limits (``SETTINGS_JSON`` may change any ``MinerSettings`` field), on 127.0.0.1; the chosen port
is written to ``PORT_FILE`` once the server listens. A hand metagraph registers the
validator (500 TAO, permit). Runs until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def main(argv: list[str]) -> None:
    import uvicorn

    from text3d.miner.app import MinerService, create_app
    from text3d.miner.caller_policy import CallerPolicy
    from text3d.miner.connections import ConnectionGuard
    from text3d.miner.main import raise_open_files_limit, server_config
    from text3d.miner.nonce_store import SqliteNonceStore
    from text3d.miner.queue import GenerationQueue
    from text3d.protocol.mesh_codec import MeshFormat
    from text3d.settings import MinerSettings
    from tests.loopback import free_socket, hand_metagraph, tiny_mesh_payload

    miner_hotkey, validator_hotkey, port_file = argv[:3]
    settings = MinerSettings(**(json.loads(argv[3]) if len(argv) > 3 else {}))
    payload = tiny_mesh_payload()
    queue = GenerationQueue(lambda prompts, seeds: [(payload, MeshFormat.DRACO) for _ in prompts],
                            ThreadPoolExecutor(max_workers=1), max_batch_size=4, window_s=0.01, max_queue=32,
                            max_in_flight_per_caller=4)
    metagraph = hand_metagraph([(validator_hotkey, 500.0, True), (miner_hotkey, 0.0, False)])
    service = MinerService(hotkey=miner_hotkey, policy=CallerPolicy(min_validator_stake=1.0), queue=queue,
                           nonce_store=SqliteNonceStore(Path(tempfile.mkdtemp()) / "nonces.sqlite"),
                           max_timeout_s=10.0, deadline_margin_s=0.1, metagraph=metagraph)
    guard = ConnectionGuard(settings.connection_limits())
    raise_open_files_limit(guard.limits.max_connections + 256)
    sock = free_socket()
    server = uvicorn.Server(server_config(create_app(service), "127.0.0.1", sock.getsockname()[1], guard))
    server.install_signal_handlers = lambda: None

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        Path(port_file).write_text(str(sock.getsockname()[1]))
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main(sys.argv[1:])
