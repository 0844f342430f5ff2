"""Helpers with one home each, used across the whole project (they import nothing of ours
but ``text3d.protocol.errors``):

    paths.py        ``cache_dir``: ``$TEXT3D_CACHE`` or ``~/.cache/text3d``
    device.py       ``resolve_device``: one answer for ``auto``, ``cpu``, ``cuda[:N]`` and ``mps``
    timing.py       ``percentile``, ``median``, ``Stopwatch``: how benches and reports time things
    seeds.py        the step seed and the per-step generators every validator draws the same way
    lazy.py         ``lazy_exports``: package exports that load on first use
    argparsing.py   ``CommandParser``: a command's own short usage and a "did you mean" on a bad flag
    hub.py          ``prefer_offline_when_unreachable``: no 50 s of hub retries on a machine without network
    stopping.py     ``stop_on_signals``: the event SIGINT and SIGTERM set, which every neuron waits on
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "cache_dir": "text3d.common.paths",
    "resolve_device": "text3d.common.device",
    "percentile": "text3d.common.timing",
    "median": "text3d.common.timing",
    "Stopwatch": "text3d.common.timing",
    "lazy_exports": "text3d.common.lazy",
    "prefer_offline_when_unreachable": "text3d.common.hub",
    "stop_on_signals": "text3d.common.stopping",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
