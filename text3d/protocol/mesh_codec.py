"""The mesh wire codec: coloured triangle meshes to bytes and back, hardened for peers.

Three formats, told apart by their magic bytes (a declared format is never trusted):

    format  magic      encoder                 round trip
    PLY     b"ply"     trimesh, binary         exact at float32 (Shap-E's own output format)
    GLB     b"glTF"    trimesh, COLOR_0        exact at float32
                       or textured (below)     textures exact (PNG), UVs exact at float32
    DRACO   b"DRACO"   DracoPy, 11-bit, lvl 7  vertices within 1e-3 of the bbox diagonal;
                                               order not preserved; colours exact

Draco is the compact wire format: quantising each axis to 11 bits over the largest
extent bounds the vertex error by sqrt(3) / (2 * 2047) = 4.2e-4 of the bbox diagonal
for any shape, at about a tenth of the binary PLY size.

Colour policy: a mesh must carry colours (there is no silent grey default: colour is
half of what the validator scores). Colours follow glTF's base colour, per part of the
mesh (``text3d.protocol.mesh_parts``): vertex colour * base-colour factor * base-colour texture.

- Vertex-coloured meshes travel as they are in every format (face colours become flat
  per-face vertex colours).
- Textured meshes (``TextureVisuals``: UVs and a base-colour texture, or a material
  colour, per part) travel as a **textured GLB**: one primitive per part with POSITION,
  TEXCOORD_0, optional COLOR_0 and a material whose base-colour texture is a PNG in the
  BIN chunk. In PLY and Draco the texture is baked into per-vertex colours (one texel per
  vertex: coarse).
- A mesh with no colours at all is refused by ``encode_mesh`` with ``ValueError``.

``decode_mesh`` raises only ``MeshDecodeError``. Every decoded mesh, whatever its
format, is validated: within ``MeshLimits``, finite coordinates, face indices in
range, at least one face of non-zero area, per-vertex RGBA colours (uint8, (N, 4)).
A textured GLB (any primitive with a base-colour texture or factor) may use PNG or
JPEG textures within ``MeshLimits``' image limits, checked at the image headers before
anything decodes them; it decodes to one ``trimesh.Trimesh`` with ``TextureVisuals``
(``text3d.protocol.mesh_parts.merge_parts``: one material per primitive, decoded RGBA
textures), which the renderer draws through the same path as vertex colours.
"""

import enum
import io

import numpy as np
import trimesh

from text3d.protocol.limits import DEFAULT_LIMITS, MeshDecodeError, MeshLimits
from text3d.protocol.mesh_parts import Part, bake_vertex_colours, merge_parts, scene_parts, split_parts
from text3d.protocol.prescan import scan_draco, scan_ply
from text3d.protocol.prescan_gltf import scan_glb

__all__ = [
    "MeshFormat",
    "detect_format",
    "encode_mesh",
    "decode_mesh",
    "validate_mesh",
    "DRACO_QUANTIZATION_BITS",
]

DRACO_QUANTIZATION_BITS = 11
"""Position bits per axis; max error sqrt(3)/(2*(2**bits-1)) of the bbox diagonal."""
DRACO_COMPRESSION_LEVEL = 7
"""Draco speed/size trade-off (0-10); 7 selects edgebreaker with valence coding."""


class MeshFormat(str, enum.Enum):
    """Wire formats; the value is what ``TextTo3D.mesh_format`` reports (informational)."""

    PLY = "ply"
    GLB = "glb"
    DRACO = "draco"


_MAGIC = ((b"ply\n", MeshFormat.PLY), (b"ply\r\n", MeshFormat.PLY), (b"glTF", MeshFormat.GLB), (b"DRACO", MeshFormat.DRACO))


