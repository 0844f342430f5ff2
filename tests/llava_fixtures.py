"""A real ``llama-server`` with the tiny LLaVA pair, for integration tests.

Import the fixture into a test module (``from tests.llava_fixtures import llava_server``)
or list this module in ``pytest_plugins``. The binary comes from the project's own
``find_llama_server()`` (``$LLAMA_SERVER``, PATH, or ``text3d/ops/llava/build_llama_server.sh``:
a no-op when cached, a full build on a fresh CI machine); the model from
``tiny_llava_models()``. Nothing is skipped: a machine that cannot build the server
fails these tests loudly.
"""

from typing import Iterator

import pytest

from text3d.ops.llava import LlamaServer, LlamaServerConfig, find_llama_server, tiny_llava_models
from text3d.ops.net import free_port

__all__ = ["start_tiny_llava_server", "llava_server", "LLAVA_TEST_SLOTS"]

LLAVA_TEST_SLOTS = 4


def start_tiny_llava_server(slots: int = LLAVA_TEST_SLOTS, ready_timeout_s: float = 60.0) -> LlamaServer:
    """Start the tiny pair on a free 127.0.0.1 port with ``slots`` slots; ready on return.

    One compute thread: the tiny model gains nothing from more, and llama.cpp's spinning
    worker threads slow to a crawl (30x measured) on a shared, oversubscribed CI box."""
    binary = find_llama_server()
    model_path, mmproj_path = tiny_llava_models(binary)
    config = LlamaServerConfig(binary=binary, model_path=model_path, mmproj_path=mmproj_path,
                               port=free_port(), slots=slots, context_tokens=512 * slots, threads=1)
    server = LlamaServer(config).start()
    try:
        server.wait_until_ready(ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def llava_server() -> Iterator[LlamaServer]:
    server = start_tiny_llava_server()
    try:
        yield server
    finally:
        server.stop()
