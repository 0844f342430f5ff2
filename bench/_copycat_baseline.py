"""The baseline of bench/copycat.py: the copycat fingerprint as it was before issue 17.

A yaw-invariant descriptor of the surface (20,000 area-weighted samples splatted into a
32^3 occupancy grid; magnitudes of azimuthal harmonics per height slab and ring, plus the
sorted covariance eigenvalues), compared by half the L1 distance against a threshold of
0.05. Kept here, unchanged, only so the bench can time the new rule against it in the
same run; nothing in the product uses it (it missed stretches, tilts, warps and
subdivision: see tests/test_copycat_rules.py).
"""

import numpy as np
import trimesh

__all__ = ["geometry_fingerprint", "geometry_distance", "THRESHOLD"]

THRESHOLD = 0.05
_GRID = 32
_GRID_EXTENT = 2.5  # the grid spans +-2.5 RMS radii around the centroid
_Y_BINS, _Y_MAX = 9, 2.0  # height slabs over y / s in [-2, 2]
_RHO_BINS, _RHO_MAX = 7, 2.4  # rings over distance from the vertical axis / s in [0, 2.4]
_M_MAX = 6  # azimuthal frequencies 0..6
_BLOCK_WEIGHTS = (0.9, 0.1)
FINGERPRINT_DIM = _Y_BINS * _RHO_BINS * (_M_MAX + 1) + 3
_SAMPLES = 20_000  # surface samples aimed at (large triangles are subdivided)


def _lattice(level: int) -> np.ndarray:
    """[level^2, 2] (u, v) of the centroids of a triangle's regular level x level subdivision:
    the point A + u (B - A) + v (C - A); the set is the same whichever vertex is A."""
    up = [((3 * i + 1) / (3 * level), (3 * j + 1) / (3 * level)) for i in range(level) for j in range(level - i)]
    down = [((3 * i + 2) / (3 * level), (3 * j + 2) / (3 * level))
            for i in range(level - 1) for j in range(level - 1 - i)]
    return np.array(up + down, dtype=np.float64)


