"""Validators must agree on what they score: the renderer draws every mesh from one
canonical rig (+Y up, azimuth 0 from +Z, then towards +X), deterministically, on a
white background, and refuses meshes that cannot be drawn as the miner's fault.

Rendered at 64 px: the rules do not depend on resolution and the suite stays fast.
"""

import subprocess
import sys
import threading

import numpy as np
import pytest
import trimesh

from text3d.cli.main import main as cli_main
from text3d.protocol.mesh_codec import MeshFormat, encode_mesh
from text3d.reward.render.camera import CameraRig
from text3d.reward.errors import InvalidAssetError, ValidatorFault
from text3d.reward.render.views import (
    ModernGLRenderer,
    RendererUnavailable,
    get_renderer,
    render_views,
    render_views_batch,
)
from text3d.reward.render.arrays import prepare_mesh
from tests.meshes import coloured_sphere, red_cube, uncoloured_cube

PX = 64
RED, GREEN, BLUE = (255, 0, 0, 255), (0, 200, 0, 255), (0, 0, 255, 255)
WHITE = np.array([255, 255, 255])


# -- test meshes ---------------------------------------------------------------------


def faceted_box(extents=(1.0, 1.0, 1.0), center=(0.0, 0.0, 0.0), face_rgba: dict | None = None, default=RED):
    """A box whose six sides have their own vertices, so each side has a flat colour.

    ``face_rgba`` maps a side's outward axis ('+x', '-y', ...) to an RGBA colour.
    """
    box = trimesh.creation.box(extents=extents)
    box.apply_translation(center)
    vertices = box.vertices[box.faces].reshape(-1, 3)
    faces = np.arange(len(vertices)).reshape(-1, 3)
    colors = np.tile(np.array(default, dtype=np.uint8), (len(vertices), 1))
    for axis_name, rgba in (face_rgba or {}).items():
        axis = "xyz".index(axis_name[1])
        sign = 1.0 if axis_name[0] == "+" else -1.0
        on_side = np.repeat(box.face_normals[:, axis] * sign > 0.99, 3)
        colors[on_side] = rgba
    return trimesh.Trimesh(vertices, faces, vertex_colors=colors, process=False)


def foreground(image) -> np.ndarray:
    """Pixels that are not the white background, as a boolean (H, W) mask."""
    return np.abs(np.asarray(image).astype(int) - WHITE).sum(axis=2) > 12


def is_reddish(rgb) -> bool:
    r, g, b = (int(c) for c in rgb)
    return r > 80 and r > 3 * g and r > 3 * b


@pytest.fixture(scope="module")
def renderer() -> ModernGLRenderer:
    return get_renderer("moderngl")


# -- the rig -------------------------------------------------------------------------


def test_rig_azimuths_are_evenly_spaced_and_the_camera_looks_at_the_origin():
    rig = CameraRig()
    assert rig.azimuths_deg(4) == [0.0, 90.0, 180.0, 270.0]
    eyes = rig.eye_positions(8)
    assert np.allclose(np.linalg.norm(eyes, axis=1), rig.distance)
    assert np.allclose(eyes[:, 1], rig.distance * np.sin(np.radians(rig.elevation_deg)))
    for view in rig.view_matrices(8):
        origin_cam = view @ np.array([0.0, 0.0, 0.0, 1.0])
        assert np.allclose(origin_cam[:3], [0.0, 0.0, -rig.distance])  # straight ahead
    with pytest.raises(ValueError):
        CameraRig(distance=0.5)
    with pytest.raises(ValueError):
        rig.azimuths_deg(0)


# -- what the images show --------------------------------------------------------------


def test_images_have_the_requested_count_size_and_mode(renderer):
    images = render_views(red_cube(), n_views=3, resolution=48)
    assert len(images) == 3
    assert all(im.mode == "RGB" and im.size == (48, 48) for im in images)
    assert renderer.gl_renderer  # e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or the GPU's name


