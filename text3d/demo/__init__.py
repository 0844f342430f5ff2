"""``text3d demo`` and the end-to-end tests: a whole subnet on one machine, on the devnet.

    subnet.py        ``LocalSubnet``: devnet database, password-less wallets, neuron command lines
                     (miner, validator, gateway)
    processes.py     child processes with logs to files, watched and always cleaned up
    preflight.py     are the real models on this machine before anything is spawned?
    gateway.py       the demo's organic gateway: started, a demo key, one prompt sent through it
    run.py           the demo's script: devnet, captioner, two miners, a gateway, a validator, the results
    leaderboard.py   who earned what, from the chain's weights and the validator's state
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
