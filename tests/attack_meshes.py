"""Meshes a dishonest miner would send, built by code for the attack tests.

    text_box(text, grid)                     a box with ``text`` painted on its front (+Z) face
    painted_box(picture, rig, n_views, grid) a box painted so the rig's cameras see ``picture``
    billboard(picture, thickness, grid)      ``picture`` on a thin slab facing +Z
    overdraw_mesh(n_faces, seed)             many large overlapping triangles (the 306 s mesh)
    grid_box(grid)                           a box with every face split into grid x grid quads

All meshes are built already normalised the way the renderer normalises (centred on the
bounding-box centre, farthest vertex at distance 1), so a vertex's world position is
where the renderer draws it.
"""

import numpy as np
import trimesh
from PIL import Image, ImageDraw, ImageFont

from text3d.reward.render.camera import CameraRig

__all__ = ["grid_box", "text_box", "painted_box", "billboard", "overdraw_mesh", "text_picture", "project"]

_FACES = [  # (normal, u axis, v axis) of each box face; u x v = normal
    (np.array([0, 0, 1.0]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0])),
    (np.array([0, 0, -1.0]), np.array([-1.0, 0, 0]), np.array([0, 1.0, 0])),
    (np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), np.array([0, 1.0, 0])),
    (np.array([-1.0, 0, 0]), np.array([0, 0, 1.0]), np.array([0, 1.0, 0])),
    (np.array([0, 1.0, 0]), np.array([1.0, 0, 0]), np.array([0, 0, -1.0])),
    (np.array([0, -1.0, 0]), np.array([1.0, 0, 0]), np.array([0, 0, 1.0])),
]


