"""The canonical camera rig: where every validator looks at a mesh from, and how it is lit.

Validators must agree on the pixels they score, so the rig is a frozen value with
fixed defaults -- evenly spaced azimuths at one elevation, one field of view, one
camera distance, one background, one light -- shared by every render backend.

Conventions (the project's): world space is right-handed and **+Y up**; meshes are
normalised into the unit sphere around the origin before rendering (see
``reward.render_mesh``). Azimuth 0 looks from +Z towards the origin and azimuths
increase counter-clockwise seen from above (towards +X). Matrices are row-major
numpy ``float64`` arrays acting on column vectors (``p_cam = view @ p_world``); GL
upload transposes them.
"""

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CameraRig", "look_at", "perspective"]


@dataclass(frozen=True)
class CameraRig:
    """Everything a view depends on besides the mesh, the view count and the resolution.

    ``light_dir_camera`` points from the surface towards the light, in camera space
    (x right, y up, +z towards the viewer): the light moves with the camera so every
    view is lit alike. Shading is ``colour * (ambient + diffuse * max(n.l, 0))``.
    ``fallback_rgb`` colours meshes that carry no vertex colours.
    """

    elevation_deg: float = 20.0
    azimuth_start_deg: float = 0.0
    fov_deg: float = 40.0
    distance: float = 3.0
    background_rgb: tuple[int, int, int] = (255, 255, 255)
    fallback_rgb: tuple[int, int, int] = (170, 170, 170)
    light_dir_camera: tuple[float, float, float] = (-0.35, 0.55, 1.0)
    ambient: float = 0.35
    diffuse: float = 0.65

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

    # Near/far planes hug the unit sphere so the 24-bit depth buffer is well used.
    @property
    def near(self) -> float:
        return max(self.distance - 1.5, 0.01)

    @property
    def far(self) -> float:
        return self.distance + 1.5

    def azimuths_deg(self, n_views: int) -> list[float]:
        """``n_views`` evenly spaced azimuths starting at ``azimuth_start_deg``."""
        if n_views < 1:
            raise ValueError(f"n_views must be >= 1, got {n_views}")
        return [(self.azimuth_start_deg + 360.0 * i / n_views) % 360.0 for i in range(n_views)]

    def eye_positions(self, n_views: int) -> np.ndarray:
        """Camera centres in world space, shape ``(n_views, 3)``, all at ``distance``."""
        el = math.radians(self.elevation_deg)
        az = np.radians(self.azimuths_deg(n_views))
        return self.distance * np.stack(
            [math.cos(el) * np.sin(az), np.full_like(az, math.sin(el)), math.cos(el) * np.cos(az)], axis=1
        )

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
