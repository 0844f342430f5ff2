"""The canonical camera rig: where every validator looks at a mesh from, and how it is lit.

Validators must agree on the pixels they score, so the rig is a frozen value with
fixed defaults -- evenly spaced azimuths at one elevation, one field of view, one
camera distance, one background, one light -- shared by every render backend.

Secret views: ``draw_secret_rig(spec, seed)`` draws, from a ``RigSpec``'s ranges, one
azimuth offset for an evenly spaced ring, one elevation per ring view and
``n_secret_views`` views from below or above at random azimuths. The draw is a pure
function of the step seed (every validator with the same seed gets the same rig, every
miner in a step is scored under it), and the rig it returns lists its views explicitly
(``view_azimuths_deg`` / ``view_elevations_deg``) and round-trips through ``to_dict`` /
``from_dict``, so a report can name the exact cameras and a score can be reproduced.

Conventions (the project's): world space is right-handed and **+Y up**; meshes are
normalised into the unit sphere around the origin before rendering (see
``text3d.reward.render.arrays``). Azimuth 0 looks from +Z towards the origin and azimuths
increase counter-clockwise seen from above (towards +X). Matrices are row-major
numpy ``float64`` arrays acting on column vectors (``p_cam = view @ p_world``); GL
upload transposes them.
"""

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from text3d.reward.scoring_protocol import CameraSpec
from text3d.common.seeds import step_rng

_SPEC = CameraSpec()  # the pinned protocol's camera: the rig's defaults, stated once

__all__ = ["CameraRig", "look_at", "perspective", "canonical_rig", "draw_secret_rig"]


