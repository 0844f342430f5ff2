"""Cheap header pre-scans that run before any library allocates for a payload.

trimesh and DracoPy trust the sizes written in a file: a PLY header, a GLB accessor
``count`` (a bufferless accessor becomes ``np.zeros(count)``) or a Draco face count
decides how much they allocate. These scans read only the headers (and, for PLY, a
strided view of the face-size bytes) and refuse, with ``MeshDecodeError``, anything
whose declared sizes exceed ``MeshLimits`` or disagree with the payload length. A GLB's
embedded texture images are bounded from their PNG/JPEG headers (``text3d.protocol.images``)
before any decoder sees them. They are not parsers: the libraries do the decoding, and
every decoded mesh is validated again afterwards.
"""

from typing import Any

import numpy as np

from text3d.protocol.limits import MeshDecodeError, MeshLimits
from text3d.protocol.prescan_gltf import scan_glb  # noqa: F401  (the GLB scan lives beside: glTF is a tree)

__all__ = ["scan_ply", "scan_glb", "scan_draco"]


def _check_counts(limits: MeshLimits, fmt: str, n_vertices: int, n_faces: int) -> None:
    limits.check_counts(fmt, n_vertices, n_faces)
    if n_vertices == 0 or n_faces == 0:
        raise MeshDecodeError(f"{fmt} mesh is empty ({n_vertices} vertices, {n_faces} faces)")


# ---------------------------------------------------------------------------- PLY

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_PLY_INDEX_TYPES = {"i1", "u1", "i2", "u2", "i4", "u4"}


def _ply_dtype(name: str, endian: str) -> np.dtype:
    if name not in _PLY_TYPES:
        raise MeshDecodeError(f"PLY property type {name[:20]!r} is not a PLY type")
    return np.dtype(endian + _PLY_TYPES[name])


def _ply_header_lines(data: bytes, max_header_bytes: int) -> tuple[list[str], int]:
    """The header's lines up to and including ``end_header``, and the body's offset.

    Stricter than trimesh's reader (which stops at the first line with an
    ``end_header`` word and matches keywords by substring): any line that trimesh
    could read differently from this scan -- ``comment end_header``, ``elements`` --
    is refused, so both always agree on the header.
    """
    lines, position = [], 0
    while True:
        newline = data.find(b"\n", position, max_header_bytes)
        if newline < 0:
            raise MeshDecodeError(f"PLY header has no end_header line within {max_header_bytes} bytes")
        try:
            line = data[position:newline].decode("ascii").strip()
        except UnicodeDecodeError:
            raise MeshDecodeError("PLY header is not ASCII text") from None
        lines.append(line)
        position = newline + 1
        if "end_header" in line.split():
            if line != "end_header" or len(lines) < 3:
                raise MeshDecodeError(f"PLY header line {line[:60]!r} is not understood")
            return lines, position


