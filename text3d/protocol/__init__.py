"""The wire schema both sides import: the TextTo3D request/response, the mesh codec, the error tree.

Nothing here imports bittensor (only the neurons sign and verify). Exports load lazily
(module ``__getattr__``), so ``import text3d.protocol.version`` stays free of trimesh and pydantic.

    wire.py           ``POST /v1/text3d``: the signed JSON request, the raw-bytes answer, ``MAX_SEED``
    errors.py         the one error tree: the miner's fault, our fault, a setting to change
    version.py        ``__version__`` and the subnet's ``SPEC_VERSION``
    limits.py         what a validator accepts from a miner (``MeshLimits``)
    mesh_codec.py     meshes to bytes and back (Draco, PLY, GLB), hardened for peers
    mesh_parts.py     a mesh's colour model as parts with a base colour or a texture
    glb_writer.py     a textured GLB, one primitive per part
    images.py         texture images from peers: sizes read and checked before decoding
    prescan.py        header pre-scans that run before any library allocates
    prescan_gltf.py   the glTF / GLB JSON tree checked before trimesh reads an accessor
    organic.py        the gateway's jobs and a worker's framed result (gateway <-> validator)
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from text3d.protocol.limits import DEFAULT_LIMITS, MeshDecodeError, MeshLimits
    from text3d.protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh
    from text3d.protocol.wire import ROUTE, TextTo3DRequest, TextTo3DResponse

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
    "ROUTE": "text3d.protocol.wire",
    "TextTo3DRequest": "text3d.protocol.wire",
    "TextTo3DResponse": "text3d.protocol.wire",
    "MeshFormat": "text3d.protocol.mesh_codec",
    "encode_mesh": "text3d.protocol.mesh_codec",
    "decode_mesh": "text3d.protocol.mesh_codec",
    "MeshLimits": "text3d.protocol.limits",
    "DEFAULT_LIMITS": "text3d.protocol.limits",
    "MeshDecodeError": "text3d.protocol.errors",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'protocol' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
