"""Generation servers for tests: the real app and worker around a cheap real backend, on 127.0.0.1.

- ``TimedGenerator``: the procedural backend, slowed by ``cost_s`` a batch, failing on a
  prompt when asked; records batches.
- ``CountingApp``: ASGI wrapper counting ``POST /v1/generate`` requests in flight (and the peak).
- ``served_generation_server(generator, ...)``: ``GenerationService`` + ``create_app`` under a real
  uvicorn (``tests.loopback.ServedApp``), optionally on a given socket, with a ``CountingApp``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Iterator

from text3d.generation.primitives import PrimitiveGenerator, PrimitiveOptions
from text3d.miner.pool import GENERATE_ROUTE
from text3d.miner.generation_server import GenerationService, GenerationWorker, create_app
from text3d.miner.encoding import encode_for_wire
from text3d.protocol.mesh_codec import MeshFormat
from tests.loopback import ServedApp

__all__ = ["TimedGenerator", "CountingApp", "make_worker", "served_generation_server", "primitive_faces"]


def primitive_faces(shape: str, subdivisions: int) -> int:
    """Faces of the procedural backend's ``shape`` at ``subdivisions`` (a box is subdivided until it
    can carry the seed's bumps, so it is not 12 triangles): what an answer of that shape decodes to."""
    options = PrimitiveOptions(subdivisions=subdivisions)
    return len(PrimitiveGenerator(options).generate([f"a {shape}"], [0])[0].faces)


class TimedGenerator:
    """``PrimitiveGenerator`` that takes ``cost_s`` per batch and raises on ``fail_on``."""

    def __init__(self, cost_s: float = 0.0, fail_on: str | None = None) -> None:
        self.inner = PrimitiveGenerator(PrimitiveOptions(subdivisions=1))
        self.cost_s, self.fail_on = cost_s, fail_on
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def generate(self, prompts, seeds):
        with self.lock:
            self.batches.append(list(prompts))
        time.sleep(self.cost_s)
        if self.fail_on is not None and self.fail_on in prompts:
            raise RuntimeError("CUDA out of memory")
        return self.inner.generate(prompts, seeds)

    @property
    def prompts(self) -> list[str]:
        return [p for batch in self.batches for p in batch]


class CountingApp:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.now = self.peak = self.count = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != GENERATE_ROUTE:
            return await self.app(scope, receive, send)
        self.now += 1
        self.count += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


def make_worker(generator: Any, **options: Any) -> GenerationWorker:
    settings = {"fmt": MeshFormat.DRACO, "max_batch_size": 4, "window_s": 0.02, "max_queue": 32, "max_timeout_s": 60.0,
                "deadline_margin_s": 0.05, **options}  # fmt: skip
    return GenerationWorker(generator, encode=encode_for_wire, **settings)


@contextlib.contextmanager
def served_generation_server(
    generator: Any = None, *, token: str | None = None, sock: socket.socket | None = None, ready: bool = True,
    **options: Any,
) -> Iterator[tuple[ServedApp, GenerationService, CountingApp]]:
    worker = make_worker(generator or TimedGenerator(), **options) if ready else None
    service = GenerationService(token=token, worker=worker)
    counting = CountingApp(create_app(service))
    served = ServedApp(counting)
    if sock is not None:
        served.sock.close()
        served.sock, served.port = sock, sock.getsockname()[1]
    with served:
        yield served, service, counting
