"""Write a textured GLB: one primitive per part, base-colour textures as PNG in the BIN chunk.

trimesh's GLB exporter keeps only the first material of a multi-material mesh, so the
codec writes textured meshes itself. The output is exactly what ``scan_glb(strict=True)``
accepts: one buffer (the BIN chunk), POSITION (float32, with min/max), uint32 indices,
TEXCOORD_0 (float32; V flipped back to glTF's top-left origin) for textured parts,
COLOR_0 (normalised uint8 RGBA) where a part has vertex colours, and one metallic-roughness
material per part (metallic 0, roughness 1) with its base-colour factor and/or texture.
"""

import io
import json
import struct

import numpy as np

from text3d.protocol.mesh_parts import Part

__all__ = ["write_textured_glb"]

_FLOAT, _UBYTE, _UINT = 5126, 5121, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    mode = "RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB"
    image.convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def write_textured_glb(parts: list[Part]) -> bytes:
    """GLB bytes for ``parts``; ``ValueError`` for a part with no colour at all."""
    blob = bytearray()
    views: list[dict] = []
    accessors: list[dict] = []

    def add_view(data: bytes, target: int | None = None) -> int:
        blob.extend(b"\0" * (-len(blob) % 4))
        view = {"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        blob.extend(data)
        views.append(view)
        return len(views) - 1

    def add_accessor(array: np.ndarray, component: int, kind: str, target: int, **extra) -> int:
        view = add_view(np.ascontiguousarray(array).tobytes(), target)
        accessors.append({"bufferView": view, "componentType": component, "count": int(len(array)), "type": kind, **extra})
        return len(accessors) - 1

    images: dict[int, int] = {}  # id(PIL image) -> image index (a shared texture is stored once)
    image_list: list[dict] = []
    materials, primitives = [], []
    for i, part in enumerate(parts):
        if part.source == "none":
            raise ValueError(f"mesh part {i} has no colours (no vertex colours, material colour or texture)")
        positions = np.asarray(part.vertices, dtype=np.float32)
        attributes = {
            "POSITION": add_accessor(positions, _FLOAT, "VEC3", _ARRAY_BUFFER,
                                     min=positions.min(axis=0).tolist(), max=positions.max(axis=0).tolist())
        }
        pbr: dict = {"metallicFactor": 0.0, "roughnessFactor": 1.0}
        if part.factor is not None:
            pbr["baseColorFactor"] = [round(float(c) / 255.0, 6) for c in part.factor]
        if part.texture is not None and part.uv is not None:
            uv = np.asarray(part.uv, dtype=np.float32).copy()
            uv[:, 1] = 1.0 - uv[:, 1]  # trimesh's bottom-left origin -> glTF's top-left
            attributes["TEXCOORD_0"] = add_accessor(uv, _FLOAT, "VEC2", _ARRAY_BUFFER)
            if id(part.texture) not in images:
                images[id(part.texture)] = len(image_list)
                image_list.append({"bufferView": add_view(_png_bytes(part.texture)), "mimeType": "image/png"})
            pbr["baseColorTexture"] = {"index": images[id(part.texture)]}
        if part.colours is not None:
            attributes["COLOR_0"] = add_accessor(np.asarray(part.colours, np.uint8), _UBYTE, "VEC4", _ARRAY_BUFFER,
                                                 normalized=True)
        indices = add_accessor(np.asarray(part.faces, np.uint32).reshape(-1), _UINT, "SCALAR", _ELEMENT_ARRAY_BUFFER)
        materials.append({"pbrMetallicRoughness": pbr, "doubleSided": True})
        primitives.append({"attributes": attributes, "indices": indices, "mode": 4, "material": len(materials) - 1})

    blob.extend(b"\0" * (-len(blob) % 4))
    tree = {
        "asset": {"version": "2.0", "generator": "text3d"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": primitives}],
        "materials": materials,
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(blob)}],
    }
    if image_list:
        tree["images"] = image_list
        tree["textures"] = [{"source": i} for i in range(len(image_list))]
    text = json.dumps(tree, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + bytes(blob)
    return b"glTF" + struct.pack("<II", 2, 12 + len(body)) + body
