"""What a dishonest miner does to one generation to fill a step, and what honest miners send.

    DEFORMATIONS            name -> fn(mesh, rng) -> mesh: every cheap deformation family of issue 17
    COMBINATIONS            name -> fn(mesh, rng) -> mesh: several families at once
    copy_bases()            name -> mesh: objects a copycat starts from (chair, CAD part, blob, Shap-E-like)
    packing_variants(mesh)  dozens of mutually different-looking variants of one mesh (stretch 0.9-1.1
                            on two axes, tilt +-5 deg), as the issue's packing attack builds them
    procedural_seeds(prompt, seeds), blob_seeds(seeds), tiny_shap_e_seeds(prompt, seeds)
                            honest answers to one prompt from different seeds of each generator the
                            project ships
    distinct_objects()      name -> mesh: different objects (primitives and the copy bases)

Every mesh carries uint8 RGBA vertex colours and is built with ``process=False``;
deterministic for the same inputs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import trimesh
from scipy import ndimage

from text3d.protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh
from tests.meshes import coloured_sphere

__all__ = ["DEFORMATIONS", "COMBINATIONS", "copy_bases", "packing_variants", "procedural_seeds", "blob_seeds",
           "tiny_shap_e_seeds", "distinct_objects", "box_chair", "cad_part", "flat_sheet"]

Deform = Callable[[trimesh.Trimesh, np.random.Generator], trimesh.Trimesh]


def _colours(mesh: trimesh.Trimesh) -> np.ndarray:
    """[V, 4] uint8 vertex colours; a textured mesh's texture (or material colour) is baked per vertex
    first, as the fingerprint bakes it (real files, ``bench/copycat.py --corpus-copies``)."""
    visual = mesh.visual.to_color() if mesh.visual.kind == "texture" else mesh.visual
    return np.asarray(visual.vertex_colors, np.uint8).copy()


def _remake(mesh, vertices=None, faces=None, colours=None) -> trimesh.Trimesh:
    return trimesh.Trimesh(np.asarray(mesh.vertices if vertices is None else vertices, np.float64),
                           np.asarray(mesh.faces if faces is None else faces, np.int64),
                           vertex_colors=_colours(mesh) if colours is None else colours, process=False)


def _size(mesh) -> float:
    return float(np.ptp(np.asarray(mesh.vertices), axis=0).max())


def _rotation(axis, degrees: float) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(np.radians(degrees), axis)[:3, :3]


def stretch(mesh, factors) -> trimesh.Trimesh:
    return _remake(mesh, np.asarray(mesh.vertices) * np.asarray(factors, float))


def turn(mesh, degrees: float, axis=(0, 1, 0)) -> trimesh.Trimesh:
    return _remake(mesh, np.asarray(mesh.vertices) @ _rotation(axis, degrees).T)


def warp(mesh, share: float, rng: np.random.Generator) -> trimesh.Trimesh:
    """A smooth displacement of ``share`` of the size: each axis moved by a low-frequency sine of the others."""
    v = np.asarray(mesh.vertices, np.float64)
    size = _size(mesh)
    centre = v.mean(axis=0)
    out = v.copy()
    for k in range(3):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        out[:, k] += share * size * np.sin(2 * np.pi * ((v - centre) @ direction) / size + rng.uniform(0, 2 * np.pi))
    return _remake(mesh, out)


def jitter(mesh, share: float, rng: np.random.Generator) -> trimesh.Trimesh:
    return _remake(mesh, np.asarray(mesh.vertices) + rng.normal(scale=share * _size(mesh), size=mesh.vertices.shape))


def subdivide(mesh, times: int = 1) -> trimesh.Trimesh:
    v, f, c = np.asarray(mesh.vertices), np.asarray(mesh.faces), _colours(mesh).astype(np.float64)
    for _ in range(times):
        v, f, attrs = trimesh.remesh.subdivide(v, f, vertex_attributes={"c": c})
        c = attrs["c"]
    return trimesh.Trimesh(v, f, vertex_colors=np.round(c).astype(np.uint8), process=False)


def cluster_decimate(mesh, cells: int) -> trimesh.Trimesh:
    """Vertex-clustering decimation: vertices merged per grid cell (``cells`` along the longest side)."""
    v, f, c = np.asarray(mesh.vertices), np.asarray(mesh.faces), _colours(mesh).astype(np.float64)
    low, size = v.min(axis=0), _size(mesh)
    key = np.floor((v - low) / size * cells).astype(np.int64)
    _, cluster, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    cluster = cluster.reshape(-1)
    n = len(counts)
    nv = np.stack([np.bincount(cluster, weights=v[:, k], minlength=n) for k in range(3)], axis=1) / counts[:, None]
    nc = np.stack([np.bincount(cluster, weights=c[:, k], minlength=n) for k in range(4)], axis=1) / counts[:, None]
    nf = cluster[f]
    keep = (nf[:, 0] != nf[:, 1]) & (nf[:, 1] != nf[:, 2]) & (nf[:, 0] != nf[:, 2])
    nf = np.unique(np.sort(nf[keep], axis=1), axis=0, return_index=True)[1]
    faces = cluster[f][keep][np.sort(nf)]
    return trimesh.Trimesh(nv, faces, vertex_colors=np.round(nc).astype(np.uint8), process=False)


def remesh(mesh) -> trimesh.Trimesh:
    """A new tessellation of the same surface: subdivided until fine, then clustered on a grid."""
    fine = mesh
    while len(fine.faces) < 40_000:
        fine = subdivide(fine)
    return cluster_decimate(fine, 70)


def permute(mesh, rng: np.random.Generator) -> trimesh.Trimesh:
    order = rng.permutation(len(mesh.vertices))
    inverse = np.argsort(order)
    faces = inverse[np.asarray(mesh.faces)][rng.permutation(len(mesh.faces))]
    return _remake(mesh, np.asarray(mesh.vertices)[order], faces, _colours(mesh)[order])


def mirror(mesh) -> trimesh.Trimesh:
    v = np.asarray(mesh.vertices) * np.array([-1.0, 1.0, 1.0])
    return _remake(mesh, v, np.asarray(mesh.faces)[:, ::-1])


def recolour(mesh, rng: np.random.Generator) -> trimesh.Trimesh:
    """Channels swapped and scaled, plus a tint: every colour changes, the pattern stays."""
    c = _colours(mesh).astype(np.float64)
    rgb = c[:, rng.permutation(3)] * rng.uniform(0.6, 1.0, size=3) + rng.uniform(0, 60, size=3)
    return _remake(mesh, colours=np.concatenate([np.clip(rgb, 0, 255), c[:, 3:]], axis=1).astype(np.uint8))


def repaint(mesh, rgb=(40, 90, 220)) -> trimesh.Trimesh:
    """One flat new colour: no trace of the original's colours."""
    return _remake(mesh, colours=np.tile(np.array([*rgb, 255], np.uint8), (len(mesh.vertices), 1)))


