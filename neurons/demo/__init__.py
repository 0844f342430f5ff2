"""``text3d demo`` and the end-to-end tests: a whole subnet on one machine, on the devnet."""

from neurons.demo.processes import ChildFailed, ProcessGroup, free_port, wait_until
from neurons.demo.run import DemoConfig, DemoResult, run_demo
from neurons.demo.subnet import LocalSubnet, TinySettings

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
