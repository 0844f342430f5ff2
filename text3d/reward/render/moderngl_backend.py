"""The canonical renderer: moderngl on a headless EGL context.

Mesa llvmpipe renders on the CPU; on GPU machines the NVIDIA driver's EGL does. One
``ModernGLRenderer`` holds one GL context, one shader program, a 1x1 white texture and
one pair of framebuffers per resolution (a 4x multisampled one drawn into, a plain one
resolved into and read back), all reused across calls. A mesh is uploaded once (its
textures too, mipmapped) and drawn once per view, one draw call per material part;
all views are read back into one preallocated array.

One shader for every mesh: ``vertex colour * u_factor * texture(uv)``, lit (see
``text3d.reward.render.arrays``). Vertex-coloured meshes sample the white texture, so their
pixels are exactly what a colour-only shader draws.

The context is made current only for the duration of a call (``with ctx:``), under a
lock, so a renderer may be created on one thread and used from another (the
validator's executor), and several renderers may live in one process.
"""

import importlib
import importlib.util
import logging
import threading
from typing import Iterable

import numpy as np
import trimesh
from PIL import Image

from text3d.reward.render.camera import CameraRig
from text3d.reward.render.arrays import EGL_APT_PACKAGES, RenderMesh, RendererUnavailable, check_resolution, prepare_mesh

__all__ = ["ModernGLRenderer"]

log = logging.getLogger(__name__)

# Libraries that bundle their own LLVM. Mesa's llvmpipe loads the system LLVM into the
# process when the EGL context is created; importing one of these *afterwards* makes the
# two LLVMs' global constructors collide and the process segfaults (seen with triton,
# which torch/open_clip import lazily). Loaded first, they coexist.
_LLVM_BUNDLING_MODULES = ("triton",)


def _preload_llvm_users() -> None:
    for name in _LLVM_BUNDLING_MODULES:
        if importlib.util.find_spec(name) is not None:
            try:
                importlib.import_module(name)
            except Exception as exc:  # a broken optional install must not stop rendering
                log.debug("could not preload %s: %s", name, exc)

_VERTEX_SHADER = """
#version 330
uniform mat4 u_view;
uniform mat4 u_proj;
in vec3 in_position;
in vec3 in_normal;
in vec4 in_color;
in vec2 in_uv;
out vec3 v_normal_cam;
out vec3 v_color;
out vec2 v_uv;
void main() {
    vec4 p = u_view * vec4(in_position, 1.0);
    v_normal_cam = mat3(u_view) * in_normal;  // the view matrix is a rotation + translation
    v_color = in_color.rgb;
    v_uv = in_uv;
    gl_Position = u_proj * p;
}
"""

# Lambert + ambient, two-sided: a triangle seen from its back gets its normal flipped, so
# open meshes and triangles with flipped winding (their normals flip with the winding)
# still shade as lit surfaces. Face culling stays off for the same reason.
_FRAGMENT_SHADER = """
#version 330
uniform vec3 u_light_dir_cam;
uniform float u_ambient;
uniform float u_diffuse;
uniform vec3 u_factor;
uniform sampler2D u_texture;
in vec3 v_normal_cam;
in vec3 v_color;
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec3 n = normalize(v_normal_cam);
    if (!gl_FrontFacing) n = -n;
    float shade = u_ambient + u_diffuse * max(dot(n, u_light_dir_cam), 0.0);
    vec3 base = v_color * u_factor * texture(u_texture, v_uv).rgb;
    f_color = vec4(clamp(base * shade, 0.0, 1.0), 1.0);
}
"""