def _lumpy_blob(rng: np.random.Generator) -> trimesh.Trimesh:
    """The geometry the hidden families add: a coloured lumpy blob of about 6,000 faces, its bumps
    drawn from ``rng``, about unit size at the origin."""
    return coloured_sphere(6000, seed=int(rng.integers(1000)))


def hide_inside(mesh, rng: np.random.Generator) -> trimesh.Trimesh:
    """A lumpy blob of a fifth of the size added at the centre of mass (of the vertices, for an
    open mesh). Inside the surface only where the object is closed and thick around its centre
    (our copy bases): in a torus, a plate, an open shell or a triangle soup the blob is a second
    object in plain view. ``hide_in_interior`` is the family that is always hidden."""
    v = np.asarray(mesh.vertices)
    inner = _lumpy_blob(rng)
    centre = mesh.center_mass if mesh.is_watertight else v.mean(axis=0)
    inner = _remake(inner, np.asarray(inner.vertices) * 0.2 * _size(mesh) + centre)
    return trimesh.util.concatenate([mesh, inner])


_INTERIOR_CELLS = 64  # voxels along the longest side when looking for an object's interior


def hide_in_interior(mesh, rng: np.random.Generator) -> trimesh.Trimesh:
    """A lumpy blob hidden in the object's solid: at its deepest point (the filled voxel solid's
    distance transform, ``_INTERIOR_CELLS`` voxels along the longest side), of radius 0.6 of the
    depth less a voxel and a half, at most a tenth of the size: geometry no view can see.

    ``ValueError`` for an object with no interior three voxels deep (an open shell, a triangle
    soup, a sheet): nothing can be hidden in it, and the copy is not made."""
    size = _size(mesh)
    pitch = size / _INTERIOR_CELLS
    solid = mesh.voxelized(pitch).fill()
    depth = ndimage.distance_transform_edt(np.pad(solid.matrix, 1))[1:-1, 1:-1, 1:-1]
    if float(depth.max()) < 3.0:
        raise ValueError("no interior to hide geometry in")
    deepest = solid.indices_to_points(np.array([np.unravel_index(int(np.argmax(depth)), depth.shape)]))[0]
    radius = min(0.6 * (float(depth.max()) - 1.5) * pitch, 0.1 * size)
    blob = _lumpy_blob(rng)
    points = np.asarray(blob.vertices, np.float64)
    points *= radius / float(np.linalg.norm(points, axis=1).max())
    return trimesh.util.concatenate([mesh, _remake(blob, points + deepest)])


