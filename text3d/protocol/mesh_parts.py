"""The colour model of a mesh, whatever trimesh visual carries it: parts with a base colour.

A coloured mesh is a list of ``Part``s, each a set of triangles sharing one material.
The colour of a surface point follows glTF's base colour:

    colour = vertex colour (interpolated) * base-colour factor * base-colour texture(uv)

with white standing in for whichever of the three a part lacks. A part with none of
them has no colour at all (``source == "none"``): renderers draw it with their neutral
default material and say so.

    split_parts(mesh)   -> list[Part]     any trimesh visual: vertex or face colours,
                                          TextureVisuals with PBR / simple / multi materials
    scene_parts(scene)  -> (parts, others)  a scene flattened with its node transforms
    merge_parts(parts)  -> trimesh.Trimesh  one mesh again (see below)
    bake_vertex_colours(parts) -> (N, 4) uint8   texture and factor sampled per vertex

``merge_parts`` is the canonical form decoders and loaders return: plain per-vertex
``ColorVisuals`` when every part is vertex-coloured only (exactly the wire codec's
historic output), no visual when no part has colour, and otherwise ``TextureVisuals``
with a ``MultiMaterial`` (one ``PBRMaterial`` per part, ``face_materials`` indexing them)
and the vertex colours in ``visual.vertex_attributes["color"]``. trimesh's own texture
concatenation packs an atlas (resampling every texture, metallic and normal maps
included); this keeps each part's texture as it is.

UVs follow trimesh: origin at the bottom-left of the image (glTF's top-left V is
flipped by trimesh's loader), image row 0 at the top.
"""

from dataclasses import dataclass

import numpy as np
import trimesh
from trimesh.visual.material import MultiMaterial, PBRMaterial, SimpleMaterial
from trimesh.visual.texture import TextureVisuals

__all__ = ["Part", "split_parts", "scene_parts", "merge_parts", "bake_vertex_colours", "colour_summary", "SOURCES"]

SOURCES = ("vertex colours", "face colours", "texture", "material colour", "none")
"""What gives a part its colour, in the words reports use."""


@dataclass(frozen=True)
class Part:
    """Triangles sharing one material.

    vertices: (N, 3) float64; faces: (M, 3) int64 indices into ``vertices``;
    colours: (N, 4) uint8 RGBA per vertex, or None (white);
    uv: (N, 2) float64 or None; texture: a ``PIL.Image`` (maybe not yet decoded) or None;
    factor: (4,) uint8 RGBA base-colour factor, or None (white);
    flat: the colours came from faces (each face has its own three vertices).
    """

    vertices: np.ndarray
    faces: np.ndarray
    colours: np.ndarray | None = None
    uv: np.ndarray | None = None
    texture: object | None = None
    factor: np.ndarray | None = None
    flat: bool = False

    @property
    def source(self) -> str:
        """The strongest colour source of the part (one of ``SOURCES``)."""
        if self.texture is not None and self.uv is not None:
            return "texture"
        if self.colours is not None:
            return "face colours" if self.flat else "vertex colours"
        if self.factor is not None:
            return "material colour"
        return "none"


def rgba_u8(values, n: int | None = None) -> np.ndarray | None:
    """Colours as (n, 4) uint8 RGBA: floats in [0, 1] scaled, 16-bit values shifted, alpha
    255 added to RGB. None when ``values`` is None or has the wrong shape."""
    if values is None:
        return None
    array = np.asarray(values)
    single = array.ndim == 1
    array = np.atleast_2d(array)
    if array.ndim != 2 or array.shape[1] not in (3, 4) or (n is not None and len(array) != n):
        return None
    if np.issubdtype(array.dtype, np.floating):
        array = np.round(np.clip(np.nan_to_num(array), 0.0, 1.0) * 255)
    elif array.dtype == np.uint16:  # glTF's normalised unsigned short colours
        array = (array.astype(np.uint32) + 128) // 257
    array = np.clip(array, 0, 255).astype(np.uint8)
    if array.shape[1] == 3:
        array = np.concatenate([array, np.full((len(array), 1), 255, np.uint8)], axis=1)
    array = np.ascontiguousarray(array)
    return array[0] if single else array


def _white_is_none(colours: np.ndarray | None) -> np.ndarray | None:
    return None if colours is None or (colours == 255).all() else colours


