"""``text3d generation-server``: one generator behind a small HTTP API, on one device.

    POST /v1/generate   {"prompt": "a red chair", "seed": 7, "timeout_s": 9.5}   (text3d.protocol.wire.TextTo3DRequest)
        200  the encoded mesh, with X-Text3d-Format and X-Text3d-Generation-Time-S (as a miner answers)
        400  the body does not parse or breaks a limit      401  X-Text3d-Token missing or wrong
        413  body over MAX_REQUEST_BYTES                     415  a compressed body
        503  + Retry-After: not ready yet, cannot finish within timeout_s, queue full, or finished too late
        500  the generator or the encoder failed (the detail says how)
    GET /ready    200 {"ready": true, "queued": N, ...} once the generator is loaded and warmed up; 503 before
    GET /health   200 while the process lives, ready or not, with its counters

A miner's ``EndpointPool`` is the client. ``timeout_s`` is the time left until the miner
needs the answer back; the server keeps ``--server.deadline_margin_s`` of it for the trip
and never starts a request it cannot finish by then (``GenerationQueue`` admission:
concurrent requests are batched, up to ``--server.max_batch_size``, on one worker thread).

The generator loads after the port is bound, so ``/health`` answers from the start and
``/ready`` says when requests can come. It binds 127.0.0.1 by default; any other address
needs a shared token (``TEXT3D_SERVER__TOKEN`` or ``token`` in the ``[server]`` table of
``--config``), checked in constant time before a byte of the body is read, on every route
but ``/health``. ``GenerationWorker`` (generator + encoder + queue) is also what a Ray
Serve replica runs (``text3d/miner/ray_pool.py``).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import math
import sys
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from text3d.common.stopping import stop_on_signals
from text3d.miner.pool import GENERATE_ROUTE, HEALTH_ROUTE, READY_ROUTE, TOKEN_HEADER, Encoder, InProcessPool
from text3d.miner.queue import GenerationQueue, Overloaded
from text3d.miner.http_body import Refusal, read_capped_body
from text3d.protocol.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ConfigError
from text3d.protocol.mesh_codec import MeshFormat
from text3d.protocol.wire import MAX_REQUEST_BYTES, RequestError, TextTo3DRequest, TextTo3DResponse

__all__ = ["WorkerAnswer", "GenerationWorker", "GenerationService", "create_app", "is_loopback", "main"]

log = logging.getLogger("text3d.generation_server")
Clock = Callable[[], float]
WARMUP_PROMPT = "a small red cube"


@dataclass(frozen=True)
class WorkerAnswer:
    """What a worker did with one request, as an HTTP status: 200 (a mesh), 503 or 500 (``detail``)."""

    status: int
    payload: bytes = b""
    format: str = ""
    generation_time_s: float = 0.0
    detail: str = ""
    retry_after_s: float | None = None


class GenerationWorker:
    """One generator, its encoder and a deadline-aware batching queue; async ``submit`` per request."""

    def __init__(
        self,
        generator: Any,
        *,
        fmt: MeshFormat,
        encode: Encoder,
        max_batch_size: int,
        window_s: float,
        max_queue: int,
        max_timeout_s: float,
        deadline_margin_s: float,
        executor: Executor | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.pool = InProcessPool(generator, fmt, encode, executor)
        self.queue = GenerationQueue(
            self.pool.generate, self.pool.executor, max_batch_size=max_batch_size, window_s=window_s,
            max_queue=max_queue, max_in_flight_per_caller=max_queue, clock=clock,
        )  # fmt: skip
        self.max_timeout_s = max_timeout_s
        self.deadline_margin_s = deadline_margin_s
        self._clock = clock
        self.answered = 0
        self.refused = 0
        self.failed = 0

    @classmethod
    def from_settings(cls, generator: Any, server: Any, encode: Encoder) -> "GenerationWorker":
        """From a ``text3d.settings.ServerSettings`` section."""
        return cls(generator, fmt=MeshFormat(server.format), encode=encode, max_batch_size=server.max_batch_size,
                   window_s=server.batch_window_s, max_queue=server.max_queue, max_timeout_s=server.max_timeout_s,
                   deadline_margin_s=server.deadline_margin_s)  # fmt: skip

    def warm_up(self) -> float:
        """Generate and encode one mesh now (blocking; first CUDA kernels, lazy buffers); its seconds."""
        started = time.monotonic()
        (result,) = self.pool.generate([WARMUP_PROMPT], [0])
        if isinstance(result, Exception):
            raise result
        return time.monotonic() - started

    async def submit(self, prompt: str, seed: int, timeout_s: float, *, caller: str = "-", stake: float = 0.0
                     ) -> WorkerAnswer:  # fmt: skip
        """Generate one mesh if it can be back within ``timeout_s`` (minus the margin); never raises."""
        started = self._clock()
        deadline = started + min(timeout_s, self.max_timeout_s) - self.deadline_margin_s
        try:
            result = await self.queue.submit(prompt, seed, deadline, caller=caller, stake=stake)
        except Overloaded as exc:
            self.refused += 1
            return WorkerAnswer(503, detail=exc.reason, retry_after_s=exc.retry_after_s)
        except Exception as exc:  # the generator failed this batch
            self.failed += 1
            log.error("generation failed: %s: %s", type(exc).__name__, exc)
            return WorkerAnswer(500, detail=f"generation failed: {type(exc).__name__}: {str(exc)[:160]}")
        if result is None or self._clock() > deadline:
            self.refused += 1
            return WorkerAnswer(503, detail="the answer could not be finished before its deadline",
                                retry_after_s=self.queue.retry_after_s())  # fmt: skip
        if isinstance(result, Exception):
            self.failed += 1
            log.error("could not encode the mesh: %s", result)
            return WorkerAnswer(500, detail=f"the generated mesh could not be encoded: {str(result)[:160]}")
        payload, fmt = result
        self.answered += 1
        return WorkerAnswer(200, payload, fmt.value, self._clock() - started)

    def stats(self) -> dict[str, Any]:
        return {
            "queued": self.queue.queued,
            "max_queue": self.queue.max_queue,
            "expected_batch_s": round(self.queue.expected_batch_s, 3),
            "answered": self.answered,
            "refused": self.refused,
            "failed": self.failed,
        }

    async def close(self) -> None:
        await self.queue.close()


_Refusal = Refusal  # the shared refusal (text3d.miner.http_body)


@dataclass
class GenerationService:
    """The HTTP side: token, limits, readiness; ``worker`` is None until the generator has loaded."""

    token: str | None = None
    worker: GenerationWorker | None = None
    loading: str = "loading the generator"

    async def generate(self, request: Request) -> Response:
        try:
            self._check_token(request)
            if self.worker is None:
                raise _Refusal(503, f"not ready: {self.loading}", 5.0)
            task = self._parse(await self._read_body(request))
            caller = request.client.host if request.client else "-"
            answer = await self.worker.submit(task.prompt, task.seed, task.timeout_s, caller=caller)
        except _Refusal as refusal:
            return _refuse(refusal.status, refusal.detail, refusal.retry_after_s)
        if answer.status != 200:
            return _refuse(answer.status, answer.detail, answer.retry_after_s)
        response = TextTo3DResponse(payload=answer.payload, format=MeshFormat(answer.format),
                                    generation_time_s=answer.generation_time_s)  # fmt: skip
        return Response(content=response.payload, status_code=200, headers=response.headers())

    def ready(self, request: Request) -> Response:
        try:
            self._check_token(request)
        except _Refusal as refusal:
            return _refuse(refusal.status, refusal.detail, None)
        if self.worker is None:
            return JSONResponse({"ready": False, "detail": self.loading}, status_code=503)
        return JSONResponse({"ready": True, **self.worker.stats()})

    def health(self) -> dict[str, Any]:
        return {"ready": self.worker is not None, **(self.worker.stats() if self.worker else {"detail": self.loading})}

    def _check_token(self, request: Request) -> None:
        if self.token is None:
            return
        given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise _Refusal(401, f"missing or wrong {TOKEN_HEADER}")

    async def _read_body(self, request: Request) -> bytes:
        return await read_capped_body(request, MAX_REQUEST_BYTES)

    @staticmethod
    def _parse(body: bytes) -> TextTo3DRequest:
        try:
            return TextTo3DRequest.from_body(body)
        except RequestError as exc:
            raise _Refusal(400, str(exc)) from None


def _refuse(status: int, detail: str, retry_after_s: float | None) -> JSONResponse:
    headers = {"Connection": "close"}  # never drain a refused body (see text3d/miner/app.py)
    if retry_after_s:
        headers["Retry-After"] = str(int(math.ceil(retry_after_s)))
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def create_app(service: GenerationService) -> FastAPI:
    """The ASGI app; no docs or OpenAPI routes."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post(GENERATE_ROUTE)
    async def generate(request: Request) -> Response:
        return await service.generate(request)

    @app.get(READY_ROUTE)
    async def ready(request: Request) -> Response:
        return service.ready(request)

    @app.get(HEALTH_ROUTE)
    async def health() -> dict[str, Any]:
        return service.health()

    return app


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return ip == "localhost"