def add_decoy(mesh, distance: float, share: float, rng: np.random.Generator, crumpled: bool = False) -> trimesh.Trimesh:
    """A small grey chip carrying ``share`` of the surface area, ``distance`` sizes from the
    centre of the bounding box in a direction ``rng`` draws: a decoy beside the object (about
    1-2 sizes off) or far away, there to move the fingerprint's frame, not to be seen.
    ``crumpled``: the chip's 80 triangles jittered as far as the chip is wide, so it carries
    its share of the area on a far smaller footprint on screen."""
    v = np.asarray(mesh.vertices, np.float64)
    size = _size(mesh)
    direction = rng.normal(size=3)
    centre = (v.min(axis=0) + v.max(axis=0)) / 2.0 + distance * size * direction / np.linalg.norm(direction)
    ico = trimesh.creation.icosphere(1)
    chip = np.asarray(ico.vertices, np.float64)
    if crumpled:
        chip = chip + rng.normal(size=chip.shape)
    chip *= np.sqrt(share * mesh.area / trimesh.Trimesh(chip, ico.faces, process=False).area)
    return _with_grey_part(mesh, chip + centre, ico.faces)


def _with_grey_part(mesh, vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    """``mesh`` with one more part, ``vertices`` and the ``faces`` indexing them, coloured grey."""
    v = np.asarray(mesh.vertices, np.float64)
    grey = np.tile(np.array([90, 90, 90, 255], np.uint8), (len(vertices), 1))
    return trimesh.Trimesh(np.vstack([v, vertices]), np.vstack([np.asarray(mesh.faces), np.asarray(faces) + len(v)]),
                           vertex_colors=np.vstack([_colours(mesh), grey]), process=False)


def add_object(mesh, distance: float, share: float, rng: np.random.Generator, bridged: bool = False) -> trimesh.Trimesh:
    """A second object beside the copy: a grey ball carrying ``share`` of the area (12-20 %, more
    than a decoy: it stays in the body, as a scene's second object must), ``distance`` sizes
    from the centre in a direction ``rng`` draws; ``bridged``: joined to the object's centre by a
    bar 3 % of the size wide, so the two are one connected surface."""
    with_ball = add_decoy(mesh, distance, share, rng)
    if not bridged:
        return with_ball
    v = np.asarray(mesh.vertices, np.float64)
    start = (v.min(axis=0) + v.max(axis=0)) / 2.0
    along = np.asarray(with_ball.vertices, np.float64)[len(v):].mean(axis=0) - start
    length = float(np.linalg.norm(along))
    bar = trimesh.creation.box(extents=(length, 0.03 * _size(mesh), 0.03 * _size(mesh)))
    placed = trimesh.geometry.align_vectors([1.0, 0.0, 0.0], along / length)
    placed[:3, 3] = start + along / 2.0
    bar.apply_transform(placed)
    return _with_grey_part(with_ball, bar.vertices, bar.faces)


def recode(mesh, fmt: MeshFormat = MeshFormat.DRACO) -> trimesh.Trimesh:
    return decode_mesh(encode_mesh(_remake(mesh), fmt))  # _remake: a file without colours is painted grey, as a miner must


DEFORMATIONS: dict[str, Deform] = {
    "stretch 1.25 x": lambda m, r: stretch(m, (1.25, 1.0, 1.0)),
    "stretch 0.75/1.25": lambda m, r: stretch(m, (0.75, 1.0, 1.25)),
    "stretch all axes": lambda m, r: stretch(m, (1.2, 0.8, 1.15)),
    "tilt 10 deg": lambda m, r: turn(m, 10.0, (1, 0, 0)),
    "tilt -10 deg": lambda m, r: turn(m, -10.0, (0, 0, 1)),
    "turn 137 deg": lambda m, r: turn(m, 137.0),
    "warp 3%": lambda m, r: warp(m, 0.03, r),
    "warp 5%": lambda m, r: warp(m, 0.05, r),
    "subdivide": lambda m, r: subdivide(m),
    "decimate": lambda m, r: cluster_decimate(m, 40),
    "remesh": lambda m, r: remesh(m),
    "draco": lambda m, r: recode(m, MeshFormat.DRACO),
    "glb": lambda m, r: recode(m, MeshFormat.GLB),
    "permute": lambda m, r: permute(m, r),
    "jitter 0.3%": lambda m, r: jitter(m, 0.003, r),
    "mirror": lambda m, r: mirror(m),
    "recolour": lambda m, r: recolour(m, r),
    "repaint": lambda m, r: repaint(m),
    "hidden inside": lambda m, r: hide_inside(m, r),
    "hidden in the interior": lambda m, r: hide_in_interior(m, r),
    "decoy beside": lambda m, r: add_decoy(m, 2.0, 0.03, r),
    "decoy far off": lambda m, r: add_decoy(m, 1000.0, 0.001, r),
    "crumpled decoy": lambda m, r: add_decoy(m, 2.0, 0.03, r, crumpled=True),
    "second object beside": lambda m, r: add_object(m, 1.5, 0.15, r),
    "bridged second object": lambda m, r: add_object(m, 2.0, 0.2, r, bridged=True),
}

COMBINATIONS: dict[str, Deform] = {
    "stretch+tilt+warp+draco": lambda m, r: recode(warp(turn(stretch(m, (1.2, 0.85, 1.1)), 8.0, (1, 0, 0)), 0.03, r)),
    "mirror+stretch+subdivide+recolour": lambda m, r: recolour(subdivide(stretch(mirror(m), (0.8, 1.2, 1.0))), r),
    "hidden+turn+stretch+jitter": lambda m, r: jitter(stretch(turn(hide_inside(m, r), 61.0), (1.1, 1.0, 0.8)), 0.002, r),
    "decimate+tilt+repaint+permute": lambda m, r: permute(repaint(turn(cluster_decimate(m, 40), -7.0, (0, 0, 1))), r),
    "remesh+warp+stretch+turn": lambda m, r: turn(stretch(warp(remesh(m), 0.02, r), (0.85, 1.15, 1.2)), 200.0),
    "decoys+stretch+turn+glb": lambda m, r: recode(turn(stretch(add_decoy(add_decoy(m, 2.0, 0.01, r), 1000.0, 0.0001, r),
                                                                (1.15, 0.9, 1.0)), 33.0), MeshFormat.GLB),
    "object+stretch+tilt+draco": lambda m, r: recode(turn(stretch(add_object(m, 3.0, 0.12, r), (0.85, 1.0, 1.2)),
                                                          -6.0, (1, 0, 0))),
    "hidden+object+turn+jitter": lambda m, r: jitter(turn(add_object(hide_inside(m, r), 2.0, 0.15, r), 61.0), 0.002, r),
    "interior+turn+stretch+jitter": lambda m, r: jitter(stretch(turn(hide_in_interior(m, r), 61.0), (1.1, 1.0, 0.8)),
                                                        0.002, r),
    "decimate+jitter+repaint": lambda m, r: repaint(jitter(cluster_decimate(m, 40), 0.003, r)),
}


def _box(extents, centre) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(centre))