def test_red_cube_is_red_in_the_centre_and_background_in_the_corners(renderer):
    for image in render_views(red_cube(), n_views=8, resolution=PX):
        pixels = np.asarray(image)
        assert is_reddish(pixels[PX // 2, PX // 2])
        for corner in (pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]):
            assert (corner == WHITE).all()


def test_azimuth_zero_looks_from_plus_z_and_azimuths_turn_towards_plus_x(renderer):
    cube = faceted_box(face_rgba={"+z": BLUE, "+x": GREEN})
    images = render_views(cube, n_views=4, resolution=PX)
    centres = [np.asarray(im)[PX // 2, PX // 2].astype(int) for im in images]
    assert centres[0][2] > 3 * centres[0][0]  # +z side: blue
    assert centres[1][1] > 3 * centres[1][0]  # +x side: green
    assert is_reddish(centres[2]) and is_reddish(centres[3])
    arrays = [np.asarray(im) for im in images]
    assert not np.array_equal(arrays[0], arrays[1])


def test_plus_y_is_up_in_every_view(renderer):
    tower = trimesh.util.concatenate(
        [faceted_box((1, 1, 1), (0, 0.5, 0), default=GREEN), faceted_box((1, 1, 1), (0, -0.5, 0), default=RED)]
    )
    for image in render_views(tower, n_views=4, resolution=PX):
        pixels = np.asarray(image).astype(int)
        rows = np.nonzero(foreground(image).any(axis=1))[0]
        top, bottom = pixels[rows[0] + 4, PX // 2], pixels[rows[-1] - 4, PX // 2]
        assert top[1] > 2 * top[0], f"top of the image should be the green box, got {top}"
        assert is_reddish(bottom), f"bottom of the image should be the red box, got {bottom}"


def test_the_whole_unit_sphere_stays_in_frame(renderer):
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=7.0)  # any size: normalised
    for image in render_views(sphere, n_views=4, resolution=PX):
        mask = foreground(image)
        assert mask[PX // 2, PX // 2]
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def test_mesh_without_colours_renders_neutral_grey(renderer):
    plain = uncoloured_cube()
    assert plain.visual.kind is None
    centre = np.asarray(render_views(plain, n_views=1, resolution=PX)[0])[PX // 2, PX // 2].astype(int)
    assert centre.max() - centre.min() <= 2 and 60 < centre[0] < 250


def test_position_and_scale_do_not_change_the_pixels(renderer):
    cube = faceted_box(face_rgba={"+z": BLUE})
    moved = cube.copy()
    moved.apply_scale(250.0)
    moved.apply_translation((1000.0, -40.0, 7.0))
    for a, b in zip(render_views(cube, 4, PX), render_views(moved, 4, PX)):
        diff = np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int))
        assert (diff > 8).mean() < 0.002


def test_rendering_does_not_modify_the_callers_mesh(renderer):
    cube = faceted_box(extents=(2, 3, 4), center=(5, 5, 5))
    before = cube.vertices.copy()
    render_views(cube, 2, PX)
    assert np.array_equal(cube.vertices, before)


# -- determinism and reuse ---------------------------------------------------------------


def test_same_mesh_gives_the_same_pixels_every_time_and_on_every_renderer(renderer):
    sphere = coloured_sphere(target_faces=5_000, seed=1)
    first = [np.asarray(im) for im in render_views(sphere, 4, PX)]
    second = [np.asarray(im) for im in render_views(sphere, 4, PX)]
    other = ModernGLRenderer.create_headless()
    try:
        third = [np.asarray(im) for im in other.render(sphere, 4, PX)]
    finally:
        other.release()
    for a, b, c in zip(first, second, third):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_batch_matches_single_renders_and_other_threads_can_render(renderer):
    meshes = [red_cube(), faceted_box(face_rgba={"+x": BLUE}), trimesh.creation.icosphere(subdivisions=2)]
    batch = render_views_batch(meshes, n_views=2, resolution=PX)
    singles = [render_views(m, 2, PX) for m in meshes]
    from_thread: list = []
    worker = threading.Thread(target=lambda: from_thread.append(render_views(meshes[1], 2, PX)))
    worker.start()
    worker.join()
    for views_a, views_b in zip(batch, singles):
        assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(views_a, views_b))
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(from_thread[0], singles[1]))


def test_a_second_resolution_gets_its_own_framebuffers(renderer):
    small = render_views(red_cube(), 1, 32)[0]
    large = render_views(red_cube(), 1, 96)[0]
    assert small.size == (32, 32) and large.size == (96, 96)
    assert is_reddish(np.asarray(large)[48, 48])


# -- invalid input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "mesh",
    [
        trimesh.Trimesh(),
        trimesh.Trimesh(vertices=np.zeros((3, 3)), faces=np.zeros((0, 3), dtype=int), process=False),
        trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]], faces=[[0, 1, 2]], process=False),
        trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [np.inf, 1, 0]], faces=[[0, 1, 2]], process=False),
        trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [0, 1, 0]], faces=[[0, 1, 7]], process=False, validate=False),
        trimesh.Trimesh(vertices=[[1, 1, 1]] * 3, faces=[[0, 1, 2]], process=False),
    ],
    ids=["empty", "no-faces", "nan", "inf", "index-out-of-range", "zero-extent"],
)
def test_meshes_that_cannot_be_drawn_are_the_miners_fault(renderer, mesh):
    with pytest.raises(InvalidAssetError):
        render_views(mesh, 2, PX)


