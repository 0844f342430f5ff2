"""What every render backend shares: the validated, normalised mesh arrays it draws, and
the error raised when no headless OpenGL context can be had.

``prepare_mesh`` is where a miner's mesh is judged renderable: no faces, non-finite
vertices, out-of-range indices or a mesh collapsed to a point raise
``InvalidAssetError`` (a miner fault). It never mutates the caller's mesh.
"""

from dataclasses import dataclass

import numpy as np
import trimesh

from reward.errors import InvalidAssetError, RendererUnavailable

__all__ = ["RenderMesh", "RendererUnavailable", "prepare_mesh", "EGL_APT_PACKAGES"]

EGL_APT_PACKAGES = "libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri"


@dataclass(frozen=True)
class RenderMesh:
    """A mesh ready to upload: vertices normalised into the unit sphere, +Y up.

    positions: (V, 3) float32, max distance from the origin 1.0
    normals:   (V, 3) float32, unit length, area-weighted smooth vertex normals
    colors:    (V, 4) uint8 RGBA
    faces:     (F, 3) uint32, every index < V
    """

    positions: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    faces: np.ndarray

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])


def check_resolution(resolution: int) -> None:
    """Both backends accept the same image sizes, so validators on either agree."""
    if not 8 <= resolution <= 4096:
        raise ValueError(f"resolution must be in 8..4096 pixels, got {resolution}")


def prepare_mesh(mesh: trimesh.Trimesh, fallback_rgb: tuple[int, int, int] = (170, 170, 170)) -> RenderMesh:
    """Validate ``mesh`` and normalise it for rendering.

    Centres the mesh on its bounding-box centre and scales it so the farthest vertex
    lies on the unit sphere. Raises ``InvalidAssetError`` for a mesh that cannot be
    drawn: no faces, non-finite vertices, face indices out of range, or zero extent.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise InvalidAssetError("the mesh has no vertices")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise InvalidAssetError("the mesh has no triangle faces")
    if not np.isfinite(vertices).all():
        raise InvalidAssetError("the mesh has non-finite (NaN or infinite) vertex coordinates")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InvalidAssetError(f"the mesh has face indices outside 0..{len(vertices) - 1}")

    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2.0
    centred = vertices - centre
    radius = float(np.sqrt((centred * centred).sum(axis=1).max()))
    if not np.isfinite(radius) or radius <= 1e-12:
        raise InvalidAssetError("the mesh has zero extent (all vertices coincide)")
    positions = (centred / radius).astype(np.float32)
    faces_u32 = faces.astype(np.uint32)
    return RenderMesh(
        positions=positions,
        normals=_vertex_normals(positions, faces_u32),
        colors=_vertex_colors(mesh, len(vertices), fallback_rgb),
        faces=faces_u32,
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


def _vertex_colors(mesh: trimesh.Trimesh, n_verts: int, fallback_rgb: tuple[int, int, int]) -> np.ndarray:
    """Per-vertex RGBA uint8: vertex colours as given, face or texture colours converted
    by trimesh, and ``fallback_rgb`` for a mesh without colours."""
    fallback = np.empty((n_verts, 4), dtype=np.uint8)
    fallback[:, :3] = fallback_rgb
    fallback[:, 3] = 255
    visual = getattr(mesh, "visual", None)
    kind = getattr(visual, "kind", None)
    if kind is None:
        return fallback
    try:
        if kind == "texture":
            visual = visual.to_color()
        colors = np.asarray(visual.vertex_colors)
    except Exception:  # a broken texture or colour array: render it grey rather than crash
        return fallback
    if colors.shape != (n_verts, 4):
        if colors.shape == (n_verts, 3):
            colors = np.concatenate([colors, np.full((n_verts, 1), 255, dtype=colors.dtype)], axis=1)
        else:
            return fallback
    if colors.dtype != np.uint8:
        colors = np.clip(colors, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(colors)
