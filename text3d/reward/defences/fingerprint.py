"""Copycat fingerprints: is this answer the same object as that one?

Every miner gets its own seed, so two honest miners never return the same mesh; one
generation answered for many hotkeys, or one mesh served for many prompts, is a copy.
Two complementary fingerprints:

**Geometry** (``geometry_fingerprint(mesh) -> np.ndarray [FINGERPRINT_DIM] float32``): the
surface, normalised for position and size, described by magnitudes that do not change
when the object turns about its vertical axis:

1. the surface is sampled with area weights -- the centroids of a regular subdivision of
   each triangle, about 20,000 in all (a 12-triangle box as densely as a blob) -- and
   splatted trilinearly into a 32^3 grid spanning +-2.5 RMS radii around the
   area-weighted centroid; each cell's area becomes an occupancy min(1, area / (cell^2 / 2)). Everything is a sum over faces: independent of
   vertex and face order, of the container format, of translation and uniform scale;
   occupancy rather than area, so jitter (which inflates small triangles' area) hardly
   moves it;
2. with the occupied cells at d = (p - centroid) / RMS radius, in cylindrical coordinates
   around +Y (height y, radius rho, azimuth phi): for 9 height slabs x 7 rings (hat
   functions) and azimuthal frequencies m = 0..6, the magnitude
   |sum_cells occupancy * h(y) * g(rho) * exp(i m phi)| -- unchanged by a turn about +Y
   (the renderer's up axis, so the one rotation that keeps an object upright);
3. the 441 magnitudes, scaled to L1 norm 0.9, then the three sorted eigenvalues of the
   occupancy covariance, scaled to L1 norm 0.1.

``geometry_distance(a, b)`` is half the L1 distance of two fingerprints, in [0, 1].
Measured (tests/test_fingerprint.py): re-encoding (PLY, GLB, Draco at 11 bits), vertex
and face permutation, scale and translation give 0.000-0.001; jitter of 0.2 % of the size
0.004-0.014; a turn about +Y 0.000-0.048 (the most for flat faces that alias with the
grid: a box, a cylinder); different shapes (sphere, box, torus, cylinder, capsule,
Shap-E-like blobs of different seeds) 0.098 (cylinder vs capsule) or more, blobs 0.12 or
more. The protocol's threshold is 0.05. Not invariant: tilting the object off its up
axis (which also changes what the validator sees). Cost: 0.05 s at 20k faces, 0.08 s at
100k, 1.4 s at 1M on this CPU.

**Views** (``view_fingerprint(images) -> np.ndarray [V, 32, 32, 3] float32``): the rendered
views at 32 px. Under one rig (one step) the same object renders the same pixels, whatever
is hidden inside it; ``view_distance`` is the RMS pixel difference in [0, 1] (protocol
threshold 0.02; measured at 512 px views: Draco 0.002, 0.2 % jitter 0.013 -- the shading
of jittered normals --, different blobs 0.34 or more). It catches what geometry cannot: hidden interior geometry added to make
the surface statistics differ. It needs both answers rendered under the same rig, so it
is for answers of one step; ``RecentAnswers`` (different steps, different rigs) uses
geometry only.

``same_object(a, b)`` is true when either distance is under its threshold.
``first_come(fingerprints)`` maps each later duplicate to the earliest answer it copies.
"""

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import trimesh
from PIL import Image

__all__ = [
    "Fingerprint",
    "geometry_fingerprint",
    "view_fingerprint",
    "fingerprint",
    "geometry_distance",
    "view_distance",
    "same_object",
    "first_come",
    "cluster_copies",
    "RecentAnswers",
    "GEOMETRY_MAX_DISTANCE",
    "VIEW_MAX_DISTANCE",
]

GEOMETRY_MAX_DISTANCE = 0.05  # the protocol's defaults (text3d.reward.scoring_protocol.DefenceSpec)
VIEW_MAX_DISTANCE = 0.02

_GRID = 32
_GRID_EXTENT = 2.5  # the grid spans +-2.5 RMS radii around the centroid
_Y_BINS, _Y_MAX = 9, 2.0  # height slabs over y / s in [-2, 2]
_RHO_BINS, _RHO_MAX = 7, 2.4  # rings over distance from the vertical axis / s in [0, 2.4]
_M_MAX = 6  # azimuthal frequencies 0..6
_BLOCK_WEIGHTS = (0.9, 0.1)
FINGERPRINT_DIM = _Y_BINS * _RHO_BINS * (_M_MAX + 1) + 3
_SAMPLES = 20_000  # surface samples aimed at (large triangles are subdivided)
_VIEW_PX = 32