def scan_ply(data: bytes, limits: MeshLimits) -> None:
    """Check a binary PLY: header shape, declared counts, exact body length, triangles only.

    Accepted: ``format binary_little_endian|binary_big_endian 1.0``, one ``vertex``
    element (scalar properties, ``x y z`` and ``red green blue [alpha]`` as uchar) and
    one ``face`` element (one list property of vertex indices, every list of length 3).
    """
    lines, body = _ply_header_lines(data, limits.max_header_bytes)
    words = lines[1].split()
    if len(words) != 3 or words[0] != "format" or words[2] != "1.0":
        raise MeshDecodeError(f"PLY second line {lines[1][:60]!r} is not a format line")
    if words[1] not in ("binary_little_endian", "binary_big_endian"):
        raise MeshDecodeError(f"PLY encoding {words[1][:30]!r} is refused: only binary PLY is accepted")
    endian = "<" if words[1] == "binary_little_endian" else ">"
    elements: list[list[Any]] = []  # [name, count, [(prop, dtype | (count_dtype, index_dtype))]]
    for line in lines[2:-1]:
        words = line.split()
        if words and words[0] in ("comment", "obj_info"):
            continue
        if words and words[0] == "element" and len(words) == 3:
            if len(words[2]) > 12 or not words[2].isdigit():
                raise MeshDecodeError(f"PLY element count {words[2][:20]!r} is not a bounded integer")
            elements.append([words[1], int(words[2]), []])
        elif words and words[0] == "property" and elements:
            if len(words) == 3:
                elements[-1][2].append((words[2], _ply_dtype(words[1], endian)))
            elif len(words) == 5 and words[1] == "list":
                counts, indices = _ply_dtype(words[2], endian), _ply_dtype(words[3], endian)
                elements[-1][2].append((words[4], (counts, indices)))
            else:
                raise MeshDecodeError(f"PLY property line {line[:60]!r} is not understood")
        else:
            raise MeshDecodeError(f"PLY header line {line[:60]!r} is not understood")
    if [e[0] for e in elements] != ["vertex", "face"]:
        raise MeshDecodeError("PLY must contain exactly a vertex element followed by a face element")
    (_, n_vertices, vertex_props), (_, n_faces, face_props) = elements
    _check_counts(limits, "PLY", n_vertices, n_faces)

    vertex_fields, face_names = dict(vertex_props), [name for name, _ in face_props]
    if len(vertex_fields) != len(vertex_props) or len(set(face_names)) != len(face_names):
        raise MeshDecodeError("PLY element has duplicate property names")
    if any(isinstance(t, tuple) for t in vertex_fields.values()):
        raise MeshDecodeError("PLY vertex element must not have list properties")
    if not {"x", "y", "z"} <= vertex_fields.keys():
        raise MeshDecodeError("PLY vertex element lacks x, y, z")
    colour = [c for c in ("red", "green", "blue", "alpha") if c in vertex_fields]
    if colour[:3] != ["red", "green", "blue"]:
        raise MeshDecodeError("PLY has no per-vertex colours (red, green, blue)")
    if any(vertex_fields[c].str[1:] != "u1" for c in colour):
        raise MeshDecodeError("PLY vertex colours must be uchar")
    vertex_dtype = np.dtype([(f"v{i}", t) for i, (_, t) in enumerate(vertex_props)])

    lists = [(name, t) for name, t in face_props if isinstance(t, tuple)]
    if len(lists) != 1 or lists[0][0] not in ("vertex_indices", "vertex_index") or lists[0][1][1].str[1:] not in _PLY_INDEX_TYPES:
        raise MeshDecodeError("PLY face element must have one integer list named vertex_indices")
    face_fields = []
    for i, (_, t) in enumerate(face_props):
        if isinstance(t, tuple):
            face_fields += [("count", t[0]), ("indices", t[1], (3,))]
        else:
            face_fields.append((f"f{i}", t))
    face_dtype = np.dtype(face_fields)

    expected = n_vertices * vertex_dtype.itemsize + n_faces * face_dtype.itemsize
    if len(data) - body != expected:
        raise MeshDecodeError(
            f"PLY body is {len(data) - body} bytes, its header implies {expected} for triangles"
        )
    face_block = np.frombuffer(data, dtype=face_dtype, count=n_faces, offset=body + n_vertices * vertex_dtype.itemsize)
    if n_faces and not np.all(face_block["count"] == 3):
        raise MeshDecodeError("PLY faces must all be triangles")
    if n_faces and (face_block["indices"].min() < 0 or face_block["indices"].max() >= n_vertices):
        raise MeshDecodeError(f"PLY mesh has face indices outside [0, {n_vertices})")


# --------------------------------------------------------------------------- Draco


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    """Draco's LEB128 uint32 (at most 5 bytes); returns (value, next offset)."""
    value = 0
    for i in range(5):
        if offset + i >= len(data):
            raise MeshDecodeError("Draco header is truncated")
        byte = data[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, offset + i + 1
    raise MeshDecodeError("Draco header has an over-long integer")


def scan_draco(data: bytes, limits: MeshLimits) -> None:
    """Check a Draco 2.2 triangle-mesh header and its declared vertex and face counts.

    Layout (draco/compression/decode.cc, mesh_*_decoder.cc, bitstream 2.2): ``DRACO``,
    major, minor, encoder type (1 = mesh), method (0 sequential, 1 edgebreaker), flags
    (uint16; 0x8000 = metadata). Sequential then has varint faces, varint points;
    edgebreaker has a uint8 traversal type, varint vertices, varint faces.
    """
    if len(data) < 11 or data[:5] != b"DRACO":
        raise MeshDecodeError("Draco payload is shorter than its header")
    major, minor, encoder_type, method = data[5:9]
    if encoder_type != 1:
        raise MeshDecodeError("Draco payload is not a triangle mesh (point cloud?)")
    if (major, minor) != (2, 2):
        raise MeshDecodeError(f"Draco bitstream {major}.{minor} is not supported (2.2 is)")
    if data[9:11] != b"\x00\x00":
        raise MeshDecodeError("Draco payload carries metadata or unknown flags")
    if method == 0:
        n_faces, offset = _varint(data, 11)
        n_vertices, _ = _varint(data, offset)
    elif method == 1:
        if len(data) < 12 or data[11] > 2:
            raise MeshDecodeError("Draco edgebreaker traversal type is unknown")
        n_vertices, offset = _varint(data, 12)
        n_faces, _ = _varint(data, offset)
    else:
        raise MeshDecodeError(f"Draco encoding method {method} is unknown")
    _check_counts(limits, "Draco", n_vertices, n_faces)
