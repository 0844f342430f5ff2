"""The wire schema both sides import: the TextTo3D request/response, the mesh codec, the error tree.

Nothing here imports bittensor (only the neurons sign and verify). Exports load lazily
(module ``__getattr__``), so ``import protocol.version`` stays free of trimesh and pydantic.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocol.limits import DEFAULT_LIMITS, MeshDecodeError, MeshLimits
    from protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh
    from protocol.wire import ROUTE, TextTo3DRequest, TextTo3DResponse

__all__ = [
    "ROUTE",
    "TextTo3DRequest",
    "TextTo3DResponse",
    "MeshFormat",
    "MeshLimits",
    "DEFAULT_LIMITS",
    "MeshDecodeError",
    "encode_mesh",
    "decode_mesh",
]

_HOMES = {
    "ROUTE": "protocol.wire",
    "TextTo3DRequest": "protocol.wire",
    "TextTo3DResponse": "protocol.wire",
    "MeshFormat": "protocol.mesh_codec",
    "encode_mesh": "protocol.mesh_codec",
    "decode_mesh": "protocol.mesh_codec",
    "MeshLimits": "protocol.limits",
    "DEFAULT_LIMITS": "protocol.limits",
    "MeshDecodeError": "protocol.errors",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'protocol' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