def _paint(mesh, rgb_fn) -> trimesh.Trimesh:
    v = np.asarray(mesh.vertices)
    rgb = np.clip(rgb_fn(v), 0, 255)
    colours = np.concatenate([rgb, np.full((len(v), 1), 255)], axis=1).astype(np.uint8)
    return trimesh.Trimesh(v, np.asarray(mesh.faces), vertex_colors=colours, process=False)


def box_chair() -> trimesh.Trimesh:
    """A chair of boxes (seat, back, four legs), wood-brown with a grain along its height."""
    parts = [_box((1.0, 0.1, 1.0), (0, 0.5, 0)), _box((1.0, 1.0, 0.1), (0, 1.05, -0.45))]
    parts += [_box((0.1, 0.5, 0.1), (x, 0.2, z)) for x in (-0.45, 0.45) for z in (-0.45, 0.45)]
    chair = subdivide(_paint(trimesh.util.concatenate(parts), lambda v: np.zeros((len(v), 3))), 2)
    return _paint(chair, lambda v: np.stack([140 + 50 * np.sin(9 * v[:, 1]), 90 + 30 * np.sin(9 * v[:, 1]),
                                             50 + 10 * v[:, 0]], axis=1))


def cad_part() -> trimesh.Trimesh:
    """A machined-looking part: a plate with four bosses and a raised rib, grey."""
    parts = [_box((2.0, 0.2, 1.2), (0, 0, 0)), _box((1.6, 0.4, 0.2), (0, 0.3, 0))]
    for x in (-0.8, 0.8):
        for z in (-0.4, 0.4):
            boss = trimesh.creation.cylinder(radius=0.12, height=0.35, sections=24)
            boss.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
            boss.apply_translation((x, 0.2, z))
            parts.append(boss)
    part = subdivide(_paint(trimesh.util.concatenate(parts), lambda v: np.zeros((len(v), 3))), 1)
    return _paint(part, lambda v: np.stack([150 + 40 * v[:, 1], 150 + 40 * v[:, 1], 160 + 40 * v[:, 1]], axis=1))


