"""The ``text3d`` command line: parse and call only; each subcommand is one module here.

    main.py               the entry point (``text3d``) and the subcommand table
    passthrough.py        subcommands that hand their command line to a neuron's own ``main``
    miner.py, validator.py, generation_server.py   the neurons (``text3d miner ...``)
    miner_status.py       ``text3d miner status``: a miner's standing and its recent answers
    register.py           register a hotkey with ``btcli``
    doctor.py             is this machine ready to run a neuron?
    generate.py           one prompt -> one mesh file, locally
    render.py             what a validator sees of a mesh file
    score.py              score and rank asset files against a description
    index.py              index a folder of assets into a library (``text3d index``)
    search.py             search a library by description or ``--like FILE`` (``text3d search``)
    dedupe.py             groups of copies in a library (``text3d dedupe``)
    llava.py              run a local LLaVA captioning server
    devnet.py             administer a local SQLite devnet
    demo.py               the whole subnet on this machine
    gateway.py            the organic gateway and its keys (``text3d gateway keys ...``)
    request.py            ask a gateway for an asset and save the mesh
"""

from text3d.common.lazy import lazy_exports

_HOMES = {"main": "text3d.cli.main", "build_parser": "text3d.cli.main", "COMMANDS": "text3d.cli.main"}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
