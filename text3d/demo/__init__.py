"""``text3d demo`` and the end-to-end tests: a whole subnet on one machine, on the devnet.

    subnet.py       the devnet, wallets and the neurons' command lines (miner, validator, gateway)
    processes.py    child processes with logs, watched and always stopped
    gateway.py      the demo's organic gateway: started, a demo key, one prompt sent through it
    run.py          ``run_demo``: the whole show in order
    leaderboard.py  the leaderboard table and page
    preflight.py    what real weights are missing
"""

from text3d.demo.processes import ChildFailed, ProcessGroup, wait_until
from text3d.ops.net import free_port
from text3d.demo.run import DemoConfig, DemoResult, run_demo
from text3d.demo.subnet import LocalSubnet, TinySettings

__all__ = [
    "LocalSubnet",
    "TinySettings",
    "ProcessGroup",
    "ChildFailed",
    "free_port",
    "wait_until",
    "DemoConfig",
    "DemoResult",
    "run_demo",
]
