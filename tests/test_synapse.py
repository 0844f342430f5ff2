"""The TextTo3D synapse: bounded, hash-protected request fields; a response that the
validator can always deserialize without an exception (a bad mesh is None, not a crash)."""

import base64
import json

import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import protocol
from protocol import MeshDecodeError, MeshFormat, TextTo3D, encode_mesh
from protocol.limits import MeshLimits
from protocol.synapse import MAX_MESH_B64_CHARS, MAX_PROMPT_CHARS, MAX_SEED
from tests.meshes import red_cube, uncoloured_cube


def test_package_exports_a_short_all_and_resolves_each_name():
    assert len(protocol.__all__) <= 8
    for name in protocol.__all__:
        assert getattr(protocol, name) is not None
    with pytest.raises(AttributeError):
        protocol.not_a_name  # noqa: B018


def test_prompt_and_seed_are_bounded():
    TextTo3D(prompt="x" * MAX_PROMPT_CHARS, seed=MAX_SEED)
    for bad in ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, {"seed": -1}, {"seed": MAX_SEED + 1}, {"seed": "seven"}):
        with pytest.raises(ValidationError):
            TextTo3D(**bad)
    synapse = TextTo3D(prompt="a chair", seed=1)
    with pytest.raises(ValidationError):  # assignment is validated too
        synapse.prompt = "x" * (MAX_PROMPT_CHARS + 1)


def test_prompt_and_seed_are_in_the_body_hash_and_the_response_is_not():
    assert TextTo3D.required_hash_fields == ("prompt", "seed")
    base = TextTo3D(prompt="a chair", seed=1).body_hash
    assert TextTo3D(prompt="a chairs", seed=1).body_hash != base
    assert TextTo3D(prompt="a chair", seed=2).body_hash != base
    answered = TextTo3D(prompt="a chair", seed=1).attach_mesh(red_cube(), generation_time_s=2.0)
    assert answered.body_hash == base  # the miner's answer does not break the request's hash


def test_a_synapse_rebuilt_from_headers_alone_is_valid():
    # the axon first builds the synapse from headers, where prompt and seed are absent
    headers = TextTo3D(prompt="a chair", seed=1).to_headers()
    rebuilt = TextTo3D.from_headers(headers)
    assert rebuilt.prompt == "" and rebuilt.seed == 0 and rebuilt.mesh_b64 is None


@pytest.mark.parametrize("fmt", list(MeshFormat))
def test_attach_then_deserialize_after_a_json_round_trip(fmt):
    sent = TextTo3D(prompt="a red cube", seed=3).attach_mesh(red_cube(), fmt, generation_time_s=0.5)
    received = TextTo3D(**json.loads(json.dumps(sent.model_dump())))
    assert received.mesh_format == fmt.value and received.generation_time_s == 0.5
    mesh = received.deserialize()
    assert mesh is not None and len(mesh.faces) == 12
    assert (mesh.visual.vertex_colors == [255, 0, 0, 255]).all()


def test_declared_format_is_informational_only():
    synapse = TextTo3D(mesh_b64=base64.b64encode(encode_mesh(red_cube(), MeshFormat.DRACO)).decode(), mesh_format="glb")
    assert synapse.deserialize() is not None


@pytest.mark.parametrize(
    "mesh_b64, reason",
    [
        (None, "carries no mesh"),
        ("", "carries no mesh"),
        ("not base64!", "not valid base64"),
        (base64.b64encode(b"hello world").decode(), "unknown mesh format"),
        (base64.b64encode(uncoloured_cube().export(file_type="ply")).decode(), "colours"),
    ],
)
def test_bad_responses_deserialize_to_none_and_decode_says_why(mesh_b64, reason):
    synapse = TextTo3D(mesh_b64=mesh_b64)
    assert synapse.deserialize() is None
    with pytest.raises(MeshDecodeError, match=reason):
        synapse.decode()


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=400))
def test_deserialize_never_raises(text):
    for candidate in (text, base64.b64encode(b"DRACO\x02\x02\x01\x01\x00\x00" + text.encode()).decode()):
        result = TextTo3D(mesh_b64=candidate).deserialize()  # must not raise
        assert result is None or isinstance(result, trimesh.Trimesh)


def test_decode_applies_caller_limits():
    synapse = TextTo3D().attach_mesh(red_cube())
    with pytest.raises(MeshDecodeError, match="faces, the limit is 11"):
        synapse.decode(MeshLimits(max_faces=11))


def test_response_fields_are_bounded():
    with pytest.raises(ValidationError):
        TextTo3D(mesh_b64="A" * (MAX_MESH_B64_CHARS + 4))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValidationError):
            TextTo3D(generation_time_s=bad)
    with pytest.raises(ValidationError):
        TextTo3D(mesh_format="obj")


def test_attach_mesh_refuses_meshes_validators_would_refuse(monkeypatch):
    with pytest.raises(ValueError, match="no colours"):
        TextTo3D().attach_mesh(uncoloured_cube())
    monkeypatch.setattr("protocol.synapse.DEFAULT_LIMITS", MeshLimits(max_faces=11))
    with pytest.raises(ValueError, match="at most 1000000 and 11"):
        TextTo3D().attach_mesh(red_cube())
    monkeypatch.setattr("protocol.synapse.DEFAULT_LIMITS", MeshLimits(max_payload_bytes=100))
    with pytest.raises(ValueError, match="validators accept at most 100"):
        TextTo3D().attach_mesh(red_cube(), MeshFormat.PLY)
