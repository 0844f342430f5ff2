"""The miner: turns signed prompts into meshes, served as ``POST /v1/text3d``.

    main.py               composition root: settings -> chain, wallet, pool, queue, app; ``main()``
    app.py                the ASGI app (FastAPI under uvicorn): auth headers, caller policy, capped body
    connections.py        before the app: connection caps per address and in all, read deadlines
    caller_policy.py      who may ask: registered, validator permit, minimum stake (pure)
    nonce_store.py        a btauth/1 replay store shared by the miner's workers (SQLite)
    http_body.py          a request body read under a hard cap; refusals with an HTTP status
    queue.py              admission control, the stake-ordered queue, batched generation
    encoding.py           a mesh -> wire bytes within the validators' limits
    pool.py               where meshes are made: in process or on generation servers
    generation_server.py  ``text3d generation-server``: one generator behind HTTP on one device
    ray_pool.py           generation on a Ray Serve deployment, one replica per GPU
    status.py             the miner's own view: its standing on chain, its answers from its logs
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "Miner": "text3d.miner.main",
    "MinerService": "text3d.miner.app",
    "create_app": "text3d.miner.app",
    "CallerPolicy": "text3d.miner.caller_policy",
    "GenerationQueue": "text3d.miner.queue",
    "InProcessPool": "text3d.miner.pool",
    "build_pool": "text3d.miner.pool",
    "encode_for_wire": "text3d.miner.encoding",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