# -- the process -------------------------------------------------------------------------------


async def serve(settings: Any, spec: Any, sock: Any, *, stop: asyncio.Event | None = None) -> int:
    """Bind, then load the generator; serve until ``stop`` (or SIGINT/SIGTERM in ``main``). The exit code."""
    import uvicorn

    from text3d.miner.encoding import encode_for_wire

    stop = stop or asyncio.Event()
    service = GenerationService(token=settings.server.token)
    config = uvicorn.Config(create_app(service), log_config=None, access_log=False, lifespan="off",
                            timeout_keep_alive=30, limit_concurrency=1024)  # fmt: skip
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    host, port = sock.getsockname()[:2]
    log.info("generation server on http://%s:%d: loading %s on %s", host, port, spec.backend, spec.context.device)
    code = EXIT_OK
    worker = None
    try:
        generator = await asyncio.to_thread(spec.build)
        worker = GenerationWorker.from_settings(generator, settings.server, encode_for_wire)
        if settings.server.warmup:
            service.loading = "warming up"
            seconds = await asyncio.get_running_loop().run_in_executor(worker.pool.executor, worker.warm_up)
            log.info("warm-up mesh in %.2fs", seconds)
        service.worker = worker
        log.info("generation server ready on http://%s:%d (%s)", host, port, type(generator).__name__)
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([stopping, serving], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
    except ConfigError as exc:  # ModelNotAvailableError, a backend refusing its options
        log.error("%s", exc)
        print(f"text3d generation-server: {exc}", file=sys.stderr)
        code = EXIT_CONFIG
    except Exception as exc:
        log.error("the generator failed to load: %s: %s", type(exc).__name__, exc)
        code = EXIT_FAILURE
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        if worker is not None:
            await worker.close()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    from text3d.ops.logs import setup_logging
    from text3d.ops.net import check_port_free
    from text3d.settings import load_settings

    try:
        settings = load_settings("generation-server", argv, prog="text3d generation-server")
        setup_logging(settings.logging, role="generation-server")
        server = settings.server
        if settings.generation.endpoint_urls or settings.generation.ray_address:
            raise ConfigError("--generation.endpoints and --generation.ray_address are the miner's: a generation "
                              "server generates itself; drop them.")  # fmt: skip
        if not is_loopback(server.ip) and not server.token:
            raise ConfigError(
                f"--server.ip {server.ip} is not a loopback address: set a shared token (TEXT3D_SERVER__TOKEN, or "
                "token in the [server] table of --config) and the same generation token on the miner, or bind "
                "127.0.0.1."
            )
        spec = settings.generation.spec(models=settings.models, device=settings.resolved_device(),
                                        max_batch_size=server.max_batch_size)  # fmt: skip
        spec.check()  # a backend that does not import, or options it refuses: now, not after binding
        sock = check_port_free(server.ip, server.port, flags=("--server.ip", "--server.port"))
    except ConfigError as exc:
        print(f"text3d generation-server: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def run() -> int:
        stop = stop_on_signals()
        return await serve(settings, spec, sock, stop=stop)

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
