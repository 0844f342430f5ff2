"""What every render backend shares: the validated, normalised arrays it draws, and the
error raised when no headless OpenGL context can be had.

``prepare_mesh`` is where a mesh is judged renderable: no faces, non-finite vertices,
out-of-range indices or a mesh collapsed to a point raise ``InvalidAssetError`` (a
miner fault). It never mutates the caller's mesh.

One drawing path for every kind of colour. A mesh becomes one vertex/index buffer and a
few *draws* (one per material part, ``text3d.protocol.mesh_parts``), each drawing

    colour = vertex colour * factor * texture(uv)        (then lit: ambient + diffuse)

Vertex-coloured meshes are one draw with factor 1 and the renderer's 1x1 white texture;
textured parts bring their base-colour texture; material colours are the factor; a part
without any colour gets the rig's neutral ``fallback_rgb`` as its factor. The validator
and ``text3d score`` draw the same way.
"""

from dataclasses import dataclass

import numpy as np
import trimesh

from text3d.protocol.mesh_parts import Part, scene_parts, split_parts
from text3d.reward.errors import InvalidAssetError, RendererUnavailable

__all__ = [
    "RenderMesh",
    "Draw",
    "RendererUnavailable",
    "prepare_mesh",
    "mesh_parts",
    "texture_array",
    "EGL_APT_PACKAGES",
    "MAX_TEXTURE_PX",
]

EGL_APT_PACKAGES = "libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri"

MAX_TEXTURE_PX = 2048
"""Textures are drawn at most this large (a larger one is box-filtered down first): views
are 512 px, so a 4096 px texture is minified 8x or more anyway; halving it saves the GPU
(or llvmpipe) a quarter of the upload and mipmapping work. Deterministic (PIL)."""
MAX_SOURCE_TEXTURE_PIXELS = 8192 * 8192
"""A texture whose (not yet decoded) size exceeds this is refused before decoding."""


@dataclass(frozen=True)
class Draw:
    """One material's faces: ``faces[first_face : first_face + n_faces]``.

    factor: (4,) float32 RGBA multiplier in [0, 1]; texture: index into
    ``RenderMesh.textures`` or None (white); source: what colours it (``text3d.protocol.mesh_parts.SOURCES``).
    """

    first_face: int
    n_faces: int
    factor: tuple[float, float, float, float]
    texture: int | None
    source: str


@dataclass(frozen=True)
class RenderMesh:
    """A mesh ready to upload: vertices normalised into the unit sphere, +Y up.

    positions: (V, 3) float32, max distance from the origin 1.0
    normals:   (V, 3) float32, unit length, area-weighted smooth vertex normals
    colors:    (V, 4) uint8 RGBA (white where a part has no vertex colours)
    uvs:       (V, 2) float32 texture coordinates, origin bottom-left (0 where untextured)
    faces:     (F, 3) uint32, every index < V, grouped by draw
    draws:     the material parts, in order, covering every face once
    textures:  (H, W, 4) uint8 RGBA images, row 0 at the top, at most MAX_TEXTURE_PX a side
    """

    positions: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    draws: tuple[Draw, ...]
    textures: tuple[np.ndarray, ...] = ()

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.source for d in self.draws))


def check_resolution(resolution: int) -> None:
    """Both backends accept the same image sizes, so validators on either agree."""
    if not 8 <= resolution <= 4096:
        raise ValueError(f"resolution must be in 8..4096 pixels, got {resolution}")


def mesh_parts(mesh) -> list[Part]:
    """The colour parts of a ``trimesh.Trimesh``, a ``trimesh.Scene`` (flattened with its
    transforms) or a sequence of meshes; ``InvalidAssetError`` when they are inconsistent."""
    try:
        if isinstance(mesh, trimesh.Scene):
            parts, _ = scene_parts(mesh)
            return parts
        if isinstance(mesh, (list, tuple)):
            return [part for m in mesh for part in mesh_parts(m)]
        return split_parts(mesh)
    except (ValueError, IndexError, TypeError) as exc:
        raise InvalidAssetError(f"the mesh's colours are inconsistent: {exc}") from None


def texture_array(image, max_px: int = MAX_TEXTURE_PX) -> np.ndarray:
    """A PIL image as (H, W, 4) uint8 RGBA, box-filtered down to at most ``max_px`` a side.

    The size is read before decoding: beyond ``MAX_SOURCE_TEXTURE_PIXELS`` the texture is
    refused (``InvalidAssetError``), as is an image that fails to decode.
    """
    from PIL import Image

    try:
        width, height = (int(v) for v in image.size)
    except Exception:
        raise InvalidAssetError("the mesh's texture is not an image") from None
    if width <= 0 or height <= 0 or width * height > MAX_SOURCE_TEXTURE_PIXELS:
        raise InvalidAssetError(
            f"the mesh's texture is {width} x {height} pixels; at most {MAX_SOURCE_TEXTURE_PIXELS} pixels are drawn"
        )
    try:
        rgba = image.convert("RGBA")
    except Exception as exc:
        raise InvalidAssetError(f"the mesh's texture could not be decoded ({type(exc).__name__})") from None
    if max(width, height) > max_px:
        scale = max_px / max(width, height)
        rgba = rgba.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX)
    return np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8).reshape(rgba.size[1], rgba.size[0], 4))