def _material_colour(material) -> tuple[object | None, np.ndarray | None]:
    """(base-colour texture, factor) of one trimesh material."""
    if isinstance(material, PBRMaterial):
        return material.baseColorTexture, rgba_u8(material.baseColorFactor)
    if isinstance(material, SimpleMaterial):
        image = getattr(material, "image", None)
        return (image, None) if image is not None else (None, rgba_u8(material.diffuse))
    return None, None


def split_parts(mesh: trimesh.Trimesh) -> list[Part]:
    """The parts of one mesh (one part per material used; faces keep their order within a part).

    Face colours become flat colours: each face gets its own three vertices. Raises
    ``ValueError`` for UV or colour arrays whose length does not match the vertices.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    visual = getattr(mesh, "visual", None)
    kind = getattr(visual, "kind", None)
    if kind is None:
        return [Part(vertices, faces)]
    if kind == "face":
        face_colours = rgba_u8(visual.face_colors, len(faces))
        if face_colours is None:
            raise ValueError(f"face colours have shape {np.shape(visual.face_colors)}, need ({len(faces)}, 3|4)")
        return [Part(vertices[faces].reshape(-1, 3), np.arange(3 * len(faces)).reshape(-1, 3),
                     np.repeat(face_colours, 3, axis=0), flat=True)]
    if kind == "vertex":
        colours = rgba_u8(visual.vertex_colors, len(vertices))
        if colours is None:
            raise ValueError(f"vertex colours have shape {np.shape(visual.vertex_colors)}, need ({len(vertices)}, 3|4)")
        return [Part(vertices, faces, colours)]

    # texture visuals: UVs, per-vertex colours (glTF COLOR_0) and one or several materials
    uv = None if visual.uv is None else np.asarray(visual.uv, dtype=np.float64)
    if uv is not None and uv.shape != (len(vertices), 2):
        raise ValueError(f"texture coordinates have shape {uv.shape}, need ({len(vertices)}, 2)")
    colours = rgba_u8(visual.vertex_attributes.get("color"), len(vertices))
    material = visual.material
    materials = list(material.materials) if isinstance(material, MultiMaterial) else [material]
    face_materials = getattr(visual, "face_materials", None)
    if len(materials) == 1 or face_materials is None:
        selectors = [(materials[0] if materials else None, None)]
    else:
        face_materials = np.asarray(face_materials, dtype=np.int64).reshape(-1)
        if len(face_materials) != len(faces) or face_materials.min() < 0 or face_materials.max() >= len(materials):
            raise ValueError("face materials do not index the materials one per face")
        selectors = [(materials[m], face_materials == m) for m in np.unique(face_materials)]
    parts = []
    for chosen, mask in selectors:
        texture, factor = _material_colour(chosen)
        part_vertices, part_faces, part_uv, part_colours = vertices, faces, uv, colours
        if mask is not None:  # keep only the vertices this material's faces use
            used, part_faces = np.unique(faces[mask], return_inverse=True)
            part_faces = part_faces.reshape(-1, 3)
            part_vertices = vertices[used]
            part_uv = None if uv is None else uv[used]
            part_colours = None if colours is None else colours[used]
        parts.append(Part(part_vertices, part_faces, _white_is_none(part_colours), part_uv if texture is not None else None,
                          texture if part_uv is not None else None, factor))
    return parts


def scene_parts(loaded) -> tuple[list[Part], list[str]]:
    """Flatten a ``trimesh.Scene`` (or one geometry) into parts with world-space vertices.

    Walks the scene graph itself instead of ``Scene.dump()``, which copies every material
    and so decodes every texture image (before anyone could check its size). Instances of
    one geometry share their texture objects. Returns (parts, kinds of the non-triangle
    geometries met, e.g. ``["PointCloud"]``).
    """
    if not isinstance(loaded, trimesh.Scene):
        if isinstance(loaded, trimesh.Trimesh):
            return split_parts(loaded), []
        return [], [type(loaded).__name__]
    parts, others = [], []
    for node in loaded.graph.nodes_geometry:
        transform, name = loaded.graph[node]
        geometry = loaded.geometry.get(name)
        if not isinstance(geometry, trimesh.Trimesh):
            others.append(type(geometry).__name__)
            continue
        transform = np.asarray(transform, dtype=np.float64)
        for part in split_parts(geometry):
            vertices = part.vertices @ transform[:3, :3].T + transform[:3, 3]
            parts.append(Part(vertices, part.faces, part.colours, part.uv, part.texture, part.factor, part.flat))
    return parts, others


def merge_parts(parts: list[Part]) -> trimesh.Trimesh:
    """One ``trimesh.Trimesh`` holding every part (see the module docstring for its form)."""
    if not parts:
        raise ValueError("no parts to merge")
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts])
    vertices = np.concatenate([p.vertices for p in parts]).astype(np.float64)
    faces = np.concatenate([p.faces + offset for p, offset in zip(parts, offsets)]).astype(np.int64)
    sources = {p.source for p in parts}
    if sources == {"none"}:
        return trimesh.Trimesh(vertices, faces, process=False, validate=False)
    if all(p.colours is not None and p.texture is None and p.factor is None for p in parts):
        colours = np.concatenate([p.colours for p in parts])
        return trimesh.Trimesh(vertices, faces, vertex_colors=colours, process=False, validate=False)
    white = np.full(4, 255, np.uint8)
    uv = np.concatenate([p.uv if p.uv is not None else np.zeros((len(p.vertices), 2)) for p in parts])
    colours = np.concatenate([p.colours if p.colours is not None else np.tile(white, (len(p.vertices), 1))
                              for p in parts])
    materials = [PBRMaterial(baseColorTexture=p.texture, baseColorFactor=p.factor) for p in parts]
    face_materials = np.repeat(np.arange(len(parts)), [len(p.faces) for p in parts])
    visual = TextureVisuals(uv=uv, material=MultiMaterial(materials), face_materials=face_materials)
    mesh = trimesh.Trimesh(vertices, faces, visual=visual, process=False, validate=False)
    mesh.visual.vertex_attributes["color"] = colours
    return mesh


def _texture_rgba(texture) -> np.ndarray:
    array = np.asarray(texture.convert("RGBA"))
    return array.reshape(array.shape[0], array.shape[1], 4)


def _wrap(coordinate: np.ndarray) -> np.ndarray:
    """Repeat-wrap texture coordinates into [0, 1], keeping 1.0 (and 2.0 ...) at the far edge."""
    coordinate = np.nan_to_num(np.asarray(coordinate, dtype=np.float64))
    wrapped = coordinate - np.floor(coordinate)
    wrapped[(wrapped == 0.0) & (coordinate > 0.0)] = 1.0
    return wrapped


def bake_vertex_colours(parts: list[Part]) -> np.ndarray:
    """Per-vertex RGBA uint8 for the concatenated parts: vertex colour * factor * the texel
    nearest each vertex's UV (wrapping). Coarser than the texture, as any per-vertex form
    is. Raises ``ValueError`` for a part without any colour."""
    out = []
    for i, part in enumerate(parts):
        if part.source == "none":
            raise ValueError(f"mesh part {i} has no colours (no vertex colours, material colour or texture)")
        colour = np.full((len(part.vertices), 4), 1.0)
        if part.colours is not None:
            colour *= part.colours / 255.0
        if part.factor is not None:
            colour *= part.factor / 255.0
        if part.texture is not None and part.uv is not None:
            texels = _texture_rgba(part.texture)
            height, width = texels.shape[:2]
            u, v = _wrap(part.uv[:, 0]), _wrap(part.uv[:, 1])
            column = np.minimum((u * width).astype(np.int64), width - 1)
            row = np.minimum(((1.0 - v) * height).astype(np.int64), height - 1)
            colour *= texels[row, column] / 255.0
        out.append(np.round(colour * 255).astype(np.uint8))
    return np.concatenate(out)


def colour_summary(parts: list[Part]) -> str:
    """How the mesh is coloured, for reports: e.g. ``"texture (2 parts), material colour"``."""
    counts: dict[str, int] = {}
    for part in parts:
        counts[part.source] = counts.get(part.source, 0) + 1
    words = []
    for source in SOURCES:
        if source in counts:
            label = "no colours" if source == "none" else source
            words.append(label if counts[source] == 1 or len(parts) == 1 else f"{label} ({counts[source]} parts)")
    return ", ".join(words)
