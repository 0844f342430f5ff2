"""Declared sizes of local asset files, checked before trimesh parses a byte of them.

trimesh allocates what a file's header declares (a PLY ``element vertex`` count, an STL
triangle count, a glTF accessor ``count``) and unpacks what an archive holds; a lying
header costs gigabytes. ``precheck(suffix, data, limits)`` reads only the headers (or, for
OBJ, counts the lines that start with ``v`` and ``f``) and raises ``MeshDecodeError``
when they exceed ``MeshLimits`` or disagree with the file's length. glTF/GLB go through
the wire codec's own lenient scan (``text3d.protocol.prescan_gltf.scan_gltf(strict=False)``),
which bounds their texture images at the image headers too.

Zip packages (3MF, ZAE, 3DXML) are bounded by their entry count and declared unpacked size.
XML formats (XAML, 3DXML parts) are bounded by the numbers their text can hold (separators
counted, nothing parsed); a 3DXML product structure is a graph of instances that trimesh
expands into every path from the root to each part -- 2^k paths for k layers of two -- so
its paths are counted (a cycle is refused) before trimesh walks them.
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
    elif suffix in (".3mf", ".zae", ".3dxml"):
        label = suffix[1:].upper()
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = archive.infolist()
                unpacked = sum(m.file_size for m in members)
                if len(members) > limits.max_gltf_objects or unpacked > limits.max_decoded_bytes:
                    raise MeshDecodeError(f"{label} package unpacks to {unpacked} bytes in {len(members)} files: too large")
                if suffix == ".3dxml":
                    _precheck_3dxml(archive, limits)
        except KeyError as exc:
            raise MeshDecodeError(f"{label} package lacks {exc}") from None
        except (zipfile.BadZipFile, EOFError, ValueError) as exc:
            if isinstance(exc, MeshDecodeError):
                raise
            raise MeshDecodeError(f"{label} file is not a readable zip package") from None
    elif suffix == ".xaml":
        _check_numbers("XAML", data, limits)
    elif suffix in (".drc", ".draco"):
        from text3d.protocol.prescan import scan_draco

        if not data.startswith(b"DRACO"):
            raise MeshDecodeError("Draco file does not start with DRACO")
        if data[7] == 1:  # meshes only; a Draco point cloud is reported as such after decoding
            scan_draco(data, limits)


def _check_numbers(label: str, text: bytes, limits: MeshLimits) -> None:
    """Refuse XML whose numbers (positions, normals, texture coordinates, indices) could
    exceed the vertex and face limits: separators are counted, nothing is parsed."""
    numbers = text.count(b" ") + text.count(b",") + text.count(b"\n") + text.count(b"\t")
    bound = 8 * limits.max_vertices + 3 * limits.max_faces
    if numbers > bound:
        raise MeshDecodeError(f"{label} holds up to {numbers} numbers, more than {limits.max_vertices} vertices and "
                              f"{limits.max_faces} faces need")


def _precheck_3dxml(archive: zipfile.ZipFile, limits: MeshLimits) -> None:
    """Bound a 3DXML package before trimesh loads it: the XML of every part, and the number
    of part instances its product structure expands to (paths from the root)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)

    def tree(name: str):
        info = archive.getinfo(name)
        if info.file_size > limits.max_header_bytes:
            raise MeshDecodeError(f"3DXML entry {name[:60]!r} is {info.file_size} bytes of XML, the limit is "
                                  f"{limits.max_header_bytes}")
        try:
            return etree.fromstring(archive.read(name), parser=parser)
        except etree.XMLSyntaxError:
            raise MeshDecodeError(f"3DXML entry {name[:60]!r} is not well-formed XML") from None

    for info in archive.infolist():
        if info.filename.lower().endswith(".3drep"):
            with archive.open(info) as handle:
                _check_numbers("a 3DXML part", handle.read(limits.max_decoded_bytes), limits)
    root_element = tree("Manifest.xml").find("{*}Root")
    if root_element is None or not (root_element.text or "").strip():
        raise MeshDecodeError("3DXML manifest names no root file")
    product = tree(root_element.text.strip())
    structure = product.find("{*}ProductStructure")
    if structure is None or "root" not in structure.attrib:
        raise MeshDecodeError("3DXML root file has no product structure")
    children: dict[str, list[str]] = {}
    for kind in ("InstanceRep", "Instance3D"):  # the edges trimesh follows: parent -> instance -> part
        for element in product.iter("{*}" + kind):
            parent, target = element.find("{*}IsAggregatedBy"), element.find("{*}IsInstanceOf")
            node = element.attrib.get("id", "")
            if parent is not None:
                children.setdefault((parent.text or "").strip(), []).append(node)
            if target is not None:
                children.setdefault(node, []).append((target.text or "").strip())
    paths: dict[str, int] = {}
    visiting: set[str] = set()

    def count(node: str) -> int:  # paths from node to its leaves, memoised; iterative depth bound
        if node in paths:
            return paths[node]
        if node in visiting:
            raise MeshDecodeError("3DXML product structure has a cycle")
        if len(visiting) > 256:
            raise MeshDecodeError("3DXML product structure is nested more than 256 levels deep")
        visiting.add(node)
        total = sum(count(child) for child in children.get(node, ())) or 1
        visiting.discard(node)
        paths[node] = min(total, 1 << 40)
        return paths[node]

    n = count(structure.attrib["root"])
    if n > limits.max_gltf_objects:
        raise MeshDecodeError(f"3DXML product structure expands to {n} part instances, the limit is "
                              f"{limits.max_gltf_objects}")


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
