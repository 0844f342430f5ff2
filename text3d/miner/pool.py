"""Where a miner's meshes are made: in this process, on generation servers, or on a Ray cluster.

    InProcessPool   one generator in the miner's process, on one worker thread (the default)
    EndpointPool    ``text3d generation-server`` endpoints (``--generation.endpoints``)
    RayPool         a Ray Serve deployment, one replica per GPU (``--generation.ray_address``;
                    ``text3d/miner/ray_pool.py``)

A pool has ``generate(prompts, seeds, deadlines)`` -- a plain function for the in-process
pool (run on ``executor``), a coroutine for the others -- returning one result per prompt:
``(payload, MeshFormat)`` (the encoded mesh), an ``Exception`` (that request fails, 500) or
``None`` (it could not be finished before its deadline, 503). ``deadlines`` are on the
miner's ``time.monotonic`` clock; remote pools pass each down as the seconds left, so no
server starts what cannot finish in time. ``workers`` is how many batches the miner's
``GenerationQueue`` may run at once (1 here; one per endpoint or replica). ``start()``
and ``close()`` bracket serving; ``health()`` describes the pool for logs.

``EndpointPool``: each endpoint is checked on ``/ready`` every ``health_interval_s`` (and
marked down at once when a request to it fails at the transport level); a request goes
to the ready endpoint with the fewest requests in flight (at most ``capacity`` each),
waits for a free one until its deadline, and fails over to another endpoint when one dies,
refuses (503) or fails, up to ``max_attempts`` endpoints.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import httpx

from text3d.protocol.errors import GenerationError, MinerTransportError
from text3d.protocol.mesh_codec import MeshFormat
from text3d.protocol.wire import MAX_RESPONSE_BYTES, MAX_TIMEOUT_S, TextTo3DRequest, TextTo3DResponse

__all__ = [
    "GENERATE_ROUTE",
    "READY_ROUTE",
    "HEALTH_ROUTE",
    "TOKEN_HEADER",
    "Result",
    "Encoder",
    "InProcessPool",
    "Endpoint",
    "EndpointPool",
    "build_pool",
]

log = logging.getLogger("text3d.miner.pool")
Clock = Callable[[], float]
Result = tuple[bytes, MeshFormat] | Exception | None
Encoder = Callable[[Any, MeshFormat], tuple[bytes, MeshFormat]]
"""``neurons.miner.encode_for_wire``: a mesh to the bytes validators accept, or ``ValueError`` saying why not."""

# The generation server's API (text3d/miner/generation_server.py); the pool is its one client.
GENERATE_ROUTE = "/v1/generate"
READY_ROUTE = "/ready"
HEALTH_ROUTE = "/health"
TOKEN_HEADER = "X-Text3d-Token"


# -- in process ------------------------------------------------------------------------------


class InProcessPool:
    """One generator here, on a single-worker executor: the miner as it always was."""

    workers = 1

    def __init__(self, generator: Any, fmt: MeshFormat, encode: Encoder, executor: Executor | None = None) -> None:
        self.generator = generator
        self.format = fmt
        self.encode = encode
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="text3d-gen")

    def generate(self, prompts: list[str], seeds: list[int], deadlines: Sequence[float] | None = None) -> list[Result]:
        """Executor job: generate a batch and encode each mesh (or keep its error for its request).

        ``deadlines`` are not needed here: the queue starts a batch only when it can finish.
        """
        meshes = self.generator.generate(prompts, seeds)
        encoded: list[Result] = []
        for mesh in meshes:
            try:
                encoded.append(self.encode(mesh, self.format))
            except ValueError as exc:  # e.g. a mesh without colours or faces
                encoded.append(exc)
        return encoded

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"pool": "in-process", "generator": type(self.generator).__name__}


# -- generation servers ----------------------------------------------------------------------


@dataclass
class Endpoint:
    """One generation server as the pool sees it."""

    url: str
    capacity: int
    in_flight: int = 0
    ready: bool = False
    detail: str = "not checked yet"
    queued: int = 0  # the server's own queue, from its last /ready
    misses: int = 0  # /ready timeouts in a row
    answered: int = 0
    failed: int = 0

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "ready": self.ready, "detail": self.detail, "in_flight": self.in_flight,
                "capacity": self.capacity, "answered": self.answered, "failed": self.failed}  # fmt: skip


class _Unavailable(Exception):
    """This endpoint cannot take the request now (dead, refusing, busy): try another."""


_LATE = object()  # the deadline passed: nobody can answer in time any more
_TOKEN_REFUSED = "it refused our token: set the same --generation.token as its --server.token"


class EndpointPool:
    """Requests spread over generation servers: least loaded first, failover, deadlines passed down."""

    executor = None

    def __init__(
        self,
        urls: Sequence[str],
        *,
        capacity: int,
        token: str | None = None,
        health_interval_s: float = 2.0,
        connect_timeout_s: float = 2.0,
        max_attempts: int = 3,
        wait_ready_s: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        """``wait_ready_s``: how long ``start()`` waits for a first ready endpoint (servers still loading)."""
        if not urls:
            raise ValueError("an endpoint pool needs at least one endpoint")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.endpoints = [Endpoint(url.rstrip("/"), capacity) for url in urls]
        self.workers = len(self.endpoints)
        self.token = token
        self.health_interval_s = health_interval_s
        self.connect_timeout_s = connect_timeout_s
        self.max_attempts = max_attempts
        self.wait_ready_s = wait_ready_s
        self._clock = clock
        self._turn = itertools.count()
        self._changed: asyncio.Condition | None = None
        self._client: httpx.AsyncClient | None = None
        self._health_task: asyncio.Task | None = None

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the client, check every endpoint, keep checking; wait up to ``wait_ready_s`` for one ready."""
        slots = sum(e.capacity for e in self.endpoints)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=self.connect_timeout_s, read=MAX_TIMEOUT_S, write=10.0, pool=MAX_TIMEOUT_S),
            limits=httpx.Limits(max_connections=slots + 2 * len(self.endpoints), max_keepalive_connections=slots),
            headers={"User-Agent": "text3d-miner", **({TOKEN_HEADER: self.token} if self.token else {})},
            follow_redirects=False,
            trust_env=False,
        )
        self._changed = asyncio.Condition()
        await self.check_all()
        give_up = self._clock() + self.wait_ready_s
        while not any(e.ready for e in self.endpoints) and self._clock() < give_up:
            await asyncio.sleep(min(0.5, self.health_interval_s))
            await self.check_all()
        ready = sum(e.ready for e in self.endpoints)
        (log.info if ready else log.warning)(
            "%d of %d generation servers ready: %s", ready, len(self.endpoints),
            ", ".join(f"{e.url} ({'ready' if e.ready else e.detail})" for e in self.endpoints),
        )
        self._health_task = asyncio.get_running_loop().create_task(self._health_loop())

    async def close(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            await asyncio.gather(self._health_task, return_exceptions=True)
            self._health_task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def health(self) -> dict[str, Any]:
        return {"pool": "endpoints", "endpoints": [e.describe() for e in self.endpoints]}

    # -- health ----------------------------------------------------------------------------

    async def check_all(self) -> None:
        await asyncio.gather(*(self.check(endpoint) for endpoint in self.endpoints))

    async def check(self, endpoint: Endpoint) -> bool:
        """Ask ``/ready`` (its own short timeout); updates and returns ``endpoint.ready``."""
        assert self._client is not None, "start() the pool first"
        timeout_s = min(2.0, max(0.5, self.health_interval_s))
        try:
            response = await self._client.get(endpoint.url + READY_ROUTE, timeout=timeout_s)
            data = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        except httpx.TimeoutException:  # a busy machine may answer late once; twice in a row is down
            endpoint.misses += 1
            if endpoint.misses >= 2 or not endpoint.ready:
                await self._mark(endpoint, False, "/ready timed out")
            return endpoint.ready
        except (httpx.HTTPError, ValueError) as exc:
            await self._mark(endpoint, False, f"unreachable ({type(exc).__name__})")
            return False
        endpoint.misses = 0
        if response.status_code == 401:
            await self._mark(endpoint, False, _TOKEN_REFUSED)
            return False
        if response.status_code != 200:
            await self._mark(endpoint, False, str(data.get("detail", f"/ready answered {response.status_code}"))[:200])
            return False
        endpoint.queued = int(data.get("queued", 0)) if isinstance(data.get("queued"), int) else 0
        await self._mark(endpoint, True, "ready")
        return True

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            await self.check_all()

    async def _mark(self, endpoint: Endpoint, ready: bool, detail: str) -> None:
        if endpoint.ready != ready:
            (log.info if ready else log.warning)("generation server %s: %s", endpoint.url, detail)
        endpoint.ready, endpoint.detail = ready, detail
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    # -- routing -----------------------------------------------------------------------------

    async def _acquire(self, deadline: float, tried: set[str]) -> Endpoint | None:
        """The least loaded ready endpoint not yet tried, waiting for one until ``deadline``."""
        assert self._changed is not None, "start() the pool first"
        async with self._changed:
            while True:
                untried = [e for e in self.endpoints if e.url not in tried]
                if not untried:
                    return None
                free = [e for e in untried if e.ready and e.in_flight < e.capacity]
                if free:
                    turn, count = next(self._turn), len(self.endpoints)
                    best = min(free, key=lambda e: (e.in_flight / e.capacity, e.queued,
                                                    (self.endpoints.index(e) - turn) % count))  # fmt: skip
                    best.in_flight += 1
                    return best
                remaining_s = deadline - self._clock()
                if remaining_s <= 0:
                    return None
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining_s)
                except TimeoutError:
                    return None

    async def _release(self, endpoint: Endpoint) -> None:
        assert self._changed is not None
        async with self._changed:
            endpoint.in_flight -= 1
            self._changed.notify_all()

    # -- generation --------------------------------------------------------------------------

    async def generate(self, prompts: Sequence[str], seeds: Sequence[int], deadlines: Sequence[float]) -> list[Result]:
        """One result per prompt; each request goes its own way (the servers batch what arrives together)."""
        return list(await asyncio.gather(*(self._one(p, s, d) for p, s, d in zip(prompts, seeds, deadlines))))

    async def _one(self, prompt: str, seed: int, deadline: float) -> Result:
        tried: set[str] = set()
        error: Exception | None = None
        for _ in range(self.max_attempts):
            endpoint = await self._acquire(deadline, tried)
            if endpoint is None:
                break
            try:
                outcome = await self._post(endpoint, prompt, seed, deadline)
            finally:
                await self._release(endpoint)
            if isinstance(outcome, tuple):
                endpoint.answered += 1
                return outcome
            endpoint.failed += 1
            if outcome is _LATE:
                return None
            tried.add(endpoint.url)
            if isinstance(outcome, GenerationError):
                error = outcome  # a failed generation may succeed on another device; report it if none does
        return error

    async def _post(self, endpoint: Endpoint, prompt: str, seed: int, deadline: float) -> Any:
        """``(payload, format)``, ``_LATE``, ``_Unavailable`` or ``GenerationError``; never raises."""
        assert self._client is not None
        remaining_s = deadline - self._clock()
        if remaining_s <= 0.01:
            return _LATE
        body = TextTo3DRequest(prompt=prompt, seed=seed, timeout_s=min(remaining_s, MAX_TIMEOUT_S)).to_body()
        try:
            async with asyncio.timeout(remaining_s):
                response = await self._client.post(
                    endpoint.url + GENERATE_ROUTE, content=body, headers={"Content-Type": "application/json"}
                )
        except (TimeoutError, httpx.TimeoutException):
            return _LATE  # slow is not dead: the health check decides about the endpoint
        except httpx.HTTPError as exc:  # refused, reset, died mid-answer: down until /ready says otherwise
            await self._mark(endpoint, False, f"{type(exc).__name__} during a request")
            return _Unavailable(str(exc))
        status = response.status_code
        if status == 200:
            if len(response.content) > MAX_RESPONSE_BYTES:
                return GenerationError(f"{endpoint.url} answered {len(response.content)} bytes, over the wire's cap")
            try:
                answer = TextTo3DResponse.from_http(response.headers, response.content)
            except MinerTransportError as exc:
                return GenerationError(f"{endpoint.url} answered something unusable: {exc}")
            return answer.payload, answer.format
        detail = _detail(response)
        if status in (429, 503):
            return _Unavailable(detail)  # busy or cannot finish in time: another endpoint may
        if status == 401:
            await self._mark(endpoint, False, _TOKEN_REFUSED)
            return _Unavailable(detail)
        return GenerationError(f"{endpoint.url} answered {status}: {detail}")


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
        if isinstance(data, dict) and isinstance(data.get("detail"), str):
            return data["detail"][:200]
    except ValueError:
        pass
    return response.text[:200]


# -- from settings ---------------------------------------------------------------------------


def build_pool(settings: Any, encode: Encoder) -> Any:
    """The pool ``settings`` name (``text3d.settings.Settings``); loads the generator when in process.

    Raises ``ConfigError`` for a backend that does not import or options it refuses, and
    the generator's own errors (``ModelNotAvailableError``) when loading fails.
    """
    generation = settings.generation
    fmt = MeshFormat(settings.miner.format)
    if generation.endpoint_urls:
        capacity = generation.endpoint_concurrency or settings.miner.max_batch_size
        return EndpointPool(generation.endpoint_urls, capacity=capacity, token=generation.token,
                            health_interval_s=generation.health_interval_s, wait_ready_s=300.0)  # fmt: skip
    if generation.ray_address:
        from text3d.miner.ray_pool import RayPool

        return RayPool.from_settings(settings)
    spec = generation.spec(models=settings.models, device=settings.resolved_device(),
                           max_batch_size=settings.miner.max_batch_size)  # fmt: skip
    return InProcessPool(spec.build(), fmt, encode)
