"""Running the neurons for real: logs, checks, wallets, updates, ports, the captioning server.

    logs.py          one handler set per process: plain or JSON lines, rotation, never colour
    metrics.py       Prometheus: ``--metrics.*`` settings, the miner's and validator's metrics, the server
    net.py           ``free_port``, ``check_port_free`` (bind before start-up), ``external_ip``
    registration.py  open a wallet and refuse to start unregistered; create test wallets
    autoupdate.py    optional: pull, reinstall and restart when ``spec_version`` changes
    doctor/          ``text3d doctor``'s checks: machine, models, network, per role
    llava/           the LLaVA server library: find or build ``llama-server``, models, the process
    ray_cluster.py   joining a Ray cluster, one way for the miner's Serve replicas and library indexing
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "setup_logging": "text3d.ops.logs",
    "free_port": "text3d.ops.net",
    "check_port_free": "text3d.ops.net",
    "open_registered": "text3d.ops.registration",
    "start_autoupdate": "text3d.ops.autoupdate",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