def copy_bases() -> dict[str, trimesh.Trimesh]:
    return {"chair": box_chair(), "cad part": cad_part(), "blob": coloured_sphere(20_000, seed=0),
            "shap-e": tiny_shap_e_seeds("a red chair", [0])[0]}


def packing_variants(mesh, n: int = 36) -> list[trimesh.Trimesh]:
    """``n`` variants of ``mesh``: stretches of 0.90-1.10 on two horizontal axes and tilts of
    +-5 deg, spread over that box so they look mutually different side by side."""
    variants = []
    grid = np.linspace(0.9, 1.1, 3)
    tilts = (-5.0, 0.0, 5.0, 2.5)
    for i in range(n):
        sx, sz = grid[i % 3], grid[(i // 3) % 3]
        tilt = tilts[(i // 9) % 4]
        v = stretch(mesh, (sx, 1.0, sz))
        variants.append(turn(turn(v, tilt, (1, 0, 0)), 5.0 * ((i % 2) * 2 - 1) if tilt == 2.5 else 0.0, (0, 0, 1)))
    return variants


def procedural_seeds(prompt: str, seeds) -> list[trimesh.Trimesh]:
    from text3d.generation.primitives import PrimitiveGenerator

    return PrimitiveGenerator().generate([prompt] * len(seeds), list(seeds))


def blob_seeds(seeds, faces: int = 20_000) -> list[trimesh.Trimesh]:
    return [coloured_sphere(faces, seed=s) for s in seeds]


_TINY: dict = {}


def tiny_shap_e_seeds(prompt: str, seeds, grid_size: int = 32) -> list[trimesh.Trimesh]:
    """The tiny random-weight Shap-E pipeline (``--models tiny``), 4 denoising steps."""
    from text3d.generation.config import TINY_MODEL, GenerationConfig
    from text3d.generation.shap_e import ShapEGenerator

    if grid_size not in _TINY:
        config = GenerationConfig(model=TINY_MODEL, device="cpu", num_inference_steps=4, grid_size=grid_size,
                                  guidance_scale=3.0, show_progress=False)
        _TINY[grid_size] = ShapEGenerator.from_pretrained(config=config)
    return _TINY[grid_size].generate([prompt] * len(seeds), list(seeds))


def distinct_objects() -> dict[str, trimesh.Trimesh]:
    """Different objects: primitives of other topology or proportion, and the copy bases."""
    grey = lambda v: np.full((len(v), 3), 150.0)  # noqa: E731
    return {
        "sphere": _paint(trimesh.creation.icosphere(4), grey),
        "box": _paint(trimesh.creation.box(), grey),
        "torus": _paint(trimesh.creation.torus(1.0, 0.3), grey),
        "thin torus": _paint(trimesh.creation.torus(1.0, 0.1), grey),
        "cylinder": _paint(trimesh.creation.cylinder(0.5, 2.0, sections=64), grey),
        "cone": _paint(trimesh.creation.cone(0.5, 1.0, sections=64), grey),
        "capsule": _paint(trimesh.creation.capsule(1.0, 0.5), grey),
        "annulus": _paint(trimesh.creation.annulus(0.3, 0.8, 0.5, sections=48), grey),
        **copy_bases(),
    }


def flat_sheet(seed: int = 0, cells: int = 24) -> trimesh.Trimesh:
    """A planar mesh (every vertex at z = 0) with a lopsided, wavy outline and a colour gradient:
    an answer with no extent along one axis, which whitens to a cloud with none either."""
    rng = np.random.default_rng(seed)
    u, v = np.meshgrid(np.linspace(0.0, 1.0, cells + 1), np.linspace(0.0, 1.0, cells + 1))
    u, v = u.ravel(), v.ravel()
    bend = 0.15 * np.sin(2 * np.pi * (v + rng.uniform())) * u
    vertices = np.stack([1.6 * u + bend, v + 0.3 * u**2, np.zeros_like(u)], axis=1)
    k = np.arange(cells)
    corner = (k[:, None] * (cells + 1) + k[None, :]).ravel()
    faces = np.concatenate([np.stack([corner, corner + 1, corner + cells + 2], 1),
                            np.stack([corner, corner + cells + 2, corner + cells + 1], 1)])
    return _paint(trimesh.Trimesh(vertices, faces, process=False),
                  lambda p: np.stack([100 * p[:, 0] + 40, np.full(len(p), 90.0), 160 * p[:, 1] + 40], axis=1))


def lumpy_rock(seed: int, subdivisions: int = 3, amplitude: float = 0.25, smoothing: int = 6) -> trimesh.Trimesh:
    """A grey stone: an icosphere whose radius varies by up to ``amplitude``, random per vertex and
    then averaged ``smoothing`` times with the neighbours (half its own, half theirs): lumps a few
    vertices wide on a near-round, colourless object, whose copies only the shape can find."""
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions)
    bumps = rng.uniform(-1.0, 1.0, size=len(sphere.vertices))
    neighbours = sphere.vertex_neighbors
    for _ in range(smoothing):
        bumps = np.array([0.5 * bumps[i] + 0.5 * bumps[list(around)].mean() for i, around in enumerate(neighbours)])
    bumps /= np.abs(bumps).max()
    vertices = sphere.vertices * (1.0 + amplitude * bumps[:, None])
    return _paint(trimesh.Trimesh(vertices, sphere.faces, process=False), lambda p: np.full((len(p), 3), 150.0))
