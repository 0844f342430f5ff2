"""The organic gateway: people and apps ask for assets; validators are its workers.

    main.py             composition root: ``text3d gateway`` (serve) and ``text3d gateway keys ...``
    app.py              the ASGI app: routes assembled, refusals, /health, /metrics, housekeeping
    api.py              the public API: POST /v1/assets, status, mesh, preview, views (Bearer keys)
    worker_api.py       the validators' routes: claim (long poll), result, fail (text3d.protocol.organic)
    workers.py          who may work: btauth/1 signatures from hotkeys with a validator permit
    keys.py             API keys: a secret shown once, its SHA-256 stored
    quotas.py           per-minute, per-day and concurrency limits: a pure decision
    prompts.py          prompt checks: length, printable text, a blocklist
    store.py            the store's interface, its records, ``open_store``
    sql_store.py        the one SQL body of both stores
    sqlite_store.py     the embedded store (one SQLite file)
    postgres_store.py   the shared store (PostgreSQL, for several gateway processes)
    metrics.py          Prometheus metrics, text3d_gateway_*
    page.py             the web page (static/: HTML, JS, CSS) and the 3D viewer's script
    client.py           a client for scripts: submit, wait, download (``text3d request``)
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "create_app": "text3d.gateway.app",
    "open_store": "text3d.gateway.store",
    "JobStore": "text3d.gateway.store",
    "JobPolicy": "text3d.gateway.store",
    "Limits": "text3d.gateway.quotas",
    "PromptPolicy": "text3d.gateway.prompts",
    "WorkerGate": "text3d.gateway.workers",
    "GatewayClient": "text3d.gateway.client",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