def prepare_mesh(mesh, fallback_rgb: tuple[int, int, int] = (170, 170, 170)) -> RenderMesh:
    """Validate ``mesh`` (a Trimesh, a Scene or a list of meshes) and normalise it for rendering.

    Centres the mesh on its bounding-box centre and scales it so the farthest vertex
    lies on the unit sphere. Raises ``InvalidAssetError`` for a mesh that cannot be
    drawn: no faces, non-finite vertices or UVs, face indices out of range, zero extent,
    or a texture that is too large or corrupt.
    """
    parts = [p for p in mesh_parts(mesh) if len(p.faces)]
    if not parts:
        if sum(len(p.vertices) for p in mesh_parts(mesh)) == 0:
            raise InvalidAssetError("the mesh has no vertices")
        raise InvalidAssetError("the mesh has no triangle faces")
    vertex_counts = [len(p.vertices) for p in parts]
    for part in parts:
        faces = np.asarray(part.faces)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise InvalidAssetError("the mesh has no triangle faces")
        if faces.min() < 0 or faces.max() >= len(part.vertices):
            raise InvalidAssetError(f"the mesh has face indices outside 0..{len(part.vertices) - 1}")
    vertices = np.concatenate([np.asarray(p.vertices, dtype=np.float64).reshape(-1, 3) for p in parts])
    if len(vertices) == 0:
        raise InvalidAssetError("the mesh has no vertices")
    if not np.isfinite(vertices).all():
        raise InvalidAssetError("the mesh has non-finite (NaN or infinite) vertex coordinates")

    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2.0
    centred = vertices - centre
    radius = float(np.sqrt((centred * centred).sum(axis=1).max()))
    if not np.isfinite(radius) or radius <= 1e-12:
        raise InvalidAssetError("the mesh has zero extent (all vertices coincide)")
    positions = (centred / radius).astype(np.float32)

    offsets = np.cumsum([0] + vertex_counts)
    faces = np.concatenate([np.asarray(p.faces, dtype=np.int64) + o for p, o in zip(parts, offsets)]).astype(np.uint32)
    colors = np.concatenate(
        [p.colours if p.colours is not None else np.full((len(p.vertices), 4), 255, np.uint8) for p in parts]
    )
    uvs = np.zeros((len(vertices), 2), dtype=np.float32)
    textures: list[np.ndarray] = []
    texture_index: dict[int, int] = {}
    draws, first = [], 0
    fallback = tuple(c / 255.0 for c in fallback_rgb) + (1.0,)
    for part, offset in zip(parts, offsets):
        texture = None
        if part.texture is not None and part.uv is not None:
            uv = np.asarray(part.uv, dtype=np.float64)
            if not np.isfinite(uv).all():
                raise InvalidAssetError("the mesh has non-finite texture coordinates")
            uvs[offset : offset + len(part.vertices)] = uv
            if id(part.texture) not in texture_index:
                texture_index[id(part.texture)] = len(textures)
                textures.append(texture_array(part.texture))
            texture = texture_index[id(part.texture)]
        if part.source == "none":
            factor = fallback
        elif part.factor is not None:
            factor = tuple(float(c) / 255.0 for c in part.factor)
        else:
            factor = (1.0, 1.0, 1.0, 1.0)
        draws.append(Draw(first, len(part.faces), factor, texture, part.source))
        first += len(part.faces)
    return RenderMesh(
        positions=positions,
        normals=_vertex_normals(positions, faces),
        colors=np.ascontiguousarray(colors),
        faces=faces,
        uvs=uvs,
        draws=tuple(draws),
        textures=tuple(textures),
    )


def _vertex_normals(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted smooth normals; vertices with no (or only degenerate) faces get +Y."""
    tri = positions[faces].astype(np.float64)
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    flat_idx = faces.reshape(-1)
    n_verts = len(positions)
    normals = np.empty((n_verts, 3))
    for axis in range(3):
        normals[:, axis] = np.bincount(flat_idx, weights=np.repeat(face_n[:, axis], 3), minlength=n_verts)
    length = np.linalg.norm(normals, axis=1)
    degenerate = length <= 1e-20
    normals[degenerate] = (0.0, 1.0, 0.0)
    length[degenerate] = 1.0
    return (normals / length[:, None]).astype(np.float32)
