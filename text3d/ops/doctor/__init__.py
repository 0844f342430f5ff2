"""``text3d doctor``: is this machine ready to run a neuron? One ``Check`` line per question.

    machine.py   python, torch and CUDA, GPU memory, the renderer's GL_RENDERER, disk, model files
    network.py   captioner, chain and wallet, port, external address, clock
    captioner.py does the captioner caption on a GPU (vLLM, the local llama-server's build and -ngl)
    roles.py     which checks a role (miner, validator) runs, in order: ``run_checks``
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "Check": "text3d.ops.doctor.machine",
    "Status": "text3d.ops.doctor.machine",
    "run_checks": "text3d.ops.doctor.roles",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