@dataclass(frozen=True)
class CameraRig:
    """Everything a view depends on besides the mesh, the view count and the resolution.

    ``light_dir_camera`` points from the surface towards the light, in camera space
    (x right, y up, +z towards the viewer): the light moves with the camera so every
    view is lit alike. Shading is ``colour * (ambient + diffuse * max(n.l, 0))``.
    ``fallback_rgb`` colours meshes that carry no vertex colours.

    ``view_azimuths_deg`` / ``view_elevations_deg`` (equal lengths), when given, list the
    views explicitly and the rig then has exactly that many (``n_views``); otherwise views
    are ``n`` evenly spaced azimuths from ``azimuth_start_deg`` at ``elevation_deg``.
    """

    elevation_deg: float = _SPEC.canonical_elevation_deg
    azimuth_start_deg: float = 0.0
    fov_deg: float = _SPEC.fov_deg
    distance: float = _SPEC.distance
    background_rgb: tuple[int, int, int] = _SPEC.background_rgb
    fallback_rgb: tuple[int, int, int] = _SPEC.fallback_rgb
    light_dir_camera: tuple[float, float, float] = _SPEC.light_dir_camera
    ambient: float = _SPEC.ambient
    diffuse: float = _SPEC.diffuse
    view_azimuths_deg: tuple[float, ...] | None = None
    view_elevations_deg: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.fov_deg < 170.0:
            raise ValueError(f"fov_deg must be in (0, 170), got {self.fov_deg}")
        if not -90.0 < self.elevation_deg < 90.0:
            raise ValueError(f"elevation_deg must be in (-90, 90), got {self.elevation_deg}")
        if not self.distance > 1.0:
            raise ValueError(f"distance must exceed the unit sphere's radius (1.0), got {self.distance}")
        for name in ("background_rgb", "fallback_rgb"):
            rgb = getattr(self, name)
            if len(rgb) != 3 or not all(0 <= int(c) <= 255 for c in rgb):
                raise ValueError(f"{name} must be three integers in 0..255, got {rgb}")
        if len(self.light_dir_camera) != 3 or not np.linalg.norm(self.light_dir_camera) > 0:
            raise ValueError(f"light_dir_camera must be a non-zero 3-vector, got {self.light_dir_camera}")
        if self.ambient < 0 or self.diffuse < 0:
            raise ValueError("ambient and diffuse must be non-negative")
        if (self.view_azimuths_deg is None) != (self.view_elevations_deg is None):
            raise ValueError("view_azimuths_deg and view_elevations_deg go together")
        if self.view_azimuths_deg is not None:
            if len(self.view_azimuths_deg) != len(self.view_elevations_deg) or not self.view_azimuths_deg:
                raise ValueError("view_azimuths_deg and view_elevations_deg must be non-empty and of equal length")
            if not all(-90.0 < float(e) < 90.0 for e in self.view_elevations_deg):
                raise ValueError(f"every view elevation must be in (-90, 90), got {self.view_elevations_deg}")

    @property
    def n_views(self) -> int | None:
        """The number of explicitly listed views, or None for an evenly spaced rig of any size."""
        return None if self.view_azimuths_deg is None else len(self.view_azimuths_deg)

    def _check_count(self, n_views: int) -> None:
        if n_views < 1:
            raise ValueError(f"n_views must be >= 1, got {n_views}")
        if self.n_views is not None and n_views != self.n_views:
            raise ValueError(f"this rig lists {self.n_views} views, {n_views} were asked for")

    def elevations_deg(self, n_views: int) -> list[float]:
        """One elevation per view: the listed ones, or ``elevation_deg`` for each."""
        self._check_count(n_views)
        if self.view_elevations_deg is not None:
            return [float(e) for e in self.view_elevations_deg]
        return [float(self.elevation_deg)] * n_views

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields (tuples become lists); ``from_dict`` reads it back."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CameraRig":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown CameraRig fields: {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})

    # Near/far planes hug the unit sphere so the 24-bit depth buffer is well used.
    @property
    def near(self) -> float:
        return max(self.distance - 1.5, 0.01)

    @property
    def far(self) -> float:
        return self.distance + 1.5

    def azimuths_deg(self, n_views: int) -> list[float]:
        """The listed azimuths, or ``n_views`` evenly spaced ones starting at ``azimuth_start_deg``."""
        self._check_count(n_views)
        if self.view_azimuths_deg is not None:
            return [float(a) % 360.0 for a in self.view_azimuths_deg]
        return [(self.azimuth_start_deg + 360.0 * i / n_views) % 360.0 for i in range(n_views)]

    def eye_positions(self, n_views: int) -> np.ndarray:
        """Camera centres in world space, shape ``(n_views, 3)``, all at ``distance``."""
        el = np.radians(self.elevations_deg(n_views))
        az = np.radians(self.azimuths_deg(n_views))
        return self.distance * np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], axis=1)

    def view_matrices(self, n_views: int) -> np.ndarray:
        """World-to-camera matrices, shape ``(n_views, 4, 4)``, each looking at the origin."""
        return np.stack([look_at(eye) for eye in self.eye_positions(n_views)])

    def camera_poses(self, n_views: int) -> np.ndarray:
        """Camera-to-world matrices (the inverse view matrices), shape ``(n_views, 4, 4)``."""
        return np.stack([np.linalg.inv(view) for view in self.view_matrices(n_views)])

    def projection_matrix(self) -> np.ndarray:
        """The GL perspective projection for a square image, shape ``(4, 4)``."""
        return perspective(self.fov_deg, 1.0, self.near, self.far)

    def light_dir_unit(self) -> np.ndarray:
        """``light_dir_camera`` normalised, shape ``(3,)``."""
        light = np.asarray(self.light_dir_camera, dtype=np.float64)
        return light / np.linalg.norm(light)


