"""Declared sizes of local asset files, checked before trimesh parses a byte of them.

trimesh allocates what a file's header declares (a PLY ``element vertex`` count, an STL
triangle count, a glTF accessor ``count``) and unpacks what an archive holds; a lying
header costs gigabytes. ``precheck(suffix, data, limits)`` reads only the headers (or, for
OBJ, counts the lines that start with ``v`` and ``f``) and raises ``MeshDecodeError``
when they exceed ``MeshLimits`` or disagree with the file's length. glTF/GLB go through
the wire codec's own lenient scan (``text3d.protocol.prescan_gltf.scan_gltf(strict=False)``),
which bounds their texture images at the image headers too.
"""

import io
import json
import zipfile

import numpy as np

from text3d.protocol.errors import MeshDecodeError
from text3d.protocol.limits import MeshLimits

__all__ = ["precheck"]


def precheck(suffix: str, data: bytes, limits: MeshLimits) -> None:
    """Refuse ``data`` (a file with ``suffix``, e.g. ``".ply"``) whose declared sizes exceed ``limits``."""
    if suffix == ".ply":
        _precheck_ply(data, limits)
    elif suffix == ".obj":
        n_vertices = data.count(b"\nv ") + data.count(b"\nv\t") + data.startswith(b"v ")
        n_faces = data.count(b"\nf ") + data.count(b"\nf\t") + data.startswith(b"f ")
        limits.check_counts("OBJ", n_vertices, n_faces)
    elif suffix == ".stl":
        if data[:5].lower() == b"solid" and b"facet" in data[:4096]:
            limits.check_counts("STL", 0, data.count(b"facet normal"))
        else:
            if len(data) < 84:
                raise MeshDecodeError("binary STL is shorter than its 84-byte header")
            n_faces = int(np.frombuffer(data, "<u4", count=1, offset=80)[0])
            limits.check_counts("STL", 0, n_faces)
            if 84 + 50 * n_faces != len(data):
                raise MeshDecodeError(f"binary STL declares {n_faces} triangles but holds {len(data) - 84} bytes of them")
    elif suffix == ".off":
        words = [w for line in data[:4096].split(b"\n") if not line.strip().startswith(b"#") for w in line.split()]
        if len(words) < 3 or not words[0].upper().endswith(b"OFF"):
            raise MeshDecodeError("OFF file does not start with an OFF header")
        try:
            n_vertices, n_faces = int(words[1]), int(words[2])
        except ValueError:
            raise MeshDecodeError("OFF header counts are not integers") from None
        limits.check_counts("OFF", n_vertices, n_faces)
    elif suffix in (".glb", ".gltf"):
        from text3d.protocol.prescan_gltf import scan_gltf, split_glb

        if data[:4] == b"glTF":
            tree, binary = split_glb(data, limits)
        else:
            try:
                tree, binary = json.loads(data.decode("utf-8")), b""
            except (ValueError, RecursionError):
                raise MeshDecodeError("glTF file is neither a GLB container nor JSON") from None
            if not isinstance(tree, dict):
                raise MeshDecodeError("glTF JSON is not an object")
        scan_gltf(tree, binary, limits, strict=False)
    elif suffix == ".3mf":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = archive.infolist()
        except zipfile.BadZipFile:
            raise MeshDecodeError("3MF file is not a zip package") from None
        unpacked = sum(m.file_size for m in members)
        if len(members) > limits.max_gltf_objects or unpacked > limits.max_decoded_bytes:
            raise MeshDecodeError(f"3MF package unpacks to {unpacked} bytes in {len(members)} files: too large")
    elif suffix in (".drc", ".draco"):
        from text3d.protocol.prescan import scan_draco

        if not data.startswith(b"DRACO"):
            raise MeshDecodeError("Draco file does not start with DRACO")
        if data[7] == 1:  # meshes only; a Draco point cloud is reported as such after decoding
            scan_draco(data, limits)


def _precheck_ply(data: bytes, limits: MeshLimits) -> None:
    end = data.find(b"end_header", 0, limits.max_header_bytes)
    if not data.startswith(b"ply") or end < 0:
        raise MeshDecodeError("PLY file has no header ending in end_header")
    counts: dict[str, int] = {}
    for line in data[:end].split(b"\n"):
        words = line.split()
        if len(words) == 3 and words[0] == b"element":
            if len(words[2]) > 12 or not words[2].isdigit():
                raise MeshDecodeError("PLY element count is not a bounded integer")
            counts[words[1].decode("ascii", "replace")] = int(words[2])
    limits.check_counts("PLY", counts.get("vertex", 0), counts.get("face", 0))
    for name, count in counts.items():
        if count > max(limits.max_vertices, limits.max_faces):
            raise MeshDecodeError(f"PLY declares {count} {name[:20]} elements, the limit is {limits.max_vertices}")
