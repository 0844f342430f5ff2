"""The pyrender backend, for users who already run pyrender (``pyrender-maintained``).

Same rig as the canonical moderngl renderer: camera poses, field of view, resolution,
background, normalised mesh, vertex colours, textures (one primitive per material part
of ``RenderMesh.draws``) and smooth normals are identical; the
lighting is pyrender's PBR shading tuned to approximate the same Lambert + ambient
(pyrender gamma-encodes its output, so shades between full light and full shadow
differ slightly). Silhouettes match the moderngl renderer; exact pixels do not.

``PYOPENGL_PLATFORM`` must be set before PyOpenGL is first imported; ``_import_pyrender``
sets it to ``egl`` (unless the user chose another platform) just before importing.
"""

import os
import threading
from typing import Iterable

import numpy as np
import trimesh
from PIL import Image

from text3d.reward.render.camera import CameraRig
from text3d.reward.render.arrays import EGL_APT_PACKAGES, RenderMesh, RendererUnavailable, check_resolution, prepare_mesh

__all__ = ["PyrenderRenderer"]

_GAMMA = 2.2  # pyrender's fragment shader ends with pow(colour, 1 / 2.2)


def _import_pyrender():
    """Import pyrender for headless EGL rendering; raises ``RendererUnavailable``."""
    platform = os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    if platform not in ("egl", "osmesa"):
        raise RendererUnavailable(
            f"PYOPENGL_PLATFORM={platform!r} cannot render headless; unset it or set it to 'egl' "
            "(or 'osmesa') before anything imports OpenGL"
        )
    try:
        import pyrender
    except ImportError as exc:
        raise RendererUnavailable(
            f"pyrender could not be imported ({exc}); install it with: pip install -e '.[pyrender]'"
        ) from exc
    return pyrender


class PyrenderRenderer:
    """Renders meshes from the views of a ``CameraRig`` with pyrender's offscreen EGL renderer.

    Holds one ``pyrender.OffscreenRenderer`` (its own GL context) per resolution.
    Thread-safe; calls are serialised.
    """

    def __init__(self) -> None:
        self._pyrender = _import_pyrender()
        self._lock = threading.Lock()
        self._renderers: dict[int, object] = {}
        self.gl_renderer: str | None = None

    @classmethod
    def create_headless(cls) -> "PyrenderRenderer":
        return cls()

    def render(
        self, mesh: trimesh.Trimesh, n_views: int = 8, resolution: int = 512, rig: CameraRig | None = None
    ) -> list[Image.Image]:
        """``n_views`` RGB images of ``resolution`` x ``resolution`` pixels, one per rig azimuth."""
        return self.render_batch([mesh], n_views, resolution, rig)[0]

    def render_batch(
        self,
        meshes: Iterable[trimesh.Trimesh],
        n_views: int = 8,
        resolution: int = 512,
        rig: CameraRig | None = None,
    ) -> list[list[Image.Image]]:
        rig = rig or CameraRig()
        check_resolution(resolution)
        poses = rig.camera_poses(n_views)
        with self._lock:
            offscreen = self._offscreen_for(resolution)
            return [self._render_one(offscreen, prepare_mesh(m, rig.fallback_rgb), poses, rig) for m in meshes]

    def release(self) -> None:
        with self._lock:
            for offscreen in self._renderers.values():
                offscreen.delete()
            self._renderers.clear()

    def _offscreen_for(self, resolution: int):
        if resolution not in self._renderers:
            try:
                offscreen = self._pyrender.OffscreenRenderer(resolution, resolution)
            except Exception as exc:
                raise RendererUnavailable(
                    f"pyrender could not create an offscreen OpenGL context ({exc}); install the system "
                    f"libraries with: sudo apt-get install {EGL_APT_PACKAGES} libopengl0"
                ) from exc
            self._renderers[resolution] = offscreen
            if self.gl_renderer is None:
                self.gl_renderer = _query_gl_renderer(offscreen)
        return self._renderers[resolution]

    def _render_one(self, offscreen, mesh: RenderMesh, poses: np.ndarray, rig: CameraRig) -> list[Image.Image]:
        pyrender = self._pyrender
        # Pre-linearise colours and light so pyrender's gamma encoding gives back the
        # same colour under full light and under ambient light alone.
        ambient_linear = rig.ambient**_GAMMA
        full_linear = min(rig.ambient + rig.diffuse, 1.0) ** _GAMMA
        # pyrender linearises base-colour textures itself (sRGB -> linear, power 2.2) and
        # multiplies factor * texture * COLOR_0: linearised colour and factor match it.
        colors = (mesh.colors.astype(np.float32) / 255.0) ** _GAMMA
        colors[:, 3] = 1.0
        primitives = []
        for draw in mesh.draws:
            faces = mesh.faces[draw.first_face : draw.first_face + draw.n_faces]
            texture = None
            if draw.texture is not None:
                texture = pyrender.Texture(source=mesh.textures[draw.texture], source_channels="RGBA")
            material = pyrender.MetallicRoughnessMaterial(
                baseColorFactor=[c**_GAMMA for c in draw.factor[:3]] + [1.0], baseColorTexture=texture,
                metallicFactor=0.0, roughnessFactor=1.0, alphaMode="OPAQUE",
            )
            primitives.append(pyrender.Primitive(
                positions=mesh.positions,
                normals=mesh.normals,
                color_0=colors,
                texcoord_0=mesh.uvs if texture is not None else None,
                indices=faces,
                material=material,
                mode=pyrender.GLTF.TRIANGLES,
            ))
        background = [c / 255.0 for c in rig.background_rgb] + [1.0]
        scene = pyrender.Scene(bg_color=background, ambient_light=[ambient_linear] * 3)
        scene.add(pyrender.Mesh(primitives=primitives))
        camera = pyrender.PerspectiveCamera(
            yfov=float(np.radians(rig.fov_deg)), znear=rig.near, zfar=rig.far, aspectRatio=1.0
        )
        # pyrender's Lambert term is albedo * (1 - 0.04) / pi * intensity * n.l.
        intensity = (full_linear - ambient_linear) * np.pi / 0.96
        light = pyrender.DirectionalLight(color=[1.0, 1.0, 1.0], intensity=float(intensity))
        light_in_camera = _pose_facing(rig.light_dir_unit())
        camera_node = scene.add(camera, pose=poses[0])
        light_node = scene.add(light, pose=poses[0] @ light_in_camera)
        flags = pyrender.RenderFlags.SKIP_CULL_FACES
        images = []
        for pose in poses:
            scene.set_pose(camera_node, pose)
            scene.set_pose(light_node, pose @ light_in_camera)
            color, _depth = offscreen.render(scene, flags=flags)
            images.append(Image.fromarray(np.ascontiguousarray(color[..., :3])))
        return images


def _pose_facing(direction_to_light: np.ndarray) -> np.ndarray:
    """A rotation whose +Z axis is ``direction_to_light`` (pyrender lights shine along -Z)."""
    z = direction_to_light / np.linalg.norm(direction_to_light)
    helper = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = x, np.cross(z, x), z
    return pose


def _query_gl_renderer(offscreen) -> str | None:
    try:
        from OpenGL.GL import GL_RENDERER, glGetString

        offscreen._platform.make_current()
        try:
            name = glGetString(GL_RENDERER)
        finally:
            offscreen._platform.make_uncurrent()
        return name.decode() if isinstance(name, bytes) else name
    except Exception:  # informational only
        return None