class ModernGLRenderer:
    """Renders meshes from the views of a ``CameraRig`` into RGB ``PIL`` images.

    Build one with ``ModernGLRenderer.create_headless()``; ``gl_renderer`` says which
    OpenGL implementation draws (``llvmpipe`` on CPU, the GPU's name with the NVIDIA
    driver). Thread-safe; calls are serialised.
    """

    def __init__(self, ctx, *, msaa_samples: int = 4) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        with ctx:
            self.msaa_samples = min(msaa_samples, ctx.max_samples) if msaa_samples > 1 else 0
            self.gl_renderer: str = ctx.info["GL_RENDERER"]
            self._program = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
            self._program["u_texture"].value = 0
            self._white = ctx.texture((1, 1), 4, data=b"\xff\xff\xff\xff")
        self._framebuffers: dict[int, tuple] = {}  # resolution -> (msaa fbo, resolve fbo)

    @classmethod
    def create_headless(cls, *, msaa_samples: int = 4, device_index: int | None = None) -> "ModernGLRenderer":
        """Create an EGL context (no display needed) and a renderer on it.

        ``device_index`` picks the EGL device (GPU) where there are several. Raises
        ``RendererUnavailable`` naming the apt packages to install when EGL is missing.
        """
        try:
            import moderngl
        except ImportError as exc:
            raise RendererUnavailable(
                "moderngl is not installed; install the validator extras: pip install 'text3d[validator]' (in a checkout: "
                "pip install -e '.[validator]')"
            ) from exc
        _preload_llvm_users()
        kwargs = {} if device_index is None else {"device_index": device_index}
        try:
            ctx = moderngl.create_context(standalone=True, backend="egl", require=330, **kwargs)
        except Exception as exc:
            raise RendererUnavailable(
                f"could not create a headless OpenGL (EGL) context ({exc}); install the system "
                f"libraries with: sudo apt-get install {EGL_APT_PACKAGES} (in a container on an "
                "NVIDIA GPU, also enable the 'graphics' driver capability)"
            ) from exc
        renderer = cls(ctx, msaa_samples=msaa_samples)
        log.info("moderngl renderer on EGL: GL_RENDERER=%s", renderer.gl_renderer)
        return renderer

    def render(
        self, mesh: trimesh.Trimesh, n_views: int = 8, resolution: int = 512, rig: CameraRig | None = None
    ) -> list[Image.Image]:
        """``n_views`` RGB images of ``resolution`` x ``resolution`` pixels, one per rig azimuth.

        Raises ``InvalidAssetError`` for a mesh that cannot be drawn.
        """
        return self.render_batch([mesh], n_views, resolution, rig)[0]

    def render_batch(
        self,
        meshes: Iterable[trimesh.Trimesh],
        n_views: int = 8,
        resolution: int = 512,
        rig: CameraRig | None = None,
    ) -> list[list[Image.Image]]:
        """``render`` for many meshes, holding the context once. Fails on the first invalid mesh."""
        rig = rig or CameraRig()
        check_resolution(resolution)
        views = rig.view_matrices(n_views)
        with self._lock, self._ctx:
            msaa_fbo, resolve_fbo = self._framebuffers_for(resolution)
            self._set_rig_uniforms(rig)
            results = []
            for mesh in meshes:
                pixels = self._draw(prepare_mesh(mesh, rig.fallback_rgb), views, resolution, rig, msaa_fbo, resolve_fbo)
                results.append([Image.fromarray(pixels[i]) for i in range(n_views)])
            return results

    def release(self) -> None:
        """Free the GL objects and the context; the renderer cannot be used afterwards."""
        with self._lock:
            with self._ctx:
                for fbos in self._framebuffers.values():
                    for fbo in fbos:
                        for attachment in [*fbo.color_attachments, fbo.depth_attachment]:
                            if attachment is not None:
                                attachment.release()
                        fbo.release()
                self._framebuffers.clear()
                self._white.release()
                self._program.release()
            self._ctx.release()

    # -- internals (called with the lock held and the context current) --

    def _framebuffers_for(self, resolution: int) -> tuple:
        if resolution not in self._framebuffers:
            ctx, size = self._ctx, (resolution, resolution)
            msaa_fbo = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer(size, components=4, samples=self.msaa_samples)],
                depth_attachment=ctx.depth_renderbuffer(size, samples=self.msaa_samples),
            )
            resolve_fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer(size, components=4)])
            self._framebuffers[resolution] = (msaa_fbo, resolve_fbo)
        return self._framebuffers[resolution]

    def _set_rig_uniforms(self, rig: CameraRig) -> None:
        program = self._program
        program["u_proj"].write(_gl_matrix(rig.projection_matrix()))
        program["u_light_dir_cam"].value = tuple(float(c) for c in rig.light_dir_unit())
        program["u_ambient"].value = float(rig.ambient)
        program["u_diffuse"].value = float(rig.diffuse)

    def _draw(self, mesh: RenderMesh, views: np.ndarray, resolution: int, rig: CameraRig, msaa_fbo, resolve_fbo) -> np.ndarray:
        """Upload ``mesh`` once, draw it from each view; returns (n_views, H, W, 3) uint8, top row first."""
        import moderngl

        ctx = self._ctx
        attributes = np.hstack([mesh.positions, mesh.normals, mesh.uvs])  # interleaved (V, 8) float32
        buffers = [ctx.buffer(attributes.tobytes()), ctx.buffer(mesh.colors.tobytes()), ctx.buffer(mesh.faces.tobytes())]
        vao = ctx.vertex_array(
            self._program,
            [(buffers[0], "3f 3f 2f", "in_position", "in_normal", "in_uv"), (buffers[1], "4f1", "in_color")],
            index_buffer=buffers[2],
            index_element_size=4,
        )
        textures = []
        background = tuple(c / 255.0 for c in rig.background_rgb)
        pixels = np.empty((len(views), resolution, resolution, 3), dtype=np.uint8)
        frame_bytes = resolution * resolution * 3
        try:
            for image in mesh.textures:  # GL rows run bottom-up: upload the image flipped
                texture = ctx.texture((image.shape[1], image.shape[0]), 4, data=np.ascontiguousarray(image[::-1]).tobytes())
                texture.build_mipmaps()
                texture.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
                textures.append(texture)
            ctx.enable(moderngl.DEPTH_TEST)
            ctx.disable(moderngl.CULL_FACE)
            for i, view in enumerate(views):
                msaa_fbo.use()
                msaa_fbo.clear(*background, 1.0, depth=1.0)
                self._program["u_view"].write(_gl_matrix(view))
                for draw in mesh.draws:
                    (self._white if draw.texture is None else textures[draw.texture]).use(location=0)
                    self._program["u_factor"].value = draw.factor[:3]
                    vao.render(moderngl.TRIANGLES, vertices=3 * draw.n_faces, first=3 * draw.first_face)
                ctx.copy_framebuffer(resolve_fbo, msaa_fbo)
                resolve_fbo.read_into(pixels, components=3, alignment=1, write_offset=i * frame_bytes)
        finally:
            vao.release()
            for resource in [*buffers, *textures]:
                resource.release()
        return pixels[:, ::-1]  # GL rows run bottom-up


def _gl_matrix(matrix: np.ndarray) -> bytes:
    """Row-major numpy matrix -> the column-major float32 bytes GL expects."""
    return np.ascontiguousarray(matrix.T, dtype=np.float32).tobytes()

