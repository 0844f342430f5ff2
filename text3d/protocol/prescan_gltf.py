"""The glTF / GLB pre-scan: the JSON tree checked before trimesh reads a single accessor.

trimesh trusts a glTF's declared sizes (a bufferless accessor becomes ``np.zeros(count)``,
an image is handed to PIL as it is), so ``scan_gltf`` bounds every list, accessor, node
graph and embedded image first (see ``text3d.protocol.prescan`` for the PLY and Draco scans and
``text3d.protocol.images`` for the image headers). Two modes: ``strict`` for the wire, lenient
for local asset files (``text3d.reward.assets.loader``).
"""

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from text3d.protocol.limits import MeshDecodeError, MeshLimits

__all__ = ["scan_glb", "scan_gltf", "split_glb", "GltfScan"]


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


@dataclass(frozen=True)
class GltfScan:
    """What a glTF scan found: instanced totals and whether any primitive is textured or
    coloured by its material (the codec then keeps materials instead of skipping them)."""

    n_vertices: int
    n_faces: int
    uses_materials: bool
    image_headers: tuple


def scan_glb(data: bytes, limits: MeshLimits) -> GltfScan:
    """Check a wire GLB (``scan_gltf(..., strict=True)`` on its JSON and BIN chunks)."""
    tree, binary = _glb_chunks(data, limits)
    return scan_gltf(tree, binary, limits, strict=True)


def split_glb(data: bytes, limits: MeshLimits) -> tuple[dict, bytes]:
    """The JSON tree and BIN chunk of a GLB, with the container's lengths checked."""
    return _glb_chunks(data, limits)