def detect_format(data: bytes) -> MeshFormat:
    """The format of ``data`` from its leading magic bytes; MeshDecodeError if unknown."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    raise MeshDecodeError(f"unknown mesh format (leading bytes {bytes(data[:8])!r})")


def _is_textured(parts: list[Part]) -> bool:
    return any(p.texture is not None or p.factor is not None for p in parts)


def encode_mesh(mesh: trimesh.Trimesh, fmt: MeshFormat = MeshFormat.DRACO) -> bytes:
    """Encode a coloured triangle mesh.

    Args:
        mesh: vertices (N, 3), triangle faces (M, 3) and colours (see the module's
            colour policy); vertices are written as float32 (PLY, GLB) or quantised (Draco).
            A textured mesh keeps its textures in GLB and is baked to vertex colours otherwise.
        fmt: a ``MeshFormat`` (or its string value).

    Raises:
        ValueError: the mesh has no colours, no faces, or non-finite vertices.
    """
    fmt = MeshFormat(fmt)
    if len(mesh.faces) == 0:
        raise ValueError("mesh has no faces")
    if not np.isfinite(mesh.vertices).all():
        raise ValueError("mesh has non-finite vertex coordinates")
    parts = split_parts(mesh)
    if fmt is MeshFormat.GLB and _is_textured(parts):
        from text3d.protocol.glb_writer import write_textured_glb

        return write_textured_glb(parts)
    colours = bake_vertex_colours(parts)
    vertices = np.concatenate([p.vertices for p in parts]).astype(np.float64)
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts])
    faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets)]).astype(np.int64)
    if fmt is MeshFormat.DRACO:
        import DracoPy

        return DracoPy.encode(
            vertices.astype(np.float32),
            faces.astype(np.uint32),
            quantization_bits=DRACO_QUANTIZATION_BITS,
            compression_level=DRACO_COMPRESSION_LEVEL,
            colors=colours,
        )
    plain = trimesh.Trimesh(vertices, faces, vertex_colors=colours, process=False, validate=False)
    if fmt is MeshFormat.PLY:
        return trimesh.exchange.ply.export_ply(plain, encoding="binary")
    return trimesh.exchange.gltf.export_glb(plain, include_normals=False)


def decode_mesh(data: bytes, limits: MeshLimits = DEFAULT_LIMITS) -> trimesh.Trimesh:
    """Decode and validate a mesh from untrusted bytes.

    Returns a ``trimesh.Trimesh`` with float64 vertices (N, 3), int64 faces (M, 3) and
    ``visual.vertex_colors`` uint8 (N, 4) -- or, for a textured GLB, ``TextureVisuals``
    as ``text3d.protocol.mesh_parts.merge_parts`` builds them (UVs (N, 2), one ``PBRMaterial``
    per part with a decoded RGBA texture and/or a factor, vertex colours in
    ``visual.vertex_attributes["color"]``). Raises ``MeshDecodeError`` -- and nothing
    else -- for anything that is not a valid, bounded, coloured triangle mesh.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MeshDecodeError(f"mesh payload must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > limits.max_payload_bytes:
        raise MeshDecodeError(f"mesh payload is {len(data)} bytes, the limit is {limits.max_payload_bytes}")
    fmt = detect_format(data)
    try:
        if fmt is MeshFormat.DRACO:
            scan_draco(data, limits)
            vertices, faces, colours = _decode_draco(data)
        elif fmt is MeshFormat.PLY:
            scan_ply(data, limits)
            vertices, faces, colours = _decode_trimesh(data, "ply")
        else:
            if scan_glb(data, limits).uses_materials:
                return _decode_textured_glb(data, limits)
            vertices, faces, colours = _decode_trimesh(data, "glb")
    except MeshDecodeError:
        raise
    except Exception as error:  # a library refused the bytes: still the miner's fault
        raise MeshDecodeError(f"{fmt.value} payload could not be decoded: {type(error).__name__}") from None
    return validate_mesh(vertices, faces, colours, limits, fmt.value)


def _decode_draco(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import DracoPy

    decoded = DracoPy.decode(data)
    faces = getattr(decoded, "faces", None)
    if faces is None:
        raise MeshDecodeError("draco payload is a point cloud, not a mesh")
    colours = decoded.colors
    if colours is None:
        raise MeshDecodeError("draco mesh has no per-vertex colours")
    if colours.dtype != np.uint8:
        raise MeshDecodeError(f"draco colours must be uint8, got {colours.dtype}")
    return decoded.points, faces, colours


def _decode_trimesh(data: bytes, file_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mesh = trimesh.load(
        io.BytesIO(data), file_type=file_type, force="mesh", process=False, skip_materials=True
    )
    if not isinstance(mesh, trimesh.Trimesh) or getattr(mesh.visual, "kind", None) != "vertex":
        raise MeshDecodeError(f"{file_type} payload has no per-vertex colours")
    return mesh.vertices, mesh.faces, mesh.visual.vertex_colors


def _decode_textured_glb(data: bytes, limits: MeshLimits) -> trimesh.Trimesh:
    """Load a pre-scanned textured GLB as parts, decode each base-colour texture once
    within the image limits, validate the geometry and merge the parts into one mesh."""
    from text3d.protocol.images import check_lazy_image

    loaded = trimesh.load(io.BytesIO(data), file_type="glb", process=False)
    found, others = scene_parts(loaded)
    if others or not found:
        raise MeshDecodeError("glb payload holds geometry that is not a triangle mesh")
    decoded: dict[int, object] = {}
    pixels = 0
    parts = []
    for part in found:
        texture = part.texture
        if texture is not None and id(texture) not in decoded:
            if getattr(texture, "format", None) not in ("PNG", "JPEG"):
                raise MeshDecodeError("glb base-colour texture is not a PNG or JPEG image")
            pixels = check_lazy_image(texture, limits, "glb base-colour texture", pixels)
            texture.load()
            decoded[id(texture)] = texture.convert("RGBA")
        if part.source == "none":
            raise MeshDecodeError("glb primitive has no usable colours (no COLOR_0, and its texture did not decode)")
        if part.uv is not None and not np.isfinite(part.uv).all():
            raise MeshDecodeError("glb mesh has non-finite texture coordinates")
        parts.append(Part(part.vertices, part.faces, part.colours, part.uv,
                          None if texture is None else decoded[id(texture)], part.factor))
    mesh = merge_parts(parts)
    validate_mesh(mesh.vertices, mesh.faces, np.zeros((len(mesh.vertices), 4), np.uint8), limits, "glb")
    return mesh


def validate_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    colours: np.ndarray,
    limits: MeshLimits = DEFAULT_LIMITS,
    fmt: str = "mesh",
) -> trimesh.Trimesh:
    """Check decoded arrays and build the mesh; MeshDecodeError names the first failure.

    Args:
        vertices: (N, 3) numbers; must be finite.
        faces: (M, 3) integers in [0, N); at least one face must have non-zero area.
        colours: (N, 3|4) uint8 (alpha 255 is added), or floats within [0, 1].
    """
    vertices, faces, colours = np.asarray(vertices), np.asarray(faces), np.asarray(colours)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or not np.issubdtype(vertices.dtype, np.number):
        raise MeshDecodeError(f"{fmt} vertices have shape {vertices.shape}, need (N, 3)")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise MeshDecodeError(f"{fmt} faces have shape {faces.shape} {faces.dtype}, need (M, 3) integers")
    limits.check_counts(fmt, len(vertices), len(faces))
    if len(vertices) == 0 or len(faces) == 0:
        raise MeshDecodeError(f"{fmt} mesh is empty ({len(vertices)} vertices, {len(faces)} faces)")
    vertices = vertices.astype(np.float64)
    if not np.isfinite(vertices).all():
        raise MeshDecodeError(f"{fmt} mesh has non-finite vertex coordinates")
    faces = faces.astype(np.int64)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshDecodeError(f"{fmt} mesh has face indices outside [0, {len(vertices)})")
    if not _has_area(vertices, faces):
        raise MeshDecodeError(f"{fmt} mesh has no face with non-zero area")
    colours = _rgba(colours, len(vertices), fmt)
    return trimesh.Trimesh(vertices, faces, vertex_colors=colours, process=False, validate=False)


def _has_area(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """Whether any face has non-zero area. Scans in growing chunks: a real mesh answers
    within its first few hundred faces, an all-degenerate one costs one pass."""
    start, size = 0, 256
    while start < len(faces):
        corners = vertices[faces[start : start + size]]
        a, b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
        with np.errstate(all="ignore"):
            for i, j in ((1, 2), (2, 0), (0, 1)):  # components of the cross product a x b
                if (a[:, i] * b[:, j] != a[:, j] * b[:, i]).any():
                    return True
        start, size = start + size, min(4 * size, 1 << 16)
    return False


def _rgba(colours: np.ndarray, n_vertices: int, fmt: str) -> np.ndarray:
    if colours.ndim != 2 or colours.shape[0] != n_vertices or colours.shape[1] not in (3, 4):
        raise MeshDecodeError(f"{fmt} colours have shape {colours.shape}, need ({n_vertices}, 3|4)")
    if colours.dtype != np.uint8:
        if not np.issubdtype(colours.dtype, np.floating):
            raise MeshDecodeError(f"{fmt} colours must be uint8 or float, got {colours.dtype}")
        if not (np.isfinite(colours).all() and colours.min() >= 0 and colours.max() <= 1):
            raise MeshDecodeError(f"{fmt} float colours must be finite and within [0, 1]")
        colours = np.round(colours * 255).astype(np.uint8)
    if colours.shape[1] == 3:
        colours = np.concatenate([colours, np.full((n_vertices, 1), 255, np.uint8)], axis=1)
    return np.ascontiguousarray(colours)
