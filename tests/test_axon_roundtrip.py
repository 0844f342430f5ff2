"""A mesh crosses a real bittensor Axon/Dendrite pair on 127.0.0.1 intact, and a body
whose prompt or seed differs from what the dendrite signed is rejected by the axon's
body hash before the miner's handler runs.

No ``from __future__ import annotations`` here: ``Axon.attach`` inspects the real
annotations of forward/blacklist (``typing.Tuple[bool, str]``, not ``tuple``).
"""

import asyncio
import socket
import time
import typing

import bittensor as bt
import httpx
import numpy as np
import pytest
from scipy.spatial import cKDTree

from protocol import MeshFormat, TextTo3D
from tests.meshes import coloured_sphere

pytestmark = pytest.mark.integration

MESH = coloured_sphere(target_faces=150_000, seed=5)  # ~3 MB as binary PLY


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _wallet(name: str, path: str) -> "bt.Wallet":
    wallet = bt.Wallet(name=name, hotkey="default", path=path)
    wallet.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=False, suppress=True)
    return wallet


class Miner:
    """The trivial forward: answers with MESH in the format named by the prompt's first word."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def forward(self, synapse: TextTo3D) -> TextTo3D:
        self.seen.append((synapse.prompt, synapse.seed))
        return synapse.attach_mesh(MESH, MeshFormat(synapse.prompt.split()[0]), generation_time_s=1.25)

    def blacklist(self, synapse: TextTo3D) -> typing.Tuple[bool, str]:
        return False, "loopback test: everyone is welcome"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(axon, miner, validator wallet): a started Axon with its own wallet, and a second wallet."""
    folder = str(tmp_path_factory.mktemp("wallets"))
    miner = Miner()
    axon = bt.Axon(wallet=_wallet("miner", folder), port=_free_port(), ip="127.0.0.1", external_ip="127.0.0.1")
    axon.attach(forward_fn=miner.forward, blacklist_fn=miner.blacklist)
    axon.start()  # returns before uvicorn listens
    _wait_for_port(axon.port, timeout_s=30.0)
    try:
        yield axon, miner, _wallet("validator", folder)
    finally:
        axon.stop()


@pytest.fixture
def dendrite(served, monkeypatch):
    # Dendrite() asks the internet for its public IP; on loopback it is 127.0.0.1
    monkeypatch.setattr(bt.utils.networking, "get_external_ip", lambda: "127.0.0.1")
    return bt.Dendrite(wallet=served[2])


def _query(dendrite, axon, synapse: TextTo3D) -> TextTo3D:
    async def call() -> TextTo3D:
        try:
            (response,) = await dendrite.forward(axons=[axon.info()], synapse=synapse, timeout=60, deserialize=False)
            return response
        finally:
            await dendrite.aclose_session()

    return asyncio.run(call())


@pytest.mark.parametrize("fmt", [MeshFormat.PLY, MeshFormat.DRACO])
def test_mesh_round_trips_through_axon_and_dendrite(served, dendrite, fmt):
    axon, miner, _ = served
    response = _query(dendrite, axon, TextTo3D(prompt=f"{fmt.value} a lumpy coloured blob", seed=42))
    assert response.is_success, response.dendrite.status_message
    assert miner.seen[-1] == (f"{fmt.value} a lumpy coloured blob", 42)
    assert response.mesh_format == fmt.value and response.generation_time_s == 1.25
    mesh = response.deserialize()
    assert mesh is not None and mesh.faces.shape == MESH.faces.shape
    np.testing.assert_array_equal(np.sort(mesh.visual.vertex_colors, axis=0), np.sort(MESH.visual.vertex_colors, axis=0))
    if fmt is MeshFormat.PLY:
        assert len(response.mesh_bytes()) > 2_000_000
        np.testing.assert_array_equal(mesh.vertices, MESH.vertices.astype(np.float32))
        np.testing.assert_array_equal(mesh.faces, MESH.faces)
    else:
        distance, _ = cKDTree(MESH.vertices).query(mesh.vertices)
        assert distance.max() <= 1e-3 * np.linalg.norm(np.ptp(MESH.vertices, axis=0))


def _signed_post(dendrite, axon, prompt: str, seed: int, body_edit: dict) -> httpx.Response:
    """POST what Dendrite.call would send, after editing the JSON body (headers untouched)."""
    synapse = dendrite.preprocess_synapse_for_request(axon.info(), TextTo3D(prompt=prompt, seed=seed), timeout=30)
    headers, body = synapse.to_headers(), synapse.model_dump()
    body.update(body_edit)
    assert (TextTo3D(**body).body_hash == headers["computed_body_hash"]) == (not body_edit)
    return httpx.post(f"http://127.0.0.1:{axon.port}/TextTo3D", headers=headers, json=body, timeout=30)


@pytest.mark.parametrize("edit", [{"prompt": "ply a tampered blob"}, {"seed": 7}], ids=["prompt", "seed"])
def test_tampered_request_body_is_rejected_before_the_handler_runs(served, dendrite, edit):
    axon, miner, _ = served
    control = _signed_post(dendrite, axon, "ply an honest blob", 1, {})
    assert control.status_code == 200 and miner.seen[-1] == ("ply an honest blob", 1)
    handled = len(miner.seen)
    tampered = _signed_post(dendrite, axon, "ply an honest blob", 1, edit)
    # the signature covers the header's body hash, which still matches the signed fields;
    # only the axon's re-hash of the body (verify_body_integrity) can tell -- and refuses
    assert tampered.status_code >= 400
    assert len(miner.seen) == handled  # the miner's forward never saw the tampered request
