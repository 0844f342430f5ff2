"""The gateway's ASGI app (FastAPI under uvicorn): the public API, the workers' routes, the page.

    /                     the web page (``text3d.gateway.page``)
    /v1/assets...         the public API (``text3d.gateway.api``), OpenAPI at /docs and /openapi.json
    /v1/worker/...        the validators' routes (``text3d.gateway.worker_api``)
    /health               200 while the store answers, 503 when it does not
    /metrics              Prometheus text (``text3d.gateway.metrics``), for ``metrics_allow`` addresses only

Every refusal is ``{"detail": "<one sentence>"}`` with its status (and ``Retry-After`` where
waiting helps); no traceback, no echo of a key or a body. Housekeeping runs beside the
server: every few seconds it hands on jobs whose worker's lease passed and fails those out of
attempts or time; every minute it prunes results over the size and age caps; it refreshes
the workers' metagraph as it ages.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from text3d.gateway.api import AssetApi, call_store
from text3d.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from text3d.gateway.page import PageAssets
from text3d.gateway.prompts import PromptPolicy
from text3d.gateway.quotas import Limits
from text3d.gateway.store import JobStore
from text3d.gateway.worker_api import WorkerApi
from text3d.gateway.workers import WorkerGate
from text3d.miner.http_body import Refusal
from text3d.protocol.organic import ResultLimits
from text3d.protocol.version import __version__

__all__ = ["Housekeeping", "create_app"]

log = logging.getLogger("text3d.gateway")


@dataclass(frozen=True)
class Housekeeping:
    """How often the app sweeps leases, prunes results and how large results may grow."""

    sweep_interval_s: float = 2.0
    prune_interval_s: float = 60.0
    results_max_bytes: int = 2048 * 2**20
    results_max_age_s: float = 7 * 86400.0


def create_app(settings: Any, store: JobStore, gate: WorkerGate, *, prompts: PromptPolicy | None = None,
               housekeeping: Housekeeping | None = None, result_limits: ResultLimits = ResultLimits(),
               page: PageAssets | None = None) -> FastAPI:
    """The gateway for a ``GatewaySettings`` section, a store and a worker gate (all built by the caller)."""
    metrics = GatewayMetrics(read_counts=store.counts)
    housekeeping = housekeeping or Housekeeping(results_max_bytes=int(settings.results_max_mb * 2**20),
                                                results_max_age_s=settings.results_max_age_h * 3600.0)
    anonymous = (Limits(settings.anonymous_per_minute, settings.anonymous_per_day, settings.anonymous_concurrency)
                 if settings.anonymous_per_day > 0 else None)
    workers = WorkerApi(store, gate, metrics, result_limits=result_limits)
    assets = AssetApi(store, prompts or PromptPolicy.from_file(settings.max_prompt_chars, settings.blocklist), metrics,
                      anonymous=anonymous, max_queued=settings.max_queued,
                      min_free_bytes=int(settings.min_free_mb * 2**20), on_new_job=workers.job_added)
    page = page or PageAssets(anonymous=anonymous is not None, max_prompt_chars=settings.max_prompt_chars)
    metrics_allow = {a.strip() for a in settings.metrics_allow.split(",") if a.strip()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_housekeep(store, gate, housekeeping))
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # /docs is ours: FastAPI's default loads Swagger UI from a CDN, which shows nothing offline
    app = FastAPI(title="text3d gateway", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Text to 3D from a Bittensor subnet: post a prompt with your key, follow the job, "
                              "fetch the winning mesh. Every call: `Authorization: Bearer <key>`.")
    app.state.metrics = metrics
    app.state.store = store

    @app.exception_handler(Refusal)
    async def refused(request: Request, refusal: Refusal) -> JSONResponse:
        headers = {}
        if refusal.retry_after_s:
            headers["Retry-After"] = str(max(1, int(math.ceil(refusal.retry_after_s))))
        if refusal.status == 401 and request.url.path.startswith("/v1/assets"):
            headers["WWW-Authenticate"] = "Bearer"
        if request.method == "POST":  # the body may not have been read: never let uvicorn drain it
            headers["Connection"] = "close"
        return JSONResponse({"detail": refusal.detail}, status_code=refusal.status, headers=headers)

    app.add_middleware(_CountRequests, metrics=metrics)

    @app.get("/health", tags=["service"], summary="Whether the gateway can take jobs")
    async def health() -> JSONResponse:
        try:
            counts = await call_store(store.counts)
        except Refusal as refusal:
            return JSONResponse({"status": "unavailable", "detail": refusal.detail}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__, "jobs": counts,
                             "workers_active": metrics.active_workers(),
                             "metagraph": gate.metagraph is not None})

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        client = request.client.host if request.client else ""
        if "*" not in metrics_allow and client not in metrics_allow:
            return JSONResponse({"detail": "metrics are served to the operator's addresses only"}, status_code=403)
        try:
            body = await asyncio.to_thread(metrics.exposition)
        except Exception as exc:  # the store is down: say so instead of half a scrape
            return JSONResponse({"detail": f"metrics unavailable: {type(exc).__name__}"}, status_code=503)
        return Response(body, media_type=CONTENT_TYPE)

    app.include_router(assets.router())
    app.include_router(workers.router())
    app.include_router(page.router())
    app.include_router(api_docs_router(app.openapi_url or "/openapi.json", app.title))
    return app


def api_docs_router(openapi_url: str, title: str, swagger_dir: Path | None = None) -> APIRouter:
    """``GET /docs``: Swagger UI over the OpenAPI schema, every file served by the gateway itself.

    Swagger UI comes from the npm registry (``scripts/fetch_viewer.sh``); without it /docs says
    how to get it and links the raw schema, which is all a client generator needs.
    """
    from fastapi.openapi.docs import get_swagger_ui_html

    from text3d.web.viewer import SWAGGER_UI_FILES, swagger_ui_dir

    folder = swagger_dir if swagger_dir is not None else swagger_ui_dir()
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def docs() -> Response:
        if folder is None:
            return HTMLResponse(f"<!doctype html><title>{html.escape(title)}: API</title><p>The interactive API "
                                "docs need Swagger UI: run <code>make setup</code> (or scripts/fetch_viewer.sh). "
                                f'The schema itself: <a href="{html.escape(openapi_url)}">{html.escape(openapi_url)}</a>.')
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{title}: API",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger/favicon-32x32.png")

    @router.get("/static/swagger/{name}")
    async def swagger_file(name: str) -> Response:
        if folder is None or name not in SWAGGER_UI_FILES:  # a fixed list: no path from a caller reaches the disk
            return JSONResponse({"detail": "not found"}, status_code=404)
        return FileResponse(folder / name, media_type=SWAGGER_UI_FILES[name],
                            headers={"Cache-Control": "public, max-age=86400"})

    return router


class _CountRequests:
    """Pure ASGI middleware: every HTTP request into ``text3d_gateway_requests_total`` under its route template."""

    def __init__(self, app: Any, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_request(route, status, time.perf_counter() - started)


async def _housekeep(store: JobStore, gate: WorkerGate, plan: Housekeeping) -> None:
    """Sweep, prune and refresh forever; a failure is logged and the next round tries again."""
    last_prune = -math.inf
    while True:
        try:
            await asyncio.to_thread(store.sweep)
            if time.monotonic() - last_prune >= plan.prune_interval_s:
                last_prune = time.monotonic()
                await asyncio.to_thread(store.prune, max_bytes=plan.results_max_bytes, max_age_s=plan.results_max_age_s)
            await gate.refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("housekeeping failed (retrying in %.0f s): %s: %s", plan.sweep_interval_s,
                        type(exc).__name__, exc)
        await asyncio.sleep(plan.sweep_interval_s)
