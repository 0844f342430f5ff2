"""Cheap header pre-scans that run before any library allocates for a payload.

trimesh and DracoPy trust the sizes written in a file: a PLY header, a GLB accessor
``count`` (a bufferless accessor becomes ``np.zeros(count)``) or a Draco face count
decides how much they allocate. These scans read only the headers (and, for PLY, a
strided view of the face-size bytes) and refuse, with ``MeshDecodeError``, anything
whose declared sizes exceed ``MeshLimits`` or disagree with the payload length. They
are not parsers: the libraries do the decoding, and every decoded mesh is validated
again afterwards.
"""

import json
from typing import Any

import numpy as np

from protocol.limits import MeshDecodeError, MeshLimits

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


# ---------------------------------------------------------------------------- GLB

_GLB_MAGIC, _GLB_JSON, _GLB_BIN = b"glTF", 0x4E4F534A, 0x004E4942
_GLTF_COMPONENTS = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_GLTF_TYPES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


def _index(value: Any, items: list, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(items):
        raise MeshDecodeError(f"GLB {what} index {str(value)[:20]} is out of range")
    return value


def _uint(obj: dict, key: str, default: int | None, what: str) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MeshDecodeError(f"GLB {what}.{key} must be a non-negative integer")
    return value


def _list(tree: dict, key: str, limits: MeshLimits) -> list:
    items = tree.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise MeshDecodeError(f"GLB {key} must be a list of objects")
    if len(items) > limits.max_gltf_objects:
        raise MeshDecodeError(f"GLB has {len(items)} {key}, the limit is {limits.max_gltf_objects}")
    return items


def _glb_chunks(data: bytes, limits: MeshLimits) -> tuple[dict, bytes]:
    if len(data) < 20 or data[:4] != _GLB_MAGIC:
        raise MeshDecodeError("GLB is shorter than its header")
    version, length, json_length, json_type = np.frombuffer(data, "<u4", count=4, offset=4).tolist()
    if version != 2:
        raise MeshDecodeError(f"GLB version {version} is not glTF 2")
    if length != len(data):
        raise MeshDecodeError(f"GLB declares {length} bytes but the payload has {len(data)}")
    if json_type != _GLB_JSON or json_length > limits.max_header_bytes or 20 + json_length > len(data):
        raise MeshDecodeError("GLB first chunk is not a bounded JSON chunk")
    try:
        tree = json.loads(data[20 : 20 + json_length].decode("utf-8"))
    except (ValueError, RecursionError):
        raise MeshDecodeError("GLB JSON chunk is not valid JSON") from None
    if not isinstance(tree, dict):
        raise MeshDecodeError("GLB JSON chunk is not an object")
    binary, offset = b"", 20 + json_length
    while offset < len(data):
        if offset + 8 > len(data):
            raise MeshDecodeError("GLB ends inside a chunk header")
        chunk_length, chunk_type = np.frombuffer(data, "<u4", count=2, offset=offset).tolist()
        if offset + 8 + chunk_length > len(data):
            raise MeshDecodeError("GLB chunk runs past the end of the payload")
        if chunk_type == _GLB_BIN:
            if binary:
                raise MeshDecodeError("GLB has more than one BIN chunk")
            binary = data[offset + 8 : offset + 8 + chunk_length]
        offset += 8 + chunk_length
    return tree, binary


def scan_glb(data: bytes, limits: MeshLimits) -> None:
    """Check a GLB's chunks and JSON: every accessor inside the BIN chunk, no external or
    data URIs, no required extensions, triangle primitives with POSITION and COLOR_0, a
    tree-shaped node graph, and instanced vertex/face totals within the limits."""
    tree, binary = _glb_chunks(data, limits)
    if tree.get("extensionsRequired"):
        raise MeshDecodeError("GLB requires extensions; only plain glTF 2 meshes are accepted")
    buffers = _list(tree, "buffers", limits)
    if len(buffers) > 1 or any("uri" in b for b in buffers):
        raise MeshDecodeError("GLB buffers must be the single embedded BIN chunk (no URIs)")
    views = _list(tree, "bufferViews", limits)
    for view in views:
        _index(view.get("buffer"), buffers, "bufferView.buffer")
        if _uint(view, "byteOffset", 0, "bufferView") + _uint(view, "byteLength", None, "bufferView") > len(binary):
            raise MeshDecodeError("GLB bufferView runs past the BIN chunk")
        if "byteStride" in view and not 4 <= _uint(view, "byteStride", None, "bufferView") <= 252:
            raise MeshDecodeError("GLB bufferView.byteStride is outside 4..252")
    accessors = _list(tree, "accessors", limits)
    max_count = max(limits.max_vertices, 3 * limits.max_faces)
    for accessor in accessors:
        if "sparse" in accessor or "bufferView" not in accessor:
            raise MeshDecodeError("GLB accessors must read a bufferView (no sparse or empty accessors)")
        view = views[_index(accessor["bufferView"], views, "accessor.bufferView")]
        if accessor.get("componentType") not in _GLTF_COMPONENTS or accessor.get("type") not in _GLTF_TYPES:
            raise MeshDecodeError("GLB accessor has an unknown componentType or type")
        count = _uint(accessor, "count", None, "accessor")
        if not 1 <= count <= max_count:
            raise MeshDecodeError(f"GLB accessor count {count} is outside 1..{max_count}")
        element = _GLTF_COMPONENTS[accessor["componentType"]] * _GLTF_TYPES[accessor["type"]]
        stride = view.get("byteStride", element)
        if stride < element:
            raise MeshDecodeError("GLB bufferView.byteStride is smaller than its elements")
        if _uint(accessor, "byteOffset", 0, "accessor") + (count - 1) * stride + element > view["byteLength"]:
            raise MeshDecodeError("GLB accessor runs past its bufferView")

    meshes = _list(tree, "meshes", limits)
    nodes = _list(tree, "nodes", limits)
    instances = [0] * len(meshes)
    parents: dict[int, int] = {}
    for i, node in enumerate(nodes):
        if "mesh" in node:
            instances[_index(node["mesh"], meshes, "node.mesh")] += 1
        children = node.get("children", [])
        if not isinstance(children, list) or len(children) > len(nodes):
            raise MeshDecodeError("GLB node.children must be a list of node indices")
        for child in children:
            if _index(child, nodes, "node.children") in parents or child == i:
                raise MeshDecodeError("GLB node graph is not a tree")
            parents[child] = i
    for start in range(len(nodes)):
        node, steps = start, 0
        while node in parents:
            node, steps = parents[node], steps + 1
            if steps > len(nodes):
                raise MeshDecodeError("GLB node graph has a cycle")

    n_vertices = n_faces = n_primitives = 0
    for mesh, copies in zip(meshes, instances):
        primitives = mesh.get("primitives")
        if not isinstance(primitives, list) or not all(isinstance(p, dict) for p in primitives):
            raise MeshDecodeError("GLB mesh.primitives must be a list of objects")
        n_primitives += len(primitives)
        for primitive in primitives:
            if primitive.get("mode", 4) != 4 or "extensions" in primitive or "targets" in primitive:
                raise MeshDecodeError("GLB primitives must be plain triangle lists")
            attributes = primitive.get("attributes")
            if not isinstance(attributes, dict) or "POSITION" not in attributes:
                raise MeshDecodeError("GLB primitive has no POSITION attribute")
            if "COLOR_0" not in attributes:
                raise MeshDecodeError("GLB primitive has no per-vertex colours (COLOR_0)")
            for name in attributes:
                _index(attributes[name], accessors, f"attribute {name[:20]}")
            position = accessors[attributes["POSITION"]]
            if position["type"] != "VEC3" or position["componentType"] != 5126:
                raise MeshDecodeError("GLB POSITION must be float VEC3")
            _check_glb_colours(accessors[attributes["COLOR_0"]], views, binary, position["count"])
            corners = position["count"]
            if "indices" in primitive:
                indices = accessors[_index(primitive["indices"], accessors, "primitive.indices")]
                if indices["type"] != "SCALAR" or indices["componentType"] not in (5121, 5123, 5125):
                    raise MeshDecodeError("GLB indices must be unsigned integer scalars")
                corners = indices["count"]
                if _accessor_values(indices, views, binary).max() >= position["count"]:
                    raise MeshDecodeError(f"GLB mesh has face indices outside [0, {position['count']})")
            if corners % 3:
                raise MeshDecodeError("GLB triangle list length is not a multiple of 3")
            n_vertices += max(copies, 1) * position["count"]
            n_faces += max(copies, 1) * corners // 3
    if n_primitives > limits.max_gltf_objects:
        raise MeshDecodeError(f"GLB has {n_primitives} primitives, the limit is {limits.max_gltf_objects}")
    _check_counts(limits, "GLB", n_vertices, n_faces)


_GLTF_DTYPES = {5120: "i1", 5121: "u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}


def _accessor_values(accessor: dict, views: list, binary: bytes) -> np.ndarray:
    """A read-only (count, components) view of an accessor already bounds-checked by scan_glb."""
    view = views[accessor["bufferView"]]
    dtype = np.dtype(_GLTF_DTYPES[accessor["componentType"]])
    width = _GLTF_TYPES[accessor["type"]]
    stride = view.get("byteStride", dtype.itemsize * width)
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    raw = np.frombuffer(binary, np.uint8, count=(accessor["count"] - 1) * stride + dtype.itemsize * width, offset=start)
    rows = np.lib.stride_tricks.as_strided(raw, (accessor["count"], dtype.itemsize * width), (stride, 1), writeable=False)
    return np.ascontiguousarray(rows).view(dtype)


def _check_glb_colours(accessor: dict, views: list, binary: bytes, n_vertices: int) -> None:
    """COLOR_0 must be RGB/RGBA per vertex; float colours must be finite and in [0, 1]."""
    if accessor["type"] not in ("VEC3", "VEC4") or accessor["count"] != n_vertices:
        raise MeshDecodeError("GLB COLOR_0 must be one RGB or RGBA value per vertex")
    if accessor["componentType"] not in (5121, 5123, 5126):
        raise MeshDecodeError("GLB COLOR_0 must be unsigned byte, unsigned short or float")
    if accessor["componentType"] == 5126:
        values = _accessor_values(accessor, views, binary)
        if not (np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0):
            raise MeshDecodeError("GLB float colours must be finite and within [0, 1]")


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
