"""``text3d demo`` and the end-to-end tests: a whole subnet on one machine, on the devnet."""

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
