"""The LLaVA captioning server library: find or build ``llama-server``, get the models, run the server.

    binary.py   ``find_llama_server``: ``$LLAMA_SERVER``, PATH, else the cached build of
                ``build_llama_server.sh`` (shipped inside this package, so it works from a wheel):
                CUDA when a toolkit and a GPU are there, else the CPU (``build_backend`` says which)
    models.py   ``download_llava`` (LLaVA-1.5 7B/13B gguf from the hub), ``tiny_llava_models`` (offline)
    server.py   ``LlamaServer`` / ``LlamaServerConfig``: start, wait until ``/health`` is 200, stop

Used by ``text3d llava`` (``text3d.cli.llava``), the demo, the tests and the benches.
"""

from text3d.ops.llava.binary import LlavaSetupError, build_backend, find_llama_server, planned_build
from text3d.ops.llava.models import LLAVA_QUANTS, LLAVA_REPOS, MMPROJ_FILE, download_llava, tiny_llava_models
from text3d.ops.llava.server import LLAVA15_CHAT_TEMPLATE, LlamaServer, LlamaServerConfig

__all__ = [
    "LlavaSetupError",
    "find_llama_server",
    "build_backend",
    "planned_build",
    "download_llava",
    "tiny_llava_models",
    "LLAVA_REPOS",
    "LLAVA_QUANTS",
    "MMPROJ_FILE",
    "LlamaServer",
    "LlamaServerConfig",
    "LLAVA15_CHAT_TEMPLATE",
]
