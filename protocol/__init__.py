"""The wire schema both sides import: the ``TextTo3D`` synapse and the mesh codec.

Exports load lazily (module ``__getattr__``): ``import protocol.mesh_codec`` never
imports bittensor -- the scoring core decodes meshes without a wallet or a chain --
and ``import protocol.version`` stays free of trimesh.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocol.limits import DEFAULT_LIMITS, MeshDecodeError, MeshLimits
    from protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh
    from protocol.synapse import TextTo3D

__all__ = [
    "TextTo3D",
    "MeshFormat",
    "MeshLimits",
    "DEFAULT_LIMITS",
    "MeshDecodeError",
    "encode_mesh",
    "decode_mesh",
]

_HOMES = {
    "TextTo3D": "protocol.synapse",
    "MeshFormat": "protocol.mesh_codec",
    "encode_mesh": "protocol.mesh_codec",
    "decode_mesh": "protocol.mesh_codec",
    "MeshLimits": "protocol.limits",
    "DEFAULT_LIMITS": "protocol.limits",
    "MeshDecodeError": "protocol.limits",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'protocol' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