def _samples(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted surface samples: (points [N, 3], weights [N], weights summing to the area).

    A triangle is split into level^2 equal parts, level = ceil(sqrt(area / (total / 20000)))
    (at most 64), and contributes each part's centroid with a level^-2 share of its area:
    about 20,000 samples or one per face, so a 12-triangle box is sampled as densely as a
    100k-face blob, and nothing depends on the order of vertices or faces."""
    v = np.asarray(mesh.vertices).view(np.ndarray).astype(np.float64)
    tri = v[np.asarray(mesh.faces).view(np.ndarray)]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = float(area.sum())
    if not total > 0:
        return tri[:, 0], area
    level = np.clip(np.ceil(np.sqrt(area / (total / _SAMPLES))), 1, 64).astype(np.int64)
    points, weights = [], []
    for lv in np.unique(level):
        idx = np.flatnonzero(level == lv)
        uv = _lattice(int(lv))
        a, ab, ac = tri[idx, 0], tri[idx, 1] - tri[idx, 0], tri[idx, 2] - tri[idx, 0]
        pts = a[:, None, :] + uv[None, :, 0:1] * ab[:, None, :] + uv[None, :, 1:2] * ac[:, None, :]
        points.append(pts.reshape(-1, 3))
        weights.append(np.repeat(area[idx] / len(uv), len(uv)))
    return np.concatenate(points), np.concatenate(weights)


def _splat(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear splat of area into a grid centred on the area-weighted centroid, with
    cells of ``2 * _GRID_EXTENT / _GRID`` RMS radii, turned into a saturating occupancy
    (``OCCUPANCY``): (cell centres [C, 3] in RMS units around the centroid, weights [C]).

    Occupancy, not area: jitter inflates the area of small triangles (by 21 % for 0.2 %
    jitter on a 100k-face UV sphere) but hardly changes which cells the surface crosses.
    The grid hangs on the centroid, not the bounding box, so flat faces do not sit on
    cell centres by construction (a box's faces would: all of its surface is extreme)."""
    total = weights.sum()
    centre = weights @ points / total
    d = points - centre
    scale = float(np.sqrt(weights @ np.einsum("ij,ij->i", d, d) / total)) or 1.0
    cell = 2.0 * _GRID_EXTENT / _GRID
    g = d / (scale * cell) + _GRID / 2.0 - 0.5  # cell centres at integers
    base = np.clip(np.floor(g).astype(np.int64), 0, _GRID - 2)
    frac = np.clip(g - base, 0.0, 1.0)
    grid = np.zeros(_GRID**3)
    for dx in (0, 1):
        wx = frac[:, 0] if dx else 1.0 - frac[:, 0]
        for dy in (0, 1):
            wy = frac[:, 1] if dy else 1.0 - frac[:, 1]
            for dz in (0, 1):
                wz = frac[:, 2] if dz else 1.0 - frac[:, 2]
                idx = ((base[:, 0] + dx) * _GRID + base[:, 1] + dy) * _GRID + base[:, 2] + dz
                grid += np.bincount(idx, weights=weights * wx * wy * wz, minlength=_GRID**3)
    occupied = np.flatnonzero(grid > 0)
    ijk = np.stack(np.unravel_index(occupied, (_GRID,) * 3), axis=1).astype(np.float64)
    a = grid[occupied] / (scale * cell) ** 2  # area in cell faces
    occupancy = np.minimum(a / 0.5, 1.0)  # a cell crossed by half a cell face of surface is full
    return (ijk - (_GRID / 2.0 - 0.5)) * cell, occupancy


def _hat(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """[len(edges), N] linear (hat) membership of ``x`` in bins centred on ``edges``."""
    step = edges[1] - edges[0]
    return np.clip(1.0 - np.abs(x[None, :] - edges[:, None]) / step, 0.0, None)


def geometry_fingerprint(mesh: trimesh.Trimesh) -> np.ndarray:
    """The geometry fingerprint of ``mesh`` (see the module docstring): float32 [FINGERPRINT_DIM].

    Raises ``ValueError`` for a mesh without area.
    """
    points, weights = _samples(mesh)
    if not weights.sum() > 0:
        raise ValueError("the mesh has no surface area to fingerprint")
    cells, w = _splat(points, weights)
    w = w / w.sum()
    d = cells - w @ cells
    d = d / (float(np.sqrt(w @ np.einsum("ij,ij->i", d, d))) or 1.0)
    rho = np.hypot(d[:, 0], d[:, 2])  # distance from the vertical (+Y) axis
    phi = np.arctan2(d[:, 0], d[:, 2])
    height = _hat(np.clip(d[:, 1], -_Y_MAX, _Y_MAX), np.linspace(-_Y_MAX, _Y_MAX, _Y_BINS))  # [Y, C]
    ring = _hat(np.clip(rho, 0.0, _RHO_MAX), np.linspace(0.0, _RHO_MAX, _RHO_BINS))  # [R, C]
    cell_w = (height[:, None, :] * ring[None, :, :]) * w  # [Y, R, C]
    harmonics = np.exp(1j * np.outer(np.arange(_M_MAX + 1), phi))  # [M, C]
    energy = np.abs(np.einsum("yrc,mc->yrm", cell_w, harmonics))  # yaw-invariant magnitudes
    cov = (w[:, None] * d).T @ d
    eig = np.sort(np.clip(np.linalg.eigvalsh(cov), 0.0, None))[::-1]
    blocks = []
    for block, weight in zip((energy.reshape(-1), eig), _BLOCK_WEIGHTS):
        total = float(np.abs(block).sum())
        blocks.append(weight * block / total if total > 0 else block)
    return np.concatenate(blocks).astype(np.float32)


def geometry_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance of two geometry fingerprints, in [0, 1]."""
    return float(0.5 * np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).sum())