def look_at(eye: np.ndarray, target: np.ndarray | None = None, up: np.ndarray | None = None) -> np.ndarray:
    """World-to-camera matrix for a camera at ``eye`` looking at ``target`` (default origin).

    The camera looks down its -Z axis with +Y up, as in OpenGL. ``up`` defaults to +Y
    and must not be parallel to the viewing direction.
    """
    eye = np.asarray(eye, dtype=np.float64)
    target = np.zeros(3) if target is None else np.asarray(target, dtype=np.float64)
    up = np.array([0.0, 1.0, 0.0]) if up is None else np.asarray(up, dtype=np.float64)
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = right, true_up, -forward
    view[:3, 3] = -view[:3, :3] @ eye
    return view


def perspective(fov_y_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    """OpenGL perspective projection (clip z in [-w, w]) for a vertical field of view."""
    f = 1.0 / math.tan(math.radians(fov_y_deg) / 2.0)
    proj = np.zeros((4, 4))
    proj[0, 0] = f / aspect
    proj[1, 1] = f
    proj[2, 2] = (far + near) / (near - far)
    proj[2, 3] = 2.0 * far * near / (near - far)
    proj[3, 2] = -1.0
    return proj


def _rig_constants(spec: Any) -> dict[str, Any]:
    spec = spec.camera
    return {
        "fov_deg": float(spec.fov_deg), "distance": float(spec.distance),
        "background_rgb": tuple(int(c) for c in spec.background_rgb),
        "fallback_rgb": tuple(int(c) for c in spec.fallback_rgb),
        "light_dir_camera": tuple(float(c) for c in spec.light_dir_camera),
        "ambient": float(spec.ambient), "diffuse": float(spec.diffuse),
    }


def canonical_rig(spec: Any) -> CameraRig:
    """The public rig of a ``RigSpec`` (or a ``ScoringProtocol``): evenly spaced azimuths
    from 0 at ``canonical_elevation_deg``. Used when no step seed is given."""
    spec = getattr(spec, "rig", spec)
    return CameraRig(elevation_deg=float(spec.camera.canonical_elevation_deg), azimuth_start_deg=0.0,
                     **_rig_constants(spec))


def draw_secret_rig(spec: Any, rng_or_seed: "int | np.random.Generator") -> CameraRig:
    """The step's secret rig, drawn from a ``RigSpec``'s (or a ``ScoringProtocol``'s) ranges.

    Views ``0 .. n_ring-1``: a ring of ``n_ring = n_views - n_secret_views`` azimuths spaced
    ``360 / n_ring`` apart and turned by one offset drawn from ``azimuth_offset_range_deg``;
    each ring view has its own elevation drawn from ``elevation_range_deg``. Then
    ``n_secret_views`` views a miner cannot predict: each picks one of the camera's
    ``secret_elevation_bands_deg`` (below / above) uniformly, an elevation in it and an
    azimuth in [0, 360). Angles are rounded to 1e-6 degree so the rig's JSON is exact.

    ``rng_or_seed``: an int step seed (``step_rng(seed, "rig")``) or a numpy Generator.
    Deterministic: the same seed gives the same rig everywhere.
    """
    spec = getattr(spec, "rig", spec)
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else step_rng(int(rng_or_seed), "rig")
    camera = spec.camera
    n_ring = spec.n_views - spec.n_secret_views
    offset = float(rng.uniform(*camera.azimuth_offset_range_deg))
    azimuths = [(offset + 360.0 * i / n_ring) % 360.0 for i in range(n_ring)]
    elevations = [float(rng.uniform(*camera.elevation_range_deg)) for _ in range(n_ring)]
    bands = list(camera.secret_elevation_bands_deg)
    for _ in range(spec.n_secret_views):
        low, high = bands[int(rng.integers(len(bands)))]
        elevations.append(float(rng.uniform(low, high)))
        azimuths.append(float(rng.uniform(0.0, 360.0)))
    return CameraRig(
        elevation_deg=float(camera.canonical_elevation_deg),
        view_azimuths_deg=tuple(round(a, 6) % 360.0 for a in azimuths),
        view_elevations_deg=tuple(round(e, 6) for e in elevations),
        **_rig_constants(spec),
    )
