"""The workers' routes (``text3d.protocol.organic``): claim a job, upload its result, or give it up.

Every request passes ``WorkerGate`` first (btauth/1 signature by a hotkey with a validator
permit, replay-checked in the shared store). A claim long-polls: it is held up to
``wait_s`` (at most 30 s) until a job arrives -- woken at once by a job posted to this process,
and checking the store twice a second for jobs posted to another. A result or a failure is
accepted from the worker holding the job's lease only (409 otherwise: the job was handed on); for a
result, whose body may be tens of megabytes, that is checked on the claimed hotkey before the body
is read, so only a lease holder can make the gateway read one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from text3d.gateway.api import call_store
from text3d.gateway.metrics import GatewayMetrics
from text3d.gateway.store import JobStore
from text3d.gateway.workers import WorkerGate
from text3d.miner.http_body import Refusal
from text3d.protocol.organic import (
    CLAIM_ROUTE, FAIL_ROUTE, RESULT_ROUTE, ClaimRequest, FailRequest, OrganicJob, OrganicWireError, ResultLimits,
    parse_result,
)

__all__ = ["WorkerApi"]

log = logging.getLogger("text3d.gateway")
_SMALL_BODY = 4096
_STORE_POLL_S = 0.5


class WorkerApi:
    def __init__(self, store: JobStore, gate: WorkerGate, metrics: GatewayMetrics, *,
                 result_limits: ResultLimits = ResultLimits(), clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.gate = gate
        self.metrics = metrics
        self.result_limits = result_limits
        self._clock = clock
        self._wake = asyncio.Event()

    def job_added(self) -> None:
        """Wake every claim waiting in this process (a new event for the next ones)."""
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def _admit(self, request: Request, max_body_bytes: int) -> tuple[str, bytes]:
        try:
            return await self.gate.admit(request, max_body_bytes)
        except Refusal as refusal:
            self.metrics.worker_refusals.labels(status=str(refusal.status)).inc()
            raise

    async def claim(self, request: Request) -> Response:
        hotkey, body = await self._admit(request, _SMALL_BODY)
        asked = _parse(ClaimRequest, body)
        deadline = self._clock() + asked.wait_s
        while True:
            wake = self._wake
            claim = await call_store(self.store.claim, hotkey)
            if claim is not None:
                break
            remaining = deadline - self._clock()
            if remaining <= 0 or await request.is_disconnected():
                self.metrics.claims.labels(outcome="empty").inc()
                return Response(status_code=204)
            try:
                await asyncio.wait_for(wake.wait(), min(remaining, _STORE_POLL_S))
            except asyncio.TimeoutError:
                pass
        self.metrics.claims.labels(outcome="job").inc()
        self.metrics.claimed_by(hotkey)
        log.info("job %s claimed by %s (attempt %d)", claim.id, hotkey[:12], claim.attempt)
        job = OrganicJob(id=claim.id, prompt=claim.prompt, seed=claim.seed, format=claim.format,  # type: ignore[arg-type]
                         lease_token=claim.lease_token, lease_s=self.store.policy.lease_s, attempt=claim.attempt)
        return JSONResponse(job.model_dump())

    async def result(self, request: Request, job_id: str) -> Response:
        try:
            hotkey = await self.gate.caller(request)
            job = await call_store(self.store.job, job_id)
            if job is None:
                raise Refusal(404, "no such job")
            if job.status != "running" or job.worker != hotkey:  # before reading up to the result's cap
                raise Refusal(409, "this worker does not hold the job's lease (it was handed on or finished)")
            body = await self.gate.body(request, self.result_limits.max_body_bytes)
        except Refusal as refusal:
            self.metrics.worker_refusals.labels(status=str(refusal.status)).inc()
            raise
        try:
            result = parse_result(body, asked_format=job.format, limits=self.result_limits)
        except OrganicWireError as exc:
            self.metrics.worker_refusals.labels(status=str(exc.status)).inc()
            raise Refusal(exc.status, str(exc)) from None
        manifest = result.manifest
        if manifest.job_id != job_id:
            raise Refusal(400, "the manifest names another job")
        evidence = manifest.evidence.model_copy(update={"validator": hotkey}).model_dump(mode="json")
        stored = await call_store(self.store.complete, job_id, manifest.lease_token, worker=hotkey,
                                  score=manifest.score, evidence=evidence, parts=result.parts)
        if not stored:
            self.metrics.worker_refusals.labels(status="409").inc()
            raise Refusal(409, "this worker no longer holds the job's lease (it was handed on or finished)")
        self.metrics.jobs_finished.labels(status="done").inc()
        self.metrics.job_seconds.observe(max(0.0, time.time() - job.created_at))
        log.info("job %s done by %s: score %.3f, winner uid %d, %d bytes", job_id, hotkey[:12], manifest.score,
                 manifest.evidence.winner_uid, len(body))
        return JSONResponse({"status": "done"})

    async def fail(self, request: Request, job_id: str) -> Response:
        hotkey, body = await self._admit(request, _SMALL_BODY)
        asked = _parse(FailRequest, body)
        status = await call_store(self.store.fail, job_id, asked.lease_token, worker=hotkey, reason=asked.reason)
        if status is None:
            self.metrics.worker_refusals.labels(status="409").inc()
            raise Refusal(409, "this worker no longer holds the job's lease (it was handed on or finished)")
        if status == "failed":
            self.metrics.jobs_finished.labels(status="failed").inc()
        log.info("job %s given up by %s (%s): now %s", job_id, hotkey[:12], asked.reason[:200], status)
        return JSONResponse({"status": status})

    def router(self) -> APIRouter:
        router = APIRouter(tags=["workers"])
        router.add_api_route(CLAIM_ROUTE, self.claim, methods=["POST"], summary="A validator takes a job (signed)")
        router.add_api_route(RESULT_ROUTE, self.result, methods=["POST"], summary="A validator uploads a result")
        router.add_api_route(FAIL_ROUTE, self.fail, methods=["POST"], summary="A validator gives a job up")
        return router


def _parse(model: type, body: bytes):  # noqa: ANN202 -- returns an instance of ``model``
    try:
        return model.model_validate(json.loads(body.decode("utf-8") or "{}"))
    except (UnicodeDecodeError, ValueError, RecursionError, ValidationError):
        raise Refusal(400, f"the body is not a valid {model.__name__}") from None
