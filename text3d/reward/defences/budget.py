"""Render budget: refuse, before drawing, a mesh that would cost far more to draw than any
honest one (the overdraw attack: 1M large overlapping triangles took 306 s to score).

A rasteriser's cost grows with the pixels its triangles cover (rasterisation, shading,
4x MSAA) and with the length of their edges on screen (it walks every triangle's edges
tile by tile, covered pixels or not), so the budget is two estimates per view of the rig:

    overdraw_v      = sum_f min(area_px(f, v), W * H) / (W * H)
    edge_overdraw_v = sum_f min(perimeter_px(f, v), 2 * (W + H)) / (W * H)
    refused  <=> max_v overdraw_v > max_overdraw              (protocol: 8)
              or max_v edge_overdraw_v > max_edge_overdraw    (protocol: 256)

both computed in float64 on the mesh normalised exactly as the renderer normalises it (so
no scale can overflow them: in float32 the radius of a mesh scaled by 1e20 overflowed and
the 1M-face overdraw mesh was estimated at 0.0). A closed honest mesh covers its
silhouette about twice (front and back), so its overdraw is ~1-3; a marching-cubes mesh
with inner shells a few more.

The edge estimate closes the slivers' door: the same overdraw mesh stretched 1e6 times
along one axis, or a million zero-width needles across the view, cover almost no area
(overdraw 0.06 and 0.01) yet took 17 s and 34 s to draw on llvmpipe, against 3.1 s for a
1M-face honest sphere; their edge overdraw is 1,736 and 2,893. Honest meshes measured: at
most 8.3 on trimesh's sample models, 20.8 for the 1M-face sphere, 33 for the densest
sample model subdivided to 694k faces (docs/scoring.md); a bound of 256 leaves them a
margin of 7 and refuses the slivers with one of 6.8, and what it lets through costs at
most about one honest 1M-face render more.

Cheap first: the screen area of a triangle is at most its 3-D area times
``(f * W / 2)^2 * s / z_min^2`` and its screen perimeter at most its 3-D perimeter times
``f * W / 2 * s / z_min``, where ``z_min = distance - 1`` is the nearest possible depth and
``s = sqrt(1 + 1 / (distance^2 - 1))`` the perspective's largest stretch off the axis
inside the unit sphere; when the summed 3-D area and perimeter already bound every view
under the budget no view is projected (an honest mesh: one pass over the faces).
Otherwise views are projected one at a time and the first over either budget refuses
(the attacks: one view).

Invalid before drawing (``OverdrawEstimate.invalid_reason``), whatever the estimates:
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
    overdraw: float  # worst view's covered area in viewports (or the bound when no view was projected)
    bound_only: bool  # True when the 3-D bounds alone showed the mesh within budget
    views_projected: int
    invalid_reason: str | None = None  # set: the mesh must not be drawn at all (see the module docstring)
    edge_overdraw: float = 0.0  # worst view's summed edge length in pixels per image pixel (or its bound)

    @property
    def as_dict(self) -> dict:
        return {"overdraw": self.overdraw, "edge_overdraw": self.edge_overdraw, "bound_only": self.bound_only,
                "views_projected": self.views_projected, "invalid_reason": self.invalid_reason}

    def over_budget(self, max_overdraw: float, max_edge_overdraw: float) -> str | None:
        """Why the mesh is over the render budget, or None when it is within it."""
        if self.overdraw > max_overdraw:
            return (f"the mesh is over the render budget: its triangles would cover the image "
                    f"{self.overdraw:.0f} times over (at most {max_overdraw:g})")
        if self.edge_overdraw > max_edge_overdraw:
            return (f"the mesh is over the render budget: its triangles' edges would run {self.edge_overdraw:.0f} "
                    f"pixels for every pixel of the image (at most {max_edge_overdraw:g}; thin slivers cost "
                    "the rasteriser as much as covered area)")
        return None


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
    mesh: trimesh.Trimesh, rig: CameraRig, n_views: int, resolution: int, max_overdraw: float,
    max_edge_overdraw: float,
) -> OverdrawEstimate:
    """The overdraw and edge overdraw estimates of ``mesh`` under ``rig`` (see the module docstring).

    Stops at the first view over ``max_overdraw`` or ``max_edge_overdraw``. A mesh with an
    invalid extent gets ``invalid_reason``; one the renderer refuses anyway (no faces, bad
    indices) overdraw 0: the renderer says why.
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
    area3d_total = 0.5 * float(np.sqrt(np.einsum("ij,ij->i", cross, cross)).sum(dtype=np.float64))
    del cross
    e3 = e2 - e1
    perimeter3d_total = sum(float(np.sqrt(np.einsum("ij,ij->i", e, e)).sum(dtype=np.float64)) for e in (e1, e2, e3))
    del e1, e2, e3
    focal = 1.0 / np.tan(np.radians(rig.fov_deg) / 2.0)
    z_min = max(rig.distance - 1.0, 1e-3)
    stretch = float(np.sqrt(1.0 + 1.0 / max(rig.distance ** 2 - 1.0, 1e-6)))  # off-axis, inside the unit sphere
    pixels = float(resolution) ** 2
    half = resolution / 2.0
    bound = area3d_total * (focal / z_min) ** 2 * stretch / 4.0  # in viewports (the NDC square has area 4)
    edge_bound = perimeter3d_total * focal * half * stretch / z_min / pixels
    if not (np.isfinite(bound) and np.isfinite(edge_bound)):
        return OverdrawEstimate(float("inf"), True, 0, "the mesh's render cost cannot be estimated (not a finite number)")
    if bound <= max_overdraw and edge_bound <= max_edge_overdraw:
        return OverdrawEstimate(bound, True, 0, edge_overdraw=edge_bound)
    longest = 2.0 * (resolution + resolution)  # a triangle clipped to the image is no longer around than it
    worst, worst_edges, done = 0.0, 0.0, 0
    for view in rig.view_matrices(n_views):
        cam = v @ view[:3, :3].T.astype(np.float32) + view[:3, 3].astype(np.float32)
        inv_depth = (focal * half) / np.maximum(-cam[:, 2], 1e-3)
        x, y = cam[:, 0] * inv_depth, cam[:, 1] * inv_depth  # pixels from the image centre
        del cam
        x0, y0 = x[i0], y[i0]
        dx1, dy1, dx2, dy2 = x[i1] - x0, y[i1] - y0, x[i2] - x0, y[i2] - y0
        del x0, y0
        area = 0.5 * np.abs(dx1 * dy2 - dx2 * dy1)
        overdraw = float(np.minimum(area, pixels).sum(dtype=np.float64)) / pixels
        del area
        perimeter = np.hypot(dx1, dy1) + np.hypot(dx2, dy2) + np.hypot(dx2 - dx1, dy2 - dy1)
        edges = float(np.minimum(perimeter, longest).sum(dtype=np.float64)) / pixels
        del perimeter, dx1, dy1, dx2, dy2
        if not (np.isfinite(overdraw) and np.isfinite(edges)):
            return OverdrawEstimate(float("inf"), False, done + 1,
                                    "the mesh's render cost cannot be estimated (not a finite number)")
        worst, worst_edges, done = max(worst, overdraw), max(worst_edges, edges), done + 1
        if worst > max_overdraw or worst_edges > max_edge_overdraw:
            break
    return OverdrawEstimate(worst, False, done, edge_overdraw=worst_edges)
