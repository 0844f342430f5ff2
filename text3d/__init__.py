"""text3d: a Bittensor subnet for text-to-3D, and a scoring core for any 3D asset.

Package map (the dependency arrows run downwards only; ``tests/test_architecture.py`` checks them):

    common/      helpers with one home each: cache folder, torch device, step seeds, timing
    web/         the interactive 3D viewer every page shares, served without a CDN
    protocol/    the wire schema and route, mesh codec and limits, the one error tree
    generation/  the generator interface, Shap-E (diffusers), the tiny offline pipeline, a procedural backend
    reward/      the scoring core: pinned protocol, render, CLIP, captions, mpnet, defences, the formula, reports
    chain/       the chain contract, the bittensor 11 subtensor adapter, the SQLite devnet, weight rules
    miner/       the miner: ASGI app, caller policy, queue, generation pools (in process, servers, Ray Serve)
    validator/   the validator: miner client, the step as named phases, outcomes, incentive, state, reports,
                 organic jobs from a gateway
    gateway/     the organic gateway: public API with keys and quotas, jobs store, web page; validators work for it
    library/     asset libraries: an index on LanceDB (incremental, Ray Data), search, dedupe
    ops/         logs, doctor, registration, auto-update, the LLaVA server library, joining Ray
    demo/        a whole subnet on one machine (devnet, miners, validator, captioner)
    cli/         the ``text3d`` command line: parse and call only
    settings.py  the one typed settings tree (flags, environment, config files)
    __main__.py  ``python -m text3d``: the ``text3d`` command

``protocol``, ``generation`` and ``reward`` never import bittensor nor the packages below them
in this list: the scoring core works without a wallet or a chain. ``docs/architecture.md``
follows one validator step through these packages.
"""

from text3d.protocol.version import SPEC_VERSION, __version__

__all__ = ["__version__", "SPEC_VERSION"]
