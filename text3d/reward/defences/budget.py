"""Render budget: refuse, before drawing, a mesh that would cost far more to draw than any
honest one (the overdraw attack: 1M large overlapping triangles took 306 s to score).

The renderer's cost grows with the pixels its triangles cover (rasterisation, shading,
4x MSAA), so the budget is an **overdraw estimate**: the summed screen area of every
triangle projected by every view of the rig, in units of the viewport,

    overdraw_v = sum_f min(area_px(f, v), W * H) / (W * H)        per view v
    refused  <=> max_v overdraw_v > max_overdraw                  (protocol: 8)

computed in float64 on the mesh normalised exactly as the renderer normalises it (so no
scale can overflow it: in float32 the radius of a mesh scaled by 1e20 overflowed and the
1M-face overdraw mesh was estimated at 0.0). A closed honest
mesh covers its silhouette about twice (front and back), so its overdraw is ~1-3; a
marching-cubes mesh with inner shells a few more.

Cheap first: the screen area of a triangle is at most its 3-D area times
``(f * W / 2 / z_min)^2`` (nearest possible depth ``z_min = distance - 1``), so when the
summed 3-D area already bounds every view under the budget no view is projected (an
honest mesh: one pass over the faces). Otherwise views are projected one at a time and
the first over the budget refuses (the attack: one view).

Invalid before drawing (``OverdrawEstimate.invalid_reason``), whatever the overdraw:
non-finite coordinates, a zero extent, coordinates beyond ``MAX_COORDINATE`` (no honest
asset is 10^18 units across; float32 squares of such numbers overflow), and an estimate
that is not a finite number.
"""

from dataclasses import dataclass

import numpy as np
import trimesh

from text3d.reward.render.camera import CameraRig

__all__ = ["OverdrawEstimate", "estimate_overdraw", "MAX_COORDINATE"]

MAX_COORDINATE = 1e18


@dataclass(frozen=True)
class OverdrawEstimate:
    overdraw: float  # worst view's estimate (or the bound when no view was projected)
    bound_only: bool  # True when the area bound alone showed the mesh within budget
    views_projected: int
    invalid_reason: str | None = None  # set: the mesh must not be drawn at all (see the module docstring)

    @property
    def as_dict(self) -> dict:
        return {"overdraw": self.overdraw, "bound_only": self.bound_only, "views_projected": self.views_projected,
                "invalid_reason": self.invalid_reason}


def _normalised(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray] | str | None:
    """(unit-sphere vertices float32, faces), a reason the mesh is invalid, or None when the
    renderer should refuse it with its own precise reason (no faces, bad indices)."""
    vertices = np.asarray(mesh.vertices).view(np.ndarray)  # trimesh's TrackedArray hashes on every op
    faces = np.asarray(mesh.faces).view(np.ndarray)
    if vertices.ndim != 2 or len(vertices) == 0 or faces.ndim != 2 or faces.shape[1:] != (3,) or len(faces) == 0:
        return None
    if faces.min() < 0 or faces.max() >= len(vertices):
        return None
    vertices = vertices.astype(np.float64, copy=False)
    if not np.isfinite(vertices).all():
        return "the mesh has non-finite (NaN or infinite) vertex coordinates"
    largest = float(np.abs(vertices).max())
    if largest > MAX_COORDINATE:
        return (f"the mesh's coordinates reach {largest:.3g}, beyond {MAX_COORDINATE:g}: an absurd scale no renderer "
                "draws reliably")
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2.0
    centred = vertices - centre
    radius = float(np.sqrt(np.einsum("ij,ij->i", centred, centred).max()))
    if not np.isfinite(radius) or not radius > 1e-12 * max(1.0, largest):
        return "the mesh has zero extent (all vertices coincide)"
    return (centred / radius).astype(np.float32), faces


def estimate_overdraw(
    mesh: trimesh.Trimesh, rig: CameraRig, n_views: int, resolution: int, max_overdraw: float
) -> OverdrawEstimate:
    """The overdraw estimate of ``mesh`` under ``rig`` (see the module docstring).

    Stops at the first view over ``max_overdraw``. A mesh with an invalid extent gets
    ``invalid_reason``; one the renderer refuses anyway (no faces, bad indices) overdraw 0:
    the renderer says why.
    """
    prepared = _normalised(mesh)
    if prepared is None:
        return OverdrawEstimate(0.0, True, 0)
    if isinstance(prepared, str):
        return OverdrawEstimate(0.0, True, 0, prepared)
    v, faces = prepared
    i0, i1, i2 = faces[:, 0], faces[:, 1], faces[:, 2]
    a = v[i0]
    e1, e2 = v[i1] - a, v[i2] - a
    del a
    cross = np.cross(e1, e2)
    del e1, e2
    area3d_total = 0.5 * float(np.sqrt(np.einsum("ij,ij->i", cross, cross)).sum(dtype=np.float64))
    del cross
    focal = 1.0 / np.tan(np.radians(rig.fov_deg) / 2.0)
    z_min = max(rig.distance - 1.0, 1e-3)
    bound = area3d_total * (focal / z_min) ** 2 / 4.0  # in viewports (the NDC square has area 4)
    if not np.isfinite(bound):
        return OverdrawEstimate(float("inf"), True, 0, "the mesh's render cost cannot be estimated (not a finite number)")
    if bound <= max_overdraw:
        return OverdrawEstimate(bound, True, 0)
    pixels = float(resolution) ** 2
    half = resolution / 2.0
    worst, done = 0.0, 0
    for view in rig.view_matrices(n_views):
        cam = v @ view[:3, :3].T.astype(np.float32) + view[:3, 3].astype(np.float32)
        inv_depth = (focal * half) / np.maximum(-cam[:, 2], 1e-3)
        x, y = cam[:, 0] * inv_depth, cam[:, 1] * inv_depth  # pixels from the image centre
        del cam
        x0, y0 = x[i0], y[i0]
        area = 0.5 * np.abs((x[i1] - x0) * (y[i2] - y0) - (x[i2] - x0) * (y[i1] - y0))
        overdraw = float(np.minimum(area, pixels).sum(dtype=np.float64)) / pixels
        if not np.isfinite(overdraw):
            return OverdrawEstimate(float("inf"), False, done + 1,
                                    "the mesh's render cost cannot be estimated (not a finite number)")
        worst, done = max(worst, overdraw), done + 1
        if worst > max_overdraw:
            break
    return OverdrawEstimate(worst, False, done)