def scan_gltf(tree: dict, binary: bytes, limits: MeshLimits, *, strict: bool = True) -> GltfScan:
    """Check a glTF tree before trimesh reads it; raises MeshDecodeError.

    Both modes: every list within ``max_gltf_objects``; accessors with a bounded count (a
    bufferless accessor becomes ``np.zeros(count)`` in trimesh) and, when they read the
    BIN chunk, inside it; a tree-shaped node graph; instanced vertex/face totals within the
    limits; every embedded image (BIN chunk or ``data:`` URI) a PNG or JPEG whose header
    is within the image limits.

    ``strict`` (the wire): no required extensions, no URIs (one embedded BIN chunk), plain
    triangle primitives with POSITION, and a colour on every primitive: COLOR_0, or a
    material whose ``pbrMetallicRoughness`` has a base-colour texture (PNG or JPEG in the
    BIN chunk, read through float TEXCOORD_0) or an explicit ``baseColorFactor``. Without
    ``strict`` (local files, see ``text3d.reward.assets.loader``) URIs, extensions, other primitive modes
    and uncoloured primitives pass, and external files are checked where they are read.
    """
    if strict and tree.get("extensionsRequired"):
        raise MeshDecodeError("GLB requires extensions; only plain glTF 2 meshes are accepted")
    buffers = _list(tree, "buffers", limits)
    if strict and (len(buffers) > 1 or any("uri" in b for b in buffers)):
        raise MeshDecodeError("GLB buffers must be the single embedded BIN chunk (no URIs)")
    embedded = [i for i, b in enumerate(buffers) if "uri" not in b]  # the GLB BIN chunk, if any
    views = _list(tree, "bufferViews", limits)
    for view in views:
        buffer = _index(view.get("buffer"), buffers, "bufferView.buffer")
        end = _uint(view, "byteOffset", 0, "bufferView") + _uint(view, "byteLength", None, "bufferView")
        if buffer in embedded and end > len(binary):
            raise MeshDecodeError("GLB bufferView runs past the BIN chunk")
        if "byteStride" in view and not 4 <= _uint(view, "byteStride", None, "bufferView") <= 252:
            raise MeshDecodeError("GLB bufferView.byteStride is outside 4..252")
    accessors = _list(tree, "accessors", limits)
    max_count = max(limits.max_vertices, 3 * limits.max_faces)
    for accessor in accessors:
        if strict and ("sparse" in accessor or "bufferView" not in accessor):
            raise MeshDecodeError("GLB accessors must read a bufferView (no sparse or empty accessors)")
        if accessor.get("componentType") not in _GLTF_COMPONENTS or accessor.get("type") not in _GLTF_TYPES:
            raise MeshDecodeError("GLB accessor has an unknown componentType or type")
        count = _uint(accessor, "count", None, "accessor")
        if not 1 <= count <= max_count:
            raise MeshDecodeError(f"GLB accessor count {count} is outside 1..{max_count}")
        if "sparse" in accessor and not isinstance(accessor["sparse"], dict):
            raise MeshDecodeError("GLB accessor.sparse must be an object")
        if "sparse" in accessor and not 1 <= _uint(accessor["sparse"], "count", None, "accessor.sparse") <= count:
            raise MeshDecodeError("GLB sparse accessor count is outside 1..count")
        if "bufferView" not in accessor:
            continue
        view = views[_index(accessor["bufferView"], views, "accessor.bufferView")]
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

    materials = _list(tree, "materials", limits)
    textures = _list(tree, "textures", limits)
    images = _list(tree, "images", limits)
    _list(tree, "samplers", limits)
    headers = _scan_images(images, views, buffers, embedded, binary, limits, strict)
    base_colour = [_base_colour(m, textures, images, strict) for m in materials]

    n_vertices = n_faces = n_primitives = 0
    uses_materials = False
    for mesh, copies in zip(meshes, instances):
        primitives = mesh.get("primitives")
        if not isinstance(primitives, list) or not all(isinstance(p, dict) for p in primitives):
            raise MeshDecodeError("GLB mesh.primitives must be a list of objects")
        n_primitives += len(primitives)
        for primitive in primitives:
            mode = primitive.get("mode", 4)
            if strict and (mode != 4 or "extensions" in primitive or "targets" in primitive):
                raise MeshDecodeError("GLB primitives must be plain triangle lists")
            attributes = primitive.get("attributes")
            if not isinstance(attributes, dict) or "POSITION" not in attributes:
                raise MeshDecodeError("GLB primitive has no POSITION attribute")
            for name in attributes:
                _index(attributes[name], accessors, f"attribute {name[:20]}")
            position = accessors[attributes["POSITION"]]
            if position["type"] != "VEC3" or position["componentType"] != 5126:
                raise MeshDecodeError("GLB POSITION must be float VEC3")
            textured = factor = False
            if "material" in primitive:
                textured, factor = base_colour[_index(primitive["material"], materials, "primitive.material")]
                uses_materials = uses_materials or textured or factor
            if textured:
                if "TEXCOORD_0" not in attributes:
                    raise MeshDecodeError("GLB primitive has a base-colour texture but no TEXCOORD_0")
                _check_texcoords(accessors[attributes["TEXCOORD_0"]], views, binary, position["count"], strict)
            if "COLOR_0" in attributes:
                _check_glb_colours(accessors[attributes["COLOR_0"]], views, binary, position["count"], strict)
            elif strict and not (textured or factor):
                raise MeshDecodeError(
                    "GLB primitive has no per-vertex colours (COLOR_0), no base-colour texture and no "
                    "baseColorFactor: give it one of them"
                )
            corners = position["count"]
            if "indices" in primitive:
                indices = accessors[_index(primitive["indices"], accessors, "primitive.indices")]
                if indices["type"] != "SCALAR" or indices["componentType"] not in (5121, 5123, 5125):
                    raise MeshDecodeError("GLB indices must be unsigned integer scalars")
                corners = indices["count"]
                if _readable(indices, views, embedded):
                    if _accessor_values(indices, views, binary).max() >= position["count"]:
                        raise MeshDecodeError(f"GLB mesh has face indices outside [0, {position['count']})")
            if mode == 4 and corners % 3:
                raise MeshDecodeError("GLB triangle list length is not a multiple of 3")
            n_vertices += max(copies, 1) * position["count"]
            n_faces += max(copies, 1) * (corners // 3 if mode == 4 else max(corners - 2, 0))
    if n_primitives > limits.max_gltf_objects:
        raise MeshDecodeError(f"GLB has {n_primitives} primitives, the limit is {limits.max_gltf_objects}")
    limits.check_counts("GLB", n_vertices, n_faces)
    if strict and (n_vertices == 0 or n_faces == 0):
        raise MeshDecodeError(f"GLB mesh is empty ({n_vertices} vertices, {n_faces} faces)")
    return GltfScan(n_vertices, n_faces, uses_materials, tuple(headers))


def _readable(accessor: dict, views: list, embedded: list) -> bool:
    """Whether an accessor's values are in the BIN chunk (and can be checked here)."""
    return "bufferView" in accessor and "sparse" not in accessor and views[accessor["bufferView"]]["buffer"] in embedded


def _base_colour(material: dict, textures: list, images: list, strict: bool) -> tuple[bool, bool]:
    """(has a base-colour texture, has an explicit baseColorFactor) of a glTF material."""
    if strict and "extensions" in material:
        raise MeshDecodeError("GLB materials must not use extensions (plain metallic-roughness only)")
    pbr = material.get("pbrMetallicRoughness", {})
    if not isinstance(pbr, dict):
        raise MeshDecodeError("GLB material.pbrMetallicRoughness must be an object")
    factor = "baseColorFactor" in pbr
    if factor:
        value = pbr["baseColorFactor"]
        if (not isinstance(value, list) or len(value) != 4
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and 0.0 <= c <= 1.0 for c in value)):
            raise MeshDecodeError("GLB baseColorFactor must be four numbers within [0, 1]")
    info = pbr.get("baseColorTexture")
    if info is None:
        return False, factor
    if not isinstance(info, dict):
        raise MeshDecodeError("GLB baseColorTexture must be an object")
    if strict and (info.get("texCoord", 0) != 0 or "extensions" in info):
        raise MeshDecodeError("GLB baseColorTexture must read TEXCOORD_0 without extensions")
    texture = textures[_index(info.get("index"), textures, "baseColorTexture.index")]
    if strict and ("extensions" in texture or "source" not in texture):
        raise MeshDecodeError("GLB textures must name a PNG or JPEG source (no texture extensions)")
    if "source" in texture:
        _index(texture["source"], images, "texture.source")
    return True, factor


