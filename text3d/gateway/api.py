"""The public API: ask for an asset, follow it, fetch it. Every call ``Authorization: Bearer <key>``.

    POST /v1/assets                   {"prompt", "seed"?, "format"?: glb|ply|draco}  -> 202 {"id", ...}
    GET  /v1/assets/{id}              status, timestamps; when done the score, evidence and links
    GET  /v1/assets/{id}/mesh         the mesh in the asked format
    GET  /v1/assets/{id}/preview.glb  the mesh as GLB (what a web viewer loads; the mesh itself for glb)
    GET  /v1/assets/{id}/views/{i}.png  the i-th rendered view the validator scored

Order of checks for ``POST /v1/assets``, each before the work it guards: the key (401: missing,
malformed, unknown or revoked; without a key only when anonymous access is on, then limited
per address -- per /64 for IPv6); the body under ``MAX_BODY_BYTES`` (413, before it is
parsed); the JSON schema (422); the prompt rules (``text3d.gateway.prompts``: 422); then the
caller's limits and the gateway's queue, counted and charged in the store's one transaction
(429 / 503 with ``Retry-After``), and the store's disk (507). A job is visible to the key that
asked for it only (anonymous jobs: to the address group); anything else is a 404.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from ipaddress import IPv6Address, ip_address, ip_network
from typing import Any, Callable, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from text3d.gateway.metrics import GatewayMetrics
from text3d.gateway.prompts import PromptPolicy, PromptRejected
from text3d.gateway.quotas import Limits
from text3d.gateway.store import JobRecord, JobStore, NewJob
from text3d.miner.http_body import Refusal, read_capped_body
from text3d.protocol.errors import StoreFull, StoreUnavailable
from text3d.protocol.wire import MAX_SEED

__all__ = ["AssetRequest", "AssetStatus", "AssetApi", "Caller", "MAX_BODY_BYTES", "call_store"]

log = logging.getLogger("text3d.gateway")

MAX_BODY_BYTES = 8192
"""A 512-character prompt (each character escaped as ``\\uXXXX`` is 3 KiB), a seed and a format fit."""
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MEDIA_TYPES = {"glb": "model/gltf-binary", "ply": "application/octet-stream", "draco": "application/octet-stream"}
EXTENSIONS = {"glb": "glb", "ply": "ply", "draco": "drc"}


class AssetRequest(BaseModel):
    """``POST /v1/assets``: what to make. The prompt is checked and normalised by the gateway's rules."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(description="What to make, e.g. 'a red wooden chair' (printable text, at most 512 characters).")
    seed: int | None = Field(None, ge=0, le=MAX_SEED,
                             description="For reproducible results: each miner derives its own seed from it.")
    format: Literal["glb", "ply", "draco"] = Field("glb", description="Format of GET /v1/assets/{id}/mesh.")


class AssetLinks(BaseModel):
    self: str
    page: str
    mesh: str | None = None
    preview: str | None = None
    views: list[str] = Field(default_factory=list)


class AssetStatus(BaseModel):
    """``GET /v1/assets/{id}``."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    prompt: str
    seed: int | None
    format: str
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    queue_position: int | None = Field(None, description="Jobs ahead of this one while queued.")
    reason: str | None = Field(None, description="Why the job failed (failed only).")
    note: str | None = Field(None, description="What happened to an earlier attempt (queued or running).")
    score: float | None = None
    evidence: dict[str, Any] | None = Field(None, description="Per-view CLIP and captions, and every candidate miner.")
    pruned: bool = Field(False, description="The result was stored and has since been pruned (size or age cap).")
    links: AssetLinks


@dataclass(frozen=True)
class Caller:
    """Who is asking: a key's id (``k_...``) or an address group (``ip:...``), and their limits."""

    owner: str
    limits: Limits
    label: str


