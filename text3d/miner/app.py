"""The miner's HTTP server: ``POST /v1/text3d`` as an ASGI app (FastAPI under uvicorn).

Order of checks for one request, cheapest first, each before the work it guards:

1. the btauth/1 headers are present and well formed, signed for *this* miner's hotkey
   and fresh (401) -- nothing read yet;
2. the hotkey they claim passes the caller policy on the cached metagraph: registered,
   validator permit, minimum stake (403) -- still nothing read;
3. the declared ``Content-Length`` is within ``MAX_REQUEST_BYTES`` (413), then the body is
   read under that cap (413 at the cap, whatever the headers said);
4. ``bittensor.http_auth.verify`` over the raw bytes: signature, freshness and replay
   through a nonce store shared by the miner's workers (401);
5. the JSON request parses under its limits (400);
6. admission by the generation queue: per-caller cap (429), deadline or full queue (503),
   both with ``Retry-After``; the caller's timeout is capped at ``max_timeout_s``;
7. the mesh, as raw bytes (200), or 503 when its deadline passed during generation,
   500 when the generator failed.

Every refusal is ``{"detail": "<one short sentence>"}``: no traceback, no echo of the
signature or body. ``GET /health`` says whether the metagraph is synced and how full
the queue is. Every answer, refusals included, is counted in the service's ``metrics``
(``text3d.ops.metrics.MinerMetrics``: by status and caller class, never by hotkey).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from text3d.miner.caller_policy import CallerPolicy, check_caller
from text3d.miner.queue import GenerationQueue, Overloaded
from text3d.miner.http_body import Refusal, read_capped_body
from text3d.ops.metrics import caller_class
from text3d.reward.reporting.terminal import terminal_safe
from text3d.protocol.wire import MAX_REQUEST_BYTES, ROUTE, RequestError, TextTo3DRequest, TextTo3DResponse

__all__ = ["MinerService", "create_app", "precheck_auth_headers"]

log = logging.getLogger("text3d.miner")
Clock = Callable[[], float]

_SS58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{46,48}$")
_NONCE = re.compile(r"^[0-9]{1,20}$")
_SIGNATURE = re.compile(r"^(0x)?[0-9a-fA-F]{128}$")


_Refusal = Refusal  # the shared refusal (text3d.miner.http_body)


def precheck_auth_headers(
    headers: Any, *, self_hotkey: str, max_age_s: float, allowed_skew_s: float, now_ns: int
) -> tuple[str, int]:
    """The claimed ``(hotkey, nonce)`` when the btauth/1 headers look valid; ``_Refusal(401)`` if not.

    A cheap syntactic check (no signature) so that refusals cost no body read; the full
    cryptographic check is ``http_auth.verify`` after the body is in.
    """
    if headers.get("x-bittensor-version") != "1":
        raise _Refusal(401, "missing or unsupported X-Bittensor-Version (btauth/1 expected)")
    hotkey = headers.get("x-bittensor-hotkey", "")
    if not _SS58.match(hotkey):
        raise _Refusal(401, "missing or malformed X-Bittensor-Hotkey")
    receiver = headers.get("x-bittensor-receiver")
    if receiver is None:
        raise _Refusal(401, "missing X-Bittensor-Receiver: requests must be signed for this miner's hotkey")
    if receiver != self_hotkey:
        raise _Refusal(401, "request was signed for a different receiving hotkey")
    nonce_text = headers.get("x-bittensor-nonce", "")
    if not _NONCE.match(nonce_text):
        raise _Refusal(401, "missing or malformed X-Bittensor-Nonce")
    if not _SIGNATURE.match(headers.get("x-bittensor-signature", "")):
        raise _Refusal(401, "missing or malformed X-Bittensor-Signature")
    nonce = int(nonce_text)
    if now_ns - nonce > max_age_s * 1e9:
        raise _Refusal(401, f"request is older than the {max_age_s:g}s freshness window")
    if nonce - now_ns > allowed_skew_s * 1e9:
        raise _Refusal(401, f"request nonce is more than {allowed_skew_s:g}s in the future")
    return hotkey, nonce


@dataclass
class MinerService:
    """The request handler; every part is passed in (see ``neurons.miner.main``)."""

    hotkey: str
    policy: CallerPolicy
    queue: GenerationQueue
    nonce_store: Any
    max_timeout_s: float
    deadline_margin_s: float
    metagraph: Any = None
    clock: Clock = time.monotonic
    wall_clock_ns: Callable[[], int] = time.time_ns
    max_age_s: float = 10.0
    allowed_skew_s: float = 2.0
    answered: int = 0
    refused: int = 0
    dropped: int = 0
    metrics: Any = None  # text3d.ops.metrics.MinerMetrics, or None

    # -- the route ---------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        started = self.clock()
        caller = "-"
        prompt_tag = "-"
        try:
            caller, stake, nonce_ns = self._admit_caller(request)
            body = await self._read_body(request)
            self._verify(request, body)
            task = self._parse(body)
            prompt_tag = hashlib.sha256(task.prompt.encode()).hexdigest()[:10]
            response = await self._generate(task, caller=caller, stake=stake, nonce_ns=nonce_ns)
        except _Refusal as refusal:
            self.refused += 1
            # Connection: close -- uvicorn would otherwise drain (read and discard) a refused body to its
            # declared end, e.g. 200 MB, or forever from a stranger who keeps sending.
            headers = {"Connection": "close"}
            if refusal.retry_after_s:
                headers["Retry-After"] = str(int(math.ceil(refusal.retry_after_s)))
            log.info(  # the detail may quote a caller's JSON keys: escaped, so one request stays one line
                "request from %s prompt %s: %d %s (%.2fs)", caller[:12], prompt_tag, refusal.status,
                terminal_safe(refusal.detail, 200), self.clock() - started,
            )
            self._observe(request, refusal.status, started, detail=refusal.detail)
            return JSONResponse({"detail": refusal.detail}, status_code=refusal.status, headers=headers)
        self.answered += 1
        log.info(
            "request from %s prompt %s: 200 %s %d bytes (%.2fs) gen %.2fs", caller[:12], prompt_tag,
            response.format.value, len(response.payload), self.clock() - started, response.generation_time_s or 0.0,
        )
        self._observe(request, 200, started, generation_s=response.generation_time_s,
                      payload_bytes=len(response.payload))
        return Response(content=response.payload, status_code=200, headers=response.headers())

    def _observe(self, request: Request, status: int, started: float, **details: Any) -> None:
        if self.metrics is None:
            return
        klass = caller_class(self.metagraph, request.headers.get("x-bittensor-hotkey"))
        self.metrics.observe_request(status=status, caller=klass, seconds=self.clock() - started, **details)

    # -- steps ---------------------------------------------------------------------

    def _admit_caller(self, request: Request) -> tuple[str, float, int]:
        hotkey, nonce_ns = precheck_auth_headers(
            request.headers,
            self_hotkey=self.hotkey,
            max_age_s=self.max_age_s,
            allowed_skew_s=self.allowed_skew_s,
            now_ns=self.wall_clock_ns(),
        )
        decision = check_caller(self.metagraph, hotkey, self.policy)
        if not decision.allowed:
            status = 503 if self.metagraph is None else 403
            raise _Refusal(status, decision.reason, 5.0 if status == 503 else None)
        return hotkey, decision.stake, nonce_ns

    async def _read_body(self, request: Request) -> bytes:
        return await read_capped_body(request, MAX_REQUEST_BYTES)

    def _verify(self, request: Request, body: bytes) -> None:
        import bittensor as bt

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            bt.http_auth.verify(
                dict(request.headers),
                body,
                method=request.method,
                path=target,
                self_hotkey_ss58=self.hotkey,
                max_age=self.max_age_s,
                allowed_skew=self.allowed_skew_s,
                nonce_store=self.nonce_store,
            )
        except bt.http_auth.AuthError as exc:
            raise _Refusal(401, str(exc)) from None
        except Exception as exc:  # the replay store failed (disk, lock): our problem, the caller may retry
            log.warning("replay store failed: %s: %s", type(exc).__name__, exc)
            raise _Refusal(503, "the miner's replay store is unavailable", 1.0) from None

    def _parse(self, body: bytes) -> TextTo3DRequest:
        try:
            return TextTo3DRequest.from_body(body)
        except RequestError as exc:
            raise _Refusal(400, str(exc)) from None

    def deadline_of(self, task: TextTo3DRequest, nonce_ns: int | None = None) -> float:
        """The last moment (on ``clock``) an answer is still useful to the caller.

        The budget is the caller's timeout (capped at ``max_timeout_s``), minus the time the
        request already spent in transit -- from the signed nanosecond nonce, when the clocks
        plausibly agree (0 <= age <= timeout) -- minus ``deadline_margin_s`` for the trip back.
        """
        timeout_s = min(task.timeout_s, self.max_timeout_s)
        spent_s = 0.0
        if nonce_ns is not None:
            age_s = (self.wall_clock_ns() - nonce_ns) / 1e9
            if 0.0 <= age_s <= timeout_s:
                spent_s = age_s
        return self.clock() + timeout_s - spent_s - self.deadline_margin_s

    async def _generate(self, task: TextTo3DRequest, *, caller: str, stake: float, nonce_ns: int | None = None) -> TextTo3DResponse:
        deadline = self.deadline_of(task, nonce_ns)
        started = self.clock()
        try:
            result = await self.queue.submit(task.prompt, task.seed, deadline, caller=caller, stake=stake)
        except Overloaded as exc:
            raise _Refusal(exc.status, exc.reason, exc.retry_after_s) from None
        except Exception as exc:
            log.error("generation failed: %s: %s", type(exc).__name__, exc)
            raise _Refusal(500, "generation failed") from None
        if result is None or self.clock() > deadline:
            self.dropped += 1
            raise _Refusal(503, "the answer could not be finished before the caller's deadline", self.queue.retry_after_s())
        if isinstance(result, Exception):
            log.error("could not encode the mesh: %s", result)
            raise _Refusal(500, "the generated mesh could not be encoded")
        payload, fmt = result
        return TextTo3DResponse(payload=payload, format=fmt, generation_time_s=self.clock() - started)

    # -- health ----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "hotkey": self.hotkey,
            "metagraph_synced": self.metagraph is not None,
            "queued": self.queue.queued,
            "max_queue": self.queue.max_queue,
            "expected_batch_s": round(self.queue.expected_batch_s, 3),
            "answered": self.answered,
            "refused": self.refused,
            "dropped": self.dropped,
        }


def create_app(service: MinerService) -> FastAPI:
    """The ASGI app; no docs or OpenAPI routes (nothing to advertise to strangers)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post(ROUTE)
    async def text3d(request: Request) -> Response:
        return await service.handle(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return service.health()

    return app
