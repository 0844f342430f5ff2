"""Flatness: a billboard (a picture on a thin quad or slab) is not a 3D object.

Geometry, not pixels: the surface's area-weighted covariance (exact second moments of
every triangle, so the value does not depend on vertex order or tessellation density)
has eigenvalues l1 >= l2 >= l3, and the **thickness** is ``sqrt(l3 / l2)``: the spread of
the surface across its thinnest axis relative to its middle one. A sphere or a cube has
thickness 1, a coin (diameter 10 x its height) about 0.12, a thin slab 1/50 of its width
about 0.03 and a single quad 0. Relative to the middle axis rather than the longest, so a
sword or a pencil (long, but not flat) is not mistaken for a billboard.

    factor = min(1, thickness / min_thickness)        (1 when min_thickness is 0)

multiplies an asset's score (protocol ``min_thickness`` 0.03): a linear ramp, no cliff.

What it catches and what it does not: it catches billboards and paper-thin cut-outs of
any orientation. It does NOT catch a box painted with a picture (a cube is as thick as a
shape can be); the secret views do that -- from directions the painter did not know the
picture falls apart (tests/test_scoring_secret_views.py measures it). Silhouette
fractions per view (``silhouette_fractions``) go into the report as evidence: a billboard
shows a sliver edge-on.
"""

from typing import Sequence

import numpy as np
import trimesh
from PIL import Image

__all__ = ["surface_moments", "thickness", "flatness_factor", "silhouette_fractions"]


def surface_moments(vertices: np.ndarray, faces: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(total area, area-weighted centroid [3], covariance [3, 3]) of a triangle surface.

    Exact for the uniform measure on the triangles: E[x x^T] over a triangle (a, b, c) is
    (a a^T + b b^T + c c^T + s s^T) / 12 with s = a + b + c. float64 throughout.
    """
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[np.asarray(faces, dtype=np.int64)]  # [F, 3, 3]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = float(area.sum())
    if not total > 0.0:
        return 0.0, np.zeros(3), np.zeros((3, 3))
    s = tri.sum(axis=1)  # [F, 3]
    centroid = (area[:, None] * s / 3.0).sum(axis=0) / total
    corners = tri.reshape(-1, 3)
    second = (corners * np.repeat(area, 3)[:, None]).T @ corners + (s * area[:, None]).T @ s
    cov = second / (12.0 * total) - np.outer(centroid, centroid)
    return total, centroid, (cov + cov.T) / 2.0


def thickness(mesh: trimesh.Trimesh) -> float:
    """``sqrt(l3 / l2)`` of the surface covariance, in [0, 1]; 0 for a degenerate surface."""
    total, _, cov = surface_moments(mesh.vertices, mesh.faces)
    if not total > 0.0:
        return 0.0
    eig = np.sort(np.clip(np.linalg.eigvalsh(cov), 0.0, None))[::-1]
    if not eig[1] > 0.0:
        return 0.0
    return float(np.sqrt(eig[2] / eig[1]))


def flatness_factor(thickness_value: float, min_thickness: float) -> float:
    """``min(1, thickness / min_thickness)``; 1 when ``min_thickness`` is 0."""
    if min_thickness <= 0.0:
        return 1.0
    return float(np.clip(thickness_value / min_thickness, 0.0, 1.0))


def silhouette_fractions(images: Sequence[Image.Image], background_rgb: tuple[int, int, int]) -> list[float]:
    """Share of pixels of each view that differ from the background colour."""
    bg = np.asarray(background_rgb, dtype=np.int16)
    out = []
    for image in images:
        px = np.asarray(image.convert("RGB"), dtype=np.int16)
        out.append(float((np.abs(px - bg).max(axis=2) > 8).mean()))
    return out