@dataclass(frozen=True)
class Fingerprint:
    """One answer's fingerprint. ``views`` is present when the answer was rendered;
    ``rig_key`` names the rig it was rendered under (view fingerprints compare only
    under the same rig)."""

    geometry: np.ndarray
    views: np.ndarray | None = None
    rig_key: str | None = None

    def digest(self) -> str:
        """Short hex id of the geometry fingerprint, for reports (not for comparisons)."""
        return hashlib.sha256(np.round(self.geometry, 3).astype(np.float32).tobytes()).hexdigest()[:16]

    def to_bytes(self) -> bytes:
        """A compact, versioned serialisation (asset libraries store fingerprints on disk)."""
        import io

        buffer = io.BytesIO()
        arrays = {"geometry": np.asarray(self.geometry, np.float32)}
        if self.views is not None:
            arrays["views"] = np.asarray(self.views, np.float16)
        np.savez(buffer, version=np.int32(1), rig_key=np.str_(self.rig_key or ""), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Fingerprint":
        """The inverse of ``to_bytes``; ``ValueError`` for anything else (no pickles are ever loaded)."""
        import io

        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                if int(npz["version"]) != 1:
                    raise ValueError(f"unknown fingerprint version {int(npz['version'])}")
                views = npz["views"].astype(np.float32) if "views" in npz.files else None
                rig_key = str(npz["rig_key"]) or None
                return cls(npz["geometry"].astype(np.float32), views, rig_key)
        except (OSError, KeyError, EOFError) as exc:
            raise ValueError(f"not a fingerprint: {exc}") from None


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


def view_fingerprint(images: Sequence[Image.Image], px: int = _VIEW_PX) -> np.ndarray:
    """[V, px, px, 3] float32 in [0, 1]: the views box-filtered down to ``px``."""
    return np.stack([np.asarray(img.convert("RGB").resize((px, px), Image.Resampling.BOX), dtype=np.float32) / 255.0
                     for img in images])


def fingerprint(mesh: trimesh.Trimesh, images: Sequence[Image.Image] | None = None,
                rig_key: str | None = None) -> Fingerprint:
    """Geometry fingerprint of ``mesh``, plus the view fingerprint of ``images`` when given."""
    views = view_fingerprint(images) if images else None
    return Fingerprint(geometry_fingerprint(mesh), views, rig_key if views is not None else None)


def geometry_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance of two geometry fingerprints, in [0, 1]."""
    return float(0.5 * np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).sum())


def view_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference of two view fingerprints of the same shape, in [0, 1]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"view fingerprints differ in shape: {a.shape} vs {b.shape}")
    return float(np.sqrt(np.mean((a - b) ** 2)))


def same_object(
    a: Fingerprint,
    b: Fingerprint,
    *,
    geometry_max_distance: float = GEOMETRY_MAX_DISTANCE,
    view_max_distance: float = VIEW_MAX_DISTANCE,
) -> bool:
    """True when the geometry fingerprints are within ``geometry_max_distance``, or both
    answers were rendered under the same rig and their views are within ``view_max_distance``."""
    if geometry_distance(a.geometry, b.geometry) <= geometry_max_distance:
        return True
    if a.views is not None and b.views is not None and a.rig_key is not None and a.rig_key == b.rig_key \
            and a.views.shape == b.views.shape:
        return view_distance(a.views, b.views) <= view_max_distance
    return False


def first_come(
    fingerprints: Sequence[Fingerprint | None],
    same: Callable[[Fingerprint, Fingerprint], bool] = same_object,
) -> dict[int, int]:
    """``{index: index of the earliest answer it duplicates}`` for answers sorted by arrival.

    ``None`` entries (no valid answer) are skipped. An answer that copies a copy points at
    the original: only originals are compared against. O(n * originals).
    """
    originals: list[int] = []
    duplicates: dict[int, int] = {}
    for i, fp in enumerate(fingerprints):
        if fp is None:
            continue
        for j in originals:
            if same(fingerprints[j], fp):  # type: ignore[arg-type]
                duplicates[i] = j
                break
        else:
            originals.append(i)
    return duplicates


def cluster_copies(
    fingerprints: Sequence[Fingerprint | None],
    same: Callable[[Fingerprint, Fingerprint], bool] = same_object,
) -> list[list[int]]:
    """Groups of indices that are the same object, whatever order pairs are compared in.

    Connected components of ``same`` over every pair (a copy of a copy joins its original's
    group). Each group is sorted ascending (callers order their inputs, e.g. by arrival, so
    ``group[0]`` is the earliest); groups are sorted by their first index; singletons and
    ``None`` entries are left out. This is the one copycat rule: the validator's step and
    ``text3d dedupe`` both call it.
    """
    n = len(fingerprints)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    present = [i for i in range(n) if fingerprints[i] is not None]
    for a_pos, i in enumerate(present):
        for j in present[a_pos + 1:]:
            if root(i) != root(j) and same(fingerprints[i], fingerprints[j]):  # type: ignore[arg-type]
                parent[max(root(i), root(j))] = min(root(i), root(j))
    groups: dict[int, list[int]] = {}
    for i in present:
        groups.setdefault(root(i), []).append(i)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


@dataclass
class _Entry:
    step: int
    prompt: str
    geometry: np.ndarray


@dataclass
class RecentAnswers:
    """Per hotkey, the geometry fingerprints of its answers over the last ``max_steps`` steps.

    ``repeat_of(hotkey, prompt, fp)`` returns the step of an earlier answer of that hotkey,
    for a DIFFERENT prompt, that is the same object (then the answer is a repeat and scores
    0); ``add`` records an answer. Steps older than ``step - max_steps`` are forgotten on
    ``add``. Memory: 80 floats per answer kept.
    """

    max_steps: int = 32
    geometry_max_distance: float = GEOMETRY_MAX_DISTANCE
    _by_hotkey: dict[str, deque] = field(default_factory=dict)

    def repeat_of(self, hotkey: str, prompt: str, fp: Fingerprint) -> int | None:
        key = prompt.strip().lower()
        for entry in self._by_hotkey.get(hotkey, ()):
            if entry.prompt != key and geometry_distance(entry.geometry, fp.geometry) <= self.geometry_max_distance:
                return entry.step
        return None

    def add(self, hotkey: str, step: int, prompt: str, fp: Fingerprint) -> None:
        entries = self._by_hotkey.setdefault(hotkey, deque())
        entries.append(_Entry(int(step), prompt.strip().lower(), np.asarray(fp.geometry, np.float32)))
        while entries and entries[0].step <= step - self.max_steps:
            entries.popleft()

    def forget(self, hotkey: str) -> None:
        """Drop a hotkey's history (deregistered, or its uid was given to someone else)."""
        self._by_hotkey.pop(hotkey, None)

    def __len__(self) -> int:
        return sum(len(e) for e in self._by_hotkey.values())
