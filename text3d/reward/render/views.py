"""Multi-view rendering for scoring: a mesh in, ``n_views`` RGB images out.

    render_views(mesh, n_views=8, resolution=512)          -> list[PIL.Image.Image]
    render_views_batch(meshes, n_views=8, resolution=512)  -> list[list[PIL.Image.Image]]

Every validator must score the same pixels, so rendering is deterministic and uses the
canonical ``CameraRig`` (evenly spaced azimuths at 20 deg elevation, 40 deg field of
view, white background, a light that follows the camera). Each mesh is normalised into
the unit sphere first; meshes are +Y up.

Backends: ``"moderngl"`` (canonical; headless EGL on Mesa llvmpipe or the NVIDIA
driver) and ``"pyrender"`` (same rig, similar shading, 3x+ slower). The module-level
functions share one lazily created renderer per backend, guarded by a lock; create
your own with ``ModernGLRenderer.create_headless()`` to use a separate GL context.

Errors: ``text3d.reward.errors.InvalidAssetError`` for a mesh that cannot be drawn (miner
fault); ``RendererUnavailable`` (a ``ValidatorFault``) when no GL context can be had,
naming the apt packages to install.
"""

import threading
from typing import Iterable, Protocol

import trimesh
from PIL import Image

from text3d.reward.render.camera import CameraRig
from text3d.reward.render.arrays import RendererUnavailable
from text3d.reward.render.moderngl_backend import ModernGLRenderer

__all__ = [
    "CameraRig",
    "ModernGLRenderer",
    "RendererUnavailable",
    "ViewRenderer",
    "BACKENDS",
    "get_renderer",
    "discard_renderer",
    "render_views",
    "render_views_batch",
]

BACKENDS = ("moderngl", "pyrender")


class ViewRenderer(Protocol):
    """What a render backend offers; ``gl_renderer`` names the OpenGL implementation."""

    gl_renderer: str | None

    def render(
        self, mesh: trimesh.Trimesh, n_views: int = 8, resolution: int = 512, rig: CameraRig | None = None
    ) -> list[Image.Image]: ...

    def render_batch(
        self, meshes: Iterable[trimesh.Trimesh], n_views: int = 8, resolution: int = 512, rig: CameraRig | None = None
    ) -> list[list[Image.Image]]: ...

    def release(self) -> None: ...


_default_renderers: dict[str, ViewRenderer] = {}
_default_lock = threading.Lock()


def get_renderer(backend: str = "moderngl") -> ViewRenderer:
    """The process-wide renderer for ``backend``, created on first use (GL context and all)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    with _default_lock:
        if backend not in _default_renderers:
            if backend == "moderngl":
                _default_renderers[backend] = ModernGLRenderer.create_headless()
            else:
                from text3d.reward.render.pyrender_backend import PyrenderRenderer

                _default_renderers[backend] = PyrenderRenderer.create_headless()
        return _default_renderers[backend]


def discard_renderer(renderer: ViewRenderer) -> None:
    """Forget ``renderer`` if it is a process-wide one: the next ``get_renderer`` makes a fresh
    one (its GL context too). For a renderer stuck in a call (``text3d.reward.render.watchdog``):
    it is not released, since its stuck thread still holds it."""
    with _default_lock:
        for backend, known in list(_default_renderers.items()):
            if known is renderer:
                del _default_renderers[backend]


def render_views(
    mesh: trimesh.Trimesh,
    n_views: int = 8,
    resolution: int = 512,
    *,
    backend: str = "moderngl",
    rig: CameraRig | None = None,
) -> list[Image.Image]:
    """Render ``mesh`` from ``n_views`` rig azimuths as RGB images of ``resolution`` px square.

    Deterministic for a given backend, GL implementation and mesh. Raises
    ``InvalidAssetError`` (no faces, non-finite vertices, bad indices, zero extent) and
    ``RendererUnavailable``.
    """
    return get_renderer(backend).render(mesh, n_views, resolution, rig)


def render_views_batch(
    meshes: Iterable[trimesh.Trimesh],
    n_views: int = 8,
    resolution: int = 512,
    *,
    backend: str = "moderngl",
    rig: CameraRig | None = None,
) -> list[list[Image.Image]]:
    """``render_views`` for many meshes in one call (one lock and context switch).

    Raises on the first invalid mesh; callers that must score the others should render
    meshes one by one and catch ``InvalidAssetError`` per mesh.
    """
    return get_renderer(backend).render_batch(meshes, n_views, resolution, rig)
