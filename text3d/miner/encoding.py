"""A generated mesh -> the bytes a validator will accept, or a sentence saying why not.

Shared by every generation pool (in process, generation servers, Ray replicas): a mesh over
the validators' limits is refused where it is made, with the flag that fixes it, instead of
travelling to a validator that will score it 0.
"""

from __future__ import annotations

from typing import Any

from text3d.protocol.limits import DEFAULT_LIMITS
from text3d.protocol.mesh_codec import MeshFormat, encode_mesh

__all__ = ["encode_for_wire"]


def encode_for_wire(mesh: Any, fmt: MeshFormat) -> tuple[bytes, MeshFormat]:
    """Encode ``mesh`` as validators will accept it; ``ValueError`` saying why not otherwise."""
    limits = DEFAULT_LIMITS
    if len(mesh.vertices) > limits.max_vertices or len(mesh.faces) > limits.max_faces:
        raise ValueError(
            f"mesh has {len(mesh.vertices)} vertices and {len(mesh.faces)} faces, validators accept at most "
            f"{limits.max_vertices} and {limits.max_faces}; lower --generation.grid_size"
        )
    payload = encode_mesh(mesh, fmt)
    if len(payload) > limits.max_payload_bytes:
        raise ValueError(f"encoded mesh is {len(payload)} bytes, validators accept at most {limits.max_payload_bytes}")
    return payload, fmt