def _grid_face(normal, u, v, half: float, grid: int):
    s = np.linspace(-half, half, grid + 1)
    uu, vv = np.meshgrid(s, s, indexing="xy")
    points = normal * half + uu.reshape(-1, 1) * u + vv.reshape(-1, 1) * v
    idx = np.arange((grid + 1) ** 2).reshape(grid + 1, grid + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    uv = np.stack([(uu.reshape(-1) / half + 1) / 2, (vv.reshape(-1) / half + 1) / 2], axis=1)  # [0,1]^2, v up
    return points, faces, uv


def grid_box(grid: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces, per-vertex face index, per-vertex uv) of a cube inscribed in the unit sphere."""
    half = 1.0 / np.sqrt(3.0)
    verts, faces, owner, uvs = [], [], [], []
    for k, (n, u, v) in enumerate(_FACES):
        p, f, uv = _grid_face(n, u, v, half, grid)
        faces.append(f + sum(len(x) for x in verts))
        verts.append(p)
        owner.append(np.full(len(p), k))
        uvs.append(uv)
    return np.concatenate(verts), np.concatenate(faces), np.concatenate(owner), np.concatenate(uvs)


def _mesh(vertices, faces, rgb) -> trimesh.Trimesh:
    rgba = np.concatenate([np.clip(rgb, 0, 255).astype(np.uint8), np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    return trimesh.Trimesh(vertices, faces, vertex_colors=rgba, process=False)


def text_picture(text: str, px: int = 256, fg=(20, 20, 20), bg=(235, 200, 120)) -> Image.Image:
    """``text`` in large bold letters, wrapped on up to three lines, on a plain square."""
    image = Image.new("RGB", (px, px), bg)
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype("DejaVuSans-Bold.ttf", px // 7)
    except OSError:
        font = ImageFont.load_default(size=px // 7)
    words, lines = text.upper().split(), []
    for word in words:
        if lines and draw.textlength(lines[-1] + " " + word, font=font) < px * 0.9:
            lines[-1] += " " + word
        else:
            lines.append(word)
    y = (px - len(lines) * px // 6) // 2
    for line in lines:
        draw.text(((px - draw.textlength(line, font=font)) / 2, y), line, fill=fg, font=font)
        y += px // 6
    return image


def _sample(picture: Image.Image, uv: np.ndarray) -> np.ndarray:
    """Bilinear-free nearest sample of ``picture`` at uv in [0, 1]^2 (v up)."""
    px = np.asarray(picture.convert("RGB"), dtype=np.float64)
    h, w = px.shape[:2]
    x = np.clip((uv[:, 0] * (w - 1)).round().astype(int), 0, w - 1)
    y = np.clip(((1 - uv[:, 1]) * (h - 1)).round().astype(int), 0, h - 1)
    return px[y, x]


def text_box(text: str, grid: int = 128, body_rgb=(200, 160, 90)) -> trimesh.Trimesh:
    """A cube whose front (+Z) face carries ``text`` (vertex colours on a grid x grid face)."""
    vertices, faces, owner, uv = grid_box(grid)
    rgb = np.tile(np.array(body_rgb, np.float64), (len(vertices), 1))
    front = owner == 0
    rgb[front] = _sample(text_picture(text), uv[front])
    return _mesh(vertices, faces, rgb)


def project(points: np.ndarray, rig: CameraRig, n_views: int, resolution: int):
    """Per view: pixel coordinates [V, N, 2] (x right, y down) and camera-facing directions [V, N, 3]."""
    proj = rig.projection_matrix()
    xy, eyes = [], rig.eye_positions(n_views)
    for view in rig.view_matrices(n_views):
        h = np.c_[points, np.ones(len(points))] @ view.T @ proj.T
        ndc = h[:, :2] / h[:, 3:4]
        xy.append(np.stack([(ndc[:, 0] + 1) / 2 * resolution, (1 - ndc[:, 1]) / 2 * resolution], axis=1))
    to_eye = eyes[:, None, :] - points[None, :, :]
    return np.stack(xy), to_eye / np.linalg.norm(to_eye, axis=2, keepdims=True)


def painted_box(picture: Image.Image, rig: CameraRig, n_views: int, grid: int = 96,
                resolution: int = 256) -> trimesh.Trimesh:
    """A cube painted by projecting ``picture`` from every camera of ``rig``.

    Each vertex takes the picture's colour where each camera that sees it would draw it,
    divided by the shading that camera's light will apply and averaged with weights
    (n . to_camera)^8 (the most frontal camera dominates), so each of the rig's views
    reproduces the picture; from anywhere else it is a painted box.
    """
    vertices, faces, owner, _ = grid_box(grid)
    normals = np.array([_FACES[k][0] for k in owner])
    xy, to_eye = project(vertices, rig, n_views, resolution)
    px = np.asarray(picture.convert("RGB").resize((resolution, resolution)), dtype=np.float64)
    colour, weight = np.zeros((len(vertices), 3)), np.zeros(len(vertices))
    light = rig.light_dir_unit()
    for v, view in enumerate(rig.view_matrices(n_views)):
        facing = np.clip((normals * to_eye[v]).sum(axis=1), 0.0, None) ** 8
        x = np.clip(xy[v, :, 0].astype(int), 0, resolution - 1)
        y = np.clip(xy[v, :, 1].astype(int), 0, resolution - 1)
        # undo the renderer's shading for this camera (the light follows the camera)
        shade = rig.ambient + rig.diffuse * np.clip((normals @ view[:3, :3].T) @ light, 0.0, None)
        colour += facing[:, None] * px[y, x] / shade[:, None]
        weight += facing
    rgb = np.where(weight[:, None] > 0, colour / np.maximum(weight, 1e-12)[:, None], 128.0)
    return _mesh(vertices, faces, rgb)


def billboard(picture: Image.Image, thickness: float = 0.0, grid: int = 64) -> trimesh.Trimesh:
    """``picture`` on a square facing +Z; ``thickness`` > 0 makes it a slab (back face grey)."""
    vertices, faces, uv = _grid_face(np.array([0, 0, 1.0]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), 0.7, grid)
    vertices = vertices - np.array([0, 0, 0.7])  # the plane z = 0
    rgb = _sample(picture, uv)
    if thickness > 0:
        back = vertices - np.array([0, 0, thickness])
        vertices = np.concatenate([vertices, back])
        faces = np.concatenate([faces, faces[:, ::-1] + len(back)])
        rgb = np.concatenate([rgb, np.full((len(back), 3), 128.0)])
    return _mesh(vertices, faces, rgb)


def overdraw_mesh(n_faces: int = 1_000_000, seed: int = 0) -> trimesh.Trimesh:
    """``n_faces`` large triangles with corners anywhere in [-1, 1]^3: each covers a good
    part of the image, together the image ~10^4 times (within every decoder limit)."""
    rng = np.random.default_rng(seed)
    vertices = rng.uniform(-1.0, 1.0, size=(3 * n_faces, 3)).astype(np.float64)
    faces = np.arange(3 * n_faces, dtype=np.int64).reshape(n_faces, 3)
    rgb = np.full((len(vertices), 3), 180.0)
    return _mesh(vertices, faces, rgb)


def needle_mesh(n_faces: int = 1_000_000, seed: int = 0) -> trimesh.Trimesh:
    """``n_faces`` zero-width triangles through the centre in random directions: they cover
    almost no area (overdraw ~0.01) but each runs across the whole image, and a rasteriser
    walks every edge (34 s to draw on llvmpipe, against 3.1 s for a 1M-face sphere)."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(n_faces, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    apex = direction * 0.999 + rng.normal(scale=1e-7, size=(n_faces, 3))
    vertices = np.stack([-direction, direction, apex], axis=1).reshape(-1, 3)
    faces = np.arange(3 * n_faces, dtype=np.int64).reshape(n_faces, 3)
    return _mesh(vertices, faces, np.full((len(vertices), 3), 180.0))