def _scan_images(images: list, views: list, buffers: list, embedded: list, binary: bytes,
                 limits: MeshLimits, strict: bool) -> list:
    """Header-check every embedded image (a ``data:`` URI is decoded from base64 first)."""
    from text3d.protocol.images import check_image_bytes

    headers, pixels = [], 0
    for i, image in enumerate(images):
        what = f"GLB image {i}"
        if "bufferView" in image:
            view = views[_index(image["bufferView"], views, "image.bufferView")]
            if view["buffer"] not in embedded:
                continue  # an external buffer: checked where the loader reads it
            start = view.get("byteOffset", 0)
            data = binary[start : start + view["byteLength"]]
        elif strict:
            raise MeshDecodeError(f"{what} must be stored in the BIN chunk (no URIs)")
        elif isinstance(image.get("uri"), str) and image["uri"].startswith("data:"):
            data = _data_uri_bytes(image["uri"], what)
        else:
            continue  # a file next to the asset: the loader's resolver checks it on read
        mime = image.get("mimeType") if strict else None
        if strict and mime not in ("image/png", "image/jpeg"):
            raise MeshDecodeError(f"{what} has mimeType {str(mime)[:30]!r}; only image/png and image/jpeg are accepted")
        header, pixels = check_image_bytes(data, limits, what, pixels, mime)
        headers.append(header)
    return headers


def _data_uri_bytes(uri: str, what: str) -> bytes:
    import base64
    import binascii

    head, _, payload = uri.partition(",")
    if not head.endswith(";base64"):
        raise MeshDecodeError(f"{what} is a data URI that is not base64")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MeshDecodeError(f"{what} is a data URI with invalid base64") from None


def _check_texcoords(accessor: dict, views: list, binary: bytes, n_vertices: int, strict: bool) -> None:
    """TEXCOORD_0: one finite float UV pair per vertex (normalised integers pass off the wire)."""
    if accessor["type"] != "VEC2" or accessor["count"] != n_vertices:
        raise MeshDecodeError("GLB TEXCOORD_0 must be one VEC2 per vertex")
    if strict and accessor["componentType"] != 5126:
        raise MeshDecodeError("GLB TEXCOORD_0 must be float")
    if strict and not np.isfinite(_accessor_values(accessor, views, binary)).all():
        raise MeshDecodeError("GLB TEXCOORD_0 has non-finite texture coordinates")


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


def _check_glb_colours(accessor: dict, views: list, binary: bytes, n_vertices: int, strict: bool = True) -> None:
    """COLOR_0 must be RGB/RGBA per vertex; float colours must be finite and in [0, 1]."""
    if accessor["type"] not in ("VEC3", "VEC4") or accessor["count"] != n_vertices:
        raise MeshDecodeError("GLB COLOR_0 must be one RGB or RGBA value per vertex")
    if accessor["componentType"] not in (5121, 5123, 5126):
        raise MeshDecodeError("GLB COLOR_0 must be unsigned byte, unsigned short or float")
    if strict and accessor["componentType"] == 5126:
        values = _accessor_values(accessor, views, binary)
        if not (np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0):
            raise MeshDecodeError("GLB float colours must be finite and within [0, 1]")


