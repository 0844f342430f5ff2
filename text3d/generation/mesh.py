"""Shap-E decoder output -> a ``trimesh.Trimesh`` in the project's frame.

Convention (every mesh ``generation`` returns):

* **+Y up** (glTF). Shap-E's frame is +Z up; a rotation of -90 degrees about X maps
  ``(x, y, z) -> (x, z, -y)`` (proper rotation: no mirroring, triangle winding kept).
* **Front = +Z.** Shap-E's reference pan cameras start at -Y looking towards +Y, so
  the side an object shows first faces -Y, which the rotation sends to +Z (the side a
  glTF viewer looks at by default).
* **Centred and in the unit sphere:** the bounding-box centre moves to the origin and
  the farthest vertex to distance 1. Renderers re-normalise anyway; this makes files
  written by the CLI look sensible in any viewer.
* **Colours** are per-vertex ``visual.vertex_colors``, uint8 RGBA with alpha 255: the
  decoder's RGB channels in [0, 1] times 255, rounded (as Shap-E's own PLY writer).
* Faces are counter-clockwise seen from outside (outward normals).
"""

import numpy as np
import trimesh

__all__ = ["SHAP_E_TO_GLTF", "to_trimesh", "normalize_to_unit_sphere"]

# Row-vector convention: vertices_gltf = vertices_shap_e @ SHAP_E_TO_GLTF.
SHAP_E_TO_GLTF = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def normalize_to_unit_sphere(vertices: np.ndarray) -> np.ndarray:
    """Centre ``(N, 3)`` vertices on their bounding-box centre and scale the farthest to radius 1.

    A degenerate (single-point) mesh is only centred.
    """
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2.0
    centred = vertices - centre
    radius = float(np.linalg.norm(centred, axis=1).max(initial=0.0))
    return centred / radius if radius > 0.0 else centred


def to_trimesh(vertices: np.ndarray, faces: np.ndarray, rgb: np.ndarray) -> trimesh.Trimesh:
    """Build the project-frame mesh from Shap-E-frame arrays.

    Args:
        vertices: ``(N, 3)`` float positions, Shap-E frame (+Z up).
        faces: ``(M, 3)`` int vertex indices.
        rgb: ``(N, 3)`` float colours in [0, 1] (values outside are clipped).

    Returns:
        A mesh with float64 vertices (+Y up, centred, in the unit sphere), int64 faces
        and uint8 RGBA ``visual.vertex_colors``. Vertices are not merged (marching
        cubes already shares them between faces), so the mesh stays watertight.
    """
    vertices = normalize_to_unit_sphere(np.asarray(vertices, dtype=np.float64) @ SHAP_E_TO_GLTF)
    rgba = np.full((len(vertices), 4), 255, dtype=np.uint8)
    rgba[:, :3] = np.rint(np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    return trimesh.Trimesh(
        vertices=vertices,
        faces=np.asarray(faces, dtype=np.int64),
        vertex_colors=rgba,
        process=False,
    )