def test_missing_egl_library_names_the_apt_packages(monkeypatch):
    monkeypatch.setenv("GLCONTEXT_LINUX_LIBEGL", "/nonexistent/libEGL.so.1")
    with pytest.raises(RendererUnavailable) as info:
        ModernGLRenderer.create_headless()
    assert isinstance(info.value, ValidatorFault)
    assert "libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri" in str(info.value)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="moderngl"):
        render_views(red_cube(), backend="blender")


def test_prepared_mesh_lies_in_the_unit_sphere_with_unit_normals():
    mesh = prepare_mesh(faceted_box(extents=(4, 1, 2), center=(3, -2, 9)))
    radii = np.linalg.norm(mesh.positions, axis=1)
    assert radii.max() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-5)
    assert mesh.colors.dtype == np.uint8 and mesh.colors.shape == (len(mesh.positions), 4)


# -- the pyrender backend ----------------------------------------------------------------


def test_pyrender_backend_draws_the_same_silhouettes_and_colours(renderer):
    cube = faceted_box(face_rgba={"+z": BLUE, "+y": GREEN})
    sphere = coloured_sphere(target_faces=2_000)
    tower = trimesh.util.concatenate([cube, faceted_box((0.4, 2.0, 0.4), (0.9, 0.5, 0.0))])
    for mesh in (cube, sphere, tower):
        canonical = render_views(mesh, 4, PX)
        alternative = render_views(mesh, 4, PX, backend="pyrender")
        assert all(im.mode == "RGB" and im.size == (PX, PX) for im in alternative)
        for a, b in zip(canonical, alternative):
            mask_a, mask_b = foreground(a), foreground(b)
            iou = (mask_a & mask_b).sum() / (mask_a | mask_b).sum()
            assert iou > 0.9
            both = mask_a & mask_b
            colour_diff = np.abs(np.asarray(a)[both].astype(int) - np.asarray(b)[both].astype(int))
            assert colour_diff.mean() < 30


# -- the CLI -----------------------------------------------------------------------------


def test_cli_writes_one_png_per_view(tmp_path, capsys):
    mesh_path = tmp_path / "cube.glb"
    mesh_path.write_bytes(encode_mesh(faceted_box(face_rgba={"+z": BLUE}), MeshFormat.GLB))
    out = tmp_path / "views"
    assert cli_main(["render", str(mesh_path), "-o", str(out), "--views", "3", "--resolution", "40"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["view_00.png", "view_01.png", "view_02.png"]
    from PIL import Image

    with Image.open(out / "view_00.png") as image:
        assert image.size == (40, 40) and image.mode == "RGB"
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("content", [None, b"not a mesh at all", b"ply\nformat binary_little_endian 1.0\nend_header\n"])
def test_cli_explains_bad_input_in_one_sentence(tmp_path, capsys, content):
    mesh_path = tmp_path / "broken.ply"
    if content is not None:
        mesh_path.write_bytes(content)
    assert cli_main(["render", str(mesh_path), "-o", str(tmp_path / "views")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("text3d render:") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "views").exists()


def test_importing_the_renderer_loads_neither_bittensor_nor_gl():
    """reward/ never imports bittensor; GL libraries load on first render, not on import."""
    code = "import sys, text3d.reward.render.views; print(sorted({'bittensor', 'moderngl', 'pyrender', 'OpenGL'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_renderer_survives_later_import_of_llvm_bundling_libraries():
    """torch/open_clip import triton lazily; after llvmpipe's EGL context exists, a late
    triton import used to segfault the process (two LLVMs). The renderer preloads it."""
    import subprocess
    import sys

    code = (
        "from text3d.reward.render.moderngl_backend import ModernGLRenderer\n"
        "r = ModernGLRenderer.create_headless()\n"
        "import triton, open_clip\n"
        "print('alive')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "alive" in done.stdout, done.stderr[-2000:]