async def call_store(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A store call off the event loop; the store's failures as HTTP refusals (503 / 507)."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except StoreFull as exc:
        raise Refusal(507, str(exc), 60.0) from None
    except StoreUnavailable as exc:
        log.warning("store unavailable: %s", exc)
        raise Refusal(503, "the gateway's store is unavailable; try again shortly", 5.0) from None


def address_owner(host: str | None) -> str:
    """The anonymous caller's quota owner: its IPv4 address, or its IPv6 /64 (one subscriber's block)."""
    try:
        address = ip_address(host or "")
    except ValueError:
        return f"ip:{(host or 'unknown')[:64]}"
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ip_network(f'{address}/64', strict=False)}"
    return f"ip:{address}"


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AssetApi:
    """The public routes; every part passed in (``text3d.gateway.app.create_app`` builds it)."""

    def __init__(self, store: JobStore, prompts: PromptPolicy, metrics: GatewayMetrics, *,
                 anonymous: Limits | None, max_queued: int, min_free_bytes: int,
                 on_new_job: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.prompts = prompts
        self.metrics = metrics
        self.anonymous = anonymous
        self.max_queued = max_queued
        self.min_free_bytes = min_free_bytes
        self.on_new_job = on_new_job

    # -- who --------------------------------------------------------------------------

    async def caller(self, request: Request) -> Caller:
        header = request.headers.get("authorization")
        if header is None:
            if self.anonymous is None:
                raise self._auth_refusal("an API key is required: send Authorization: Bearer <key>")
            owner = address_owner(request.client.host if request.client else None)
            return Caller(owner, self.anonymous, owner)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._auth_refusal("malformed Authorization header: send Authorization: Bearer <key>")
        record = await call_store(self.store.key_by_secret, token.strip())
        if record is None:
            raise self._auth_refusal("unknown or revoked API key")
        return Caller(record.id, record.limits, f"{record.id} ({record.name})")

    def _auth_refusal(self, detail: str) -> Refusal:
        self.metrics.refusals.labels(limit="auth").inc()
        return Refusal(401, detail)

    # -- routes ----------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        caller = await self.caller(request)
        body = await read_capped_body(request, MAX_BODY_BYTES)
        asked = _parse_request(body)
        try:
            prompt = self.prompts.check(asked.prompt)
        except PromptRejected as exc:
            self.metrics.refusals.labels(limit="prompt").inc()
            raise Refusal(422, str(exc)) from None
        try:
            admission, job = await call_store(self.store.admit, caller.owner, caller.limits,
                                              NewJob(prompt, asked.seed, asked.format), max_queued=self.max_queued,
                                              min_free_bytes=self.min_free_bytes)
        except Refusal as refusal:
            if refusal.status == 507:
                self.metrics.refusals.labels(limit="disk_full").inc()
            raise
        if not admission.allowed:
            self.metrics.refusals.labels(limit=admission.limit or "other").inc()
            raise Refusal(admission.status, admission.reason, admission.retry_after_s)
        self.metrics.jobs_created.inc()
        self.on_new_job()
        log.info("job %s queued for %s: %d characters, format %s", job.id, caller.label, len(prompt), job.format)
        status = self._status(request, job, position=None)
        return JSONResponse(status.model_dump(), status_code=202,
                            headers={"Location": status.links.self})

    async def status(self, request: Request, job_id: str) -> AssetStatus:
        job = await self._own_job(request, job_id)
        position = await call_store(self.store.queue_position, job.id) if job.status == "queued" else None
        return self._status(request, job, position)

    async def part(self, request: Request, job_id: str, name: str) -> Response:
        job = await self._own_job(request, job_id)
        if job.status != "done":
            raise Refusal(409, f"the asset is not ready: it is {job.status}")
        if job.pruned_at is not None:
            raise Refusal(410, "the result was pruned (the gateway keeps results for a limited time and size)")
        if name == "preview.glb" and job.format == "glb":
            name = "mesh"
        data = await call_store(self.store.blob, job.id, name)
        if data is None:
            raise Refusal(404, "no such part of this asset")
        if name.startswith("view_"):
            media, filename = "image/png", f"text3d-{job.id[:8]}-{name.replace('_', '-')}"
        else:
            fmt = job.format if name == "mesh" else "glb"
            media, filename = MEDIA_TYPES[fmt], f"text3d-{job.id[:8]}.{EXTENSIONS[fmt]}"
        return Response(data, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private, max-age=86400"})

    async def _own_job(self, request: Request, job_id: str) -> JobRecord:
        caller = await self.caller(request)
        job = await call_store(self.store.job, job_id) if _JOB_ID.match(job_id) else None
        if job is None or job.owner != caller.owner:  # another caller's job does not exist, as far as you know
            raise Refusal(404, "no such asset")
        return job

    def _status(self, request: Request, job: JobRecord, position: int | None) -> AssetStatus:
        base = str(request.base_url).rstrip("/") + f"/v1/assets/{job.id}"
        links = AssetLinks(self=base, page=str(request.base_url).rstrip("/") + f"/#{job.id}")
        if job.status == "done" and job.pruned_at is None:
            links.mesh, links.preview = base + "/mesh", base + "/preview.glb"
            links.views = [f"{base}/views/{i}.png" for i in range(job.n_views)]
        return AssetStatus(
            id=job.id, status=job.status, prompt=job.prompt, seed=job.seed, format=job.format,
            created_at=_iso(job.created_at), started_at=_iso(job.started_at), finished_at=_iso(job.finished_at),
            attempts=job.attempts, queue_position=position,
            reason=job.reason if job.status == "failed" else None,
            note=job.reason if job.status in ("queued", "running") else None,
            score=job.score, evidence=job.evidence, pruned=job.pruned_at is not None, links=links,
        )

    def router(self) -> APIRouter:
        router = APIRouter(tags=["assets"])
        body_schema = {"requestBody": {"required": True, "content": {
            "application/json": {"schema": AssetRequest.model_json_schema()}}}}

        @router.post("/v1/assets", status_code=202, response_model=AssetStatus, openapi_extra=body_schema,
                     summary="Ask for an asset", responses={401: {}, 413: {}, 422: {}, 429: {}, 503: {}, 507: {}})
        async def create(request: Request) -> Response:
            return await self.create(request)

        @router.get("/v1/assets/{job_id}", response_model=AssetStatus, summary="Status, score and evidence")
        async def status(request: Request, job_id: str) -> AssetStatus:
            return await self.status(request, job_id)

        @router.get("/v1/assets/{job_id}/mesh", summary="The mesh in the asked format",
                    response_class=Response, responses={200: {"content": {"model/gltf-binary": {}}}})
        async def mesh(request: Request, job_id: str) -> Response:
            return await self.part(request, job_id, "mesh")

        @router.get("/v1/assets/{job_id}/preview.glb", summary="The mesh as GLB, for web viewers",
                    response_class=Response, responses={200: {"content": {"model/gltf-binary": {}}}})
        async def preview(request: Request, job_id: str) -> Response:
            return await self.part(request, job_id, "preview.glb")

        @router.get("/v1/assets/{job_id}/views/{index}.png", summary="A rendered view the validator scored",
                    response_class=Response, responses={200: {"content": {"image/png": {}}}})
        async def view(request: Request, job_id: str, index: int) -> Response:
            if not 0 <= index < 100:
                raise Refusal(404, "no such view")
            return await self.part(request, job_id, f"view_{index}.png")

        return router


def _parse_request(body: bytes) -> AssetRequest:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Refusal(422, 'the body must be UTF-8 JSON like {"prompt": "a red wooden chair"}') from None
    if not isinstance(data, dict):
        raise Refusal(422, 'the body must be a JSON object like {"prompt": "a red wooden chair"}')
    try:
        return AssetRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise Refusal(422, f"field {where}: {first.get('msg', 'invalid')}") from None
