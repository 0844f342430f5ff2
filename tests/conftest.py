"""Test-wide settings. HF_HUB_OFFLINE must be set before Python starts (the Makefile
and .ci/run do); this guard makes a bare `pytest` behave the same for child processes."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mpnet():
    """The GENUINE all-mpnet-base-v2 (438 MB), loaded once per session from the local HF
    cache that scripts/fetch_mpnet.sh fills. Wrap ``mpnet.model`` in a new ``TextEmbedder``
    for fresh caches and counters."""
    from text3d.reward.text import TextEmbedder

    return TextEmbedder.from_pretrained(device="cpu")


@pytest.fixture(scope="session")
def tiny_clip():
    """The tiny random-weight CLIP, built once under $TEXT3D_CACHE and loaded through open_clip."""
    from text3d.reward.clip import ClipScorer
    from text3d.reward.tiny_clip import ensure_tiny_clip

    name, weights = ensure_tiny_clip()
    return ClipScorer.from_pretrained(name, weights, device="cpu")


@pytest.fixture
def scripted_http():
    """``start(script) -> ScriptedHTTP`` (tests/loopback.py): loopback HTTP servers whose answers the
    test scripts, all stopped when the test ends."""
    from tests.loopback import ScriptedHTTP

    servers: list[ScriptedHTTP] = []

    def start(script):
        servers.append(ScriptedHTTP(script))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def decoder_calls(monkeypatch):
    """Counts the payload decoders' calls (tests/counting.py): "refused before decoding" as a count."""
    from tests.counting import DecoderCalls

    return DecoderCalls(monkeypatch)
