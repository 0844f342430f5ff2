"""How far apart two answers' shapes are once each is aligned as well as it can be to the other.

``compare(a, b) -> Match``: ``a`` and ``b`` are ``ShapeCloud``s (``text3d.reward.defences.shape_cloud``),
whitened and in their canonical frames, so a copy made by any affine deformation (stretch,
shear, tilt, turn, mirror) differs from its original by a rotation or reflection plus
whatever non-affine change was added (a warp, jitter, remeshing). The search:

1. every one of the 48 axis permutations with sign flips of ``b`` (the canonical axes are
   ambiguous up to those) is scored by the mean distance from a fixed subsample of ``b``
   to its nearest point of ``a`` (where two of either cloud's fourth moments tie, so its
   frame may be turned by any angle in that plane, also each permutation turned by 22.5, 45
   and 67.5 deg there, and where both clouds are near-round, so that no axis of either frame
   is pinned down, also ``_SPREAD_STARTS`` turns spread over every orientation, each mirrored
   too: ``_candidate_starts``); the best ``_STARTS`` go on, and with colours on both
   sides also the best by distance plus colour difference (a near-round object fits its
   surface in many orientations; only its colours tell which one is the copy's), and for a
   near-round pair without colour patterns on both sides also the best ``_RADIAL_STARTS`` of
   ``_RADIAL_TURNS`` turns ranked by how well their smoothed radial profiles agree
   (``_radial_starts``: what tells a plain stone's turn);
2. each is refined by iterative closest points, up to ``_ICP_STEPS`` steps of a weighted
   least-squares affine fit on nearest neighbours both ways (affine, not only rotations:
   what whitening left over, e.g. from a copy's crumpled parts, is absorbed too), all
   starts at once through the clouds' nearest-point fields, then the best two (and the
   colours' choice; for a near-round pair every start still going, since the field's cells
   cannot rank its poses) by exact neighbours, point to plane (``_icp``, ``_plane_affine``: on a
   near-round object point-to-point steps barely turn);
3. the result's ``geometry`` is the symmetric point-to-plane chamfer distance: the
   area-weighted mean offset, along the surface normal, from each cloud's points to the
   other's nearest point, averaged over both directions, in whitened units (the object's
   spread is 1 along every axis). Along the normal, so two samplings of one surface are
   close however their points fall.

``smoothed_distance`` is the same distance once every point's offset (a vector along its normal, so a
flipped normal changes nothing) is averaged over its ``_SMOOTH_NEIGHBOURS`` nearest points of its
own cloud: what is left is the part of the difference that is shape, not noise. Jitter,
decimation and remeshing scatter offsets that cancel within a patch (a blob jittered by 0.5 %
of its size keeps about 0.3 of its distance), while two different objects differ by whole
bumps that do not (honest blob seeds keep about 0.8 of it).

``colour`` is the agreement of the two surfaces' colours after that alignment: the
weighted Pearson correlation of matched points' colours, per channel and for the luminance,
whichever is highest (a tint or a channel gain changes no correlation), or None when
either surface is almost uniformly coloured (no pattern to compare: no evidence).

Also here: ``bent_distance`` (a quadratic bend after the affine fit, for smooth warps) and
``colour_fit`` (re-aligned by colours as well as places, and the canonical correlations of the
colours: for a pattern of two or more independent colours). The cheap evidence ``match``
reads before any alignment is in ``cloud_evidence``.

Cost (bench/copycat.py): a few milliseconds a pair on this shared 2-core CPU (most of it
the exact k-d tree steps and the verdict's chamfer); pairs run on a few threads
(``fingerprint.parallel_map``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from text3d.reward.defences.cloud_evidence import MIN_COLOUR_STD, colour_dimensions
from text3d.reward.defences.shape_cloud import ShapeCloud

T = TypeVar("T")

__all__ = ["Match", "compare", "bent_distance", "smoothed_distance", "colour_fit", "canonical_colour_correlations",
           "SIGNED_PERMUTATIONS"]

_STARTS = 8
_TIED_MOMENTS = 0.05  # relative gap of two fourth-moment eigenvalues under which their axes are not pinned down
_TIE_TURNS = (22.5, 45.0, 67.5)  # in-between turns tried in such a plane (quarter turns are permutations)
_ICP_STEPS = 10
_COARSE_POINTS = 128
_ICP_POINTS = 400
_COLOUR_WEIGHT = 0.5  # whitened units per unit of summed RGB difference, when choosing starts
_SETTLED = 1e-3  # ICP stops once no entry of the map moves more than this
_PRUNE_AFTER = 3  # ICP steps before starts far behind the best are dropped
_PRUNE_RATIO = 1.5
_EXACT_STEPS = 5  # exact point-to-plane steps, at most (five reach the true pose from 9.6 deg off), for the best starts of the field's ICP
_EXACT_STARTS = 2
_SPREAD_STARTS = 256  # turns spread over all orientations, each also mirrored, tried for a near-round pair
_RADIAL_TURNS = 2048  # ... and these many more, each also mirrored, ranked by the radial profile (``_radial_starts``)
_RADIAL_STARTS = 8  # the best of them by that ranking go on to the ICP whatever their nearest-point score
_RADIAL_KERNEL_DEG = 20.0  # the radial profile: the mean distance from the centre within this angle of a direction
_RADIAL_NEIGHBOURS = 64  # ... over at most this many nearest points by direction
_RADIAL_CELLS = 16  # a's profile is tabulated on a grid of this many cells a side over the cube of directions
_RADIAL_POINTS = 64  # b's directions it is looked up at
_PLANE_HOLD = 1e-4  # how strongly a point-to-plane step is held towards the map it starts from
_FIELD_SLACK = 0.16  # the cheap stage gives up above _FIELD_SLACK + _FIELD_SLOPE * reach (see _icp)
_FIELD_SLOPE = 2.5
_FIELD_RESCUE = 0.1  # ... but within this much above that line its best start alone still takes the exact steps
_FIELD_HALF = 3.2  # the nearest-point field covers +-this many whitened units
_FIELD_CELLS = 32
_BEND_STEPS = 8  # quadratic ICP steps of bent_distance
_BEND_HOLD = 1e-3  # how strongly the curved terms are held towards the affine fit
_COLOUR_PICK = 0.05  # whitened units per unit of colour disagreement, when picking among refined fits
_COLOUR_BETAS = (4.0, 2.0, 1.0)  # colour_fit: whitened units per unit of RGB difference, strong to weak
_COLOUR_STEPS = 8  # colour_fit: affine ICP steps per colour weight, at most
_SMOOTH_NEIGHBOURS = 24  # points of its own cloud (of ~1,500) each offset is averaged over (``smoothed_distance``)


def _signed_permutations() -> np.ndarray:
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            for row, (col, sign) in enumerate(zip(perm, signs)):
                m[row, col] = sign
            mats.append(m)
    return np.array(mats)


SIGNED_PERMUTATIONS = _signed_permutations()
"""[48, 3, 3]: every axis permutation with every sign flip (rotations and reflections)."""


@dataclass(frozen=True)
class Match:
    """``geometry``: symmetric chamfer distance after alignment (whitened units, >= 0);
    ``colour``: colour agreement in [-1, 1] after alignment, or None (no pattern on one side);
    ``transform``: [3, 3] the orthogonal map applied to ``b``'s points; ``shift``: [3]."""

    geometry: float
    colour: float | None
    transform: np.ndarray
    shift: np.ndarray


def _per_cloud(cache: dict[int, tuple[object, T]], limit: int, cloud: ShapeCloud,
               build: Callable[[ShapeCloud], T]) -> T:
    """``build(cloud)``, cached by the identity of the cloud's points (clouds are immutable; the
    entry holds the points, so their id is not reused while it is cached), the cache emptied once
    it holds more than ``limit`` entries: what the alignment derives from one cloud is paid once
    per answer, not once per pair."""
    key = id(cloud.points)
    hit = cache.get(key)
    if hit is not None and hit[0] is cloud.points:
        return hit[1]
    value = build(cloud)
    if len(cache) > limit:
        cache.clear()
    cache[key] = (cloud.points, value)
    return value


_trees: dict[int, tuple[object, cKDTree]] = {}


def _tree(cloud: ShapeCloud) -> cKDTree:
    """A k-d tree of the cloud's points, cached by identity (``_per_cloud``)."""
    return _per_cloud(_trees, 4096, cloud, lambda c: cKDTree(c.points.astype(np.float64)))


def _pick(cloud: ShapeCloud, n: int) -> np.ndarray:
    """Indices of an evenly spread subsample of at most ``n`` of the cloud's points."""
    if len(cloud.points) <= n:
        return np.arange(len(cloud.points))
    return np.linspace(0, len(cloud.points) - 1, n).astype(np.int64)


def _subsample(cloud: ShapeCloud, n: int) -> tuple[np.ndarray, np.ndarray]:
    pick = _pick(cloud, n)
    w = cloud.weights[pick].astype(np.float64)
    return cloud.points[pick].astype(np.float64), w / w.sum()


def _affine(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The linear map ``A`` and shift ``t`` minimising sum w |src A + t - dst|^2 (weighted least squares)."""
    w = w / w.sum()
    cs, cd = w @ src, w @ dst
    s, d = src - cs, dst - cd
    gram = (s * w[:, None]).T @ s
    a = np.linalg.solve(gram + 1e-9 * np.eye(3), (s * w[:, None]).T @ d)
    return a, cd - cs @ a


def _plane_affine(src: np.ndarray, dst: np.ndarray, normals: np.ndarray, w: np.ndarray, r: np.ndarray,
                  t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The affine map (``src @ A + t``) minimising sum w ((src A + t - dst) . n)^2, point to plane,
    held lightly (``_PLANE_HOLD``) towards the current map ``(r, t)``.

    Point to plane, because on a near-round object point-to-point ICP barely turns: the
    nearest points slide along the surface and pull no rotation, so a copy of a lumpy
    sphere stopped 9.6 deg off (geometry 0.028 where the true pose gives 0.003); the
    offsets along the normals see the lumps, and five steps reach the true pose. The hold
    keeps the turn about a perfectly round surface (which no offset constrains) where it is.
    """
    root = np.sqrt(w / w.sum())[:, None]
    rows = np.concatenate([np.einsum("nk,nl->nkl", src, normals).reshape(len(src), 9), normals], axis=1) * root
    rhs = np.einsum("nl,nl->n", dst, normals) * root[:, 0]
    current = np.concatenate([r.reshape(9), t])
    hold = np.sqrt(_PLANE_HOLD)
    x = np.linalg.lstsq(np.concatenate([rows, hold * np.eye(12)]), np.concatenate([rhs, hold * current]),
                        rcond=None)[0]
    return x[:9].reshape(3, 3), x[9:]


def _chamfer(a: ShapeCloud, pb: np.ndarray, nb: np.ndarray, wb: np.ndarray,
             tree_b: cKDTree) -> tuple[float, np.ndarray, np.ndarray]:
    """(symmetric point-to-plane distance, nearest a-index of each b point, nearest b-index of each a point).

    Point to plane: the offset to the nearest point measured along that point's surface
    normal, so two different samplings of one surface (points a cell apart along it) are
    close, and only a surface that moved off the other counts."""
    pa, na = a.points.astype(np.float64), a.normals.astype(np.float64)
    _, i_ba = _tree(a).query(pb)
    _, i_ab = tree_b.query(pa)
    d_ba = np.abs(np.einsum("ij,ij->i", pb - pa[i_ba], na[i_ba]))
    d_ab = np.abs(np.einsum("ij,ij->i", pa - pb[i_ab], nb[i_ab]))
    return 0.5 * float(wb @ d_ba + a.weights.astype(np.float64) @ d_ab), i_ba, i_ab


def _inverse(r: np.ndarray) -> np.ndarray:
    """The inverse of the affine part ``r`` ([3, 3], or [S, 3, 3] for a batch), or where a map is
    singular (or its inverse not finite), its pseudo-inverse.

    A flat answer (a planar mesh: the whitening's smallest spread is clamped, not its points
    moved) whitens to a cloud with no extent along one axis, and the least-squares fit of two
    such clouds leaves that axis's row of the map at zero: the map is singular, and ``inv``
    raised, which took the whole step's copycat check (and so the step) down with it. The
    pseudo-inverse maps that axis to nothing, which is what the map does; every regular map
    is inverted exactly as before, so no other verdict changes."""
    try:
        inverse = np.linalg.inv(r)
        if np.isfinite(inverse).all():
            return inverse
    except np.linalg.LinAlgError:
        pass
    return np.linalg.pinv(r)


def _turned_normals(b: ShapeCloud, r: np.ndarray) -> np.ndarray:
    """[M, 3] ``b``'s unit normals once its points are mapped by ``r`` (an affine map turns normals
    by its inverse transpose)."""
    nb = b.normals.astype(np.float64) @ _inverse(r).T
    return nb / np.maximum(np.linalg.norm(nb, axis=1, keepdims=True), 1e-300)


def _smoothed_chamfer(a: ShapeCloud, pb: np.ndarray, nb: np.ndarray, wb: np.ndarray, tree_b: cKDTree,
                      i_ba: np.ndarray, i_ab: np.ndarray) -> float:
    """``_chamfer``'s distance of the offsets averaged over each point's ``_SMOOTH_NEIGHBOURS``
    nearest points of its own cloud (weighted): the offset of a point is the vector from its
    nearest point of the other cloud, along that point's normal (sign-free: a mesh whose normals
    are flipped here and there gives the same vectors). Noise cancels within a patch, a bump
    does not. Deterministic: k-d tree queries on the clouds alone."""
    pa, na = a.points.astype(np.float64), a.normals.astype(np.float64)
    wa = a.weights.astype(np.float64)

    def smoothed(points, offsets, weights, tree) -> float:
        k = min(_SMOOTH_NEIGHBOURS, len(points))
        _, near = tree.query(points, k=k)
        near = near.reshape(len(points), k)
        w = weights[near]
        mean = np.einsum("nk,nkl->nl", w, offsets[near]) / np.maximum(w.sum(axis=1), 1e-300)[:, None]
        return float(weights @ np.linalg.norm(mean, axis=1))

    off_ba = na[i_ba] * np.einsum("ij,ij->i", pb - pa[i_ba], na[i_ba])[:, None]
    off_ab = nb[i_ab] * np.einsum("ij,ij->i", pa - pb[i_ab], nb[i_ab])[:, None]
    return 0.5 * (smoothed(pb, off_ba, wb, tree_b) + smoothed(pa, off_ab, wa, _tree(a)))


def _colour_agreement(ca: np.ndarray | None, cb: np.ndarray | None, w: np.ndarray) -> float | None:
    if ca is None or cb is None:
        return None
    w = w / w.sum()
    lum = np.array([0.299, 0.587, 0.114])
    best = None
    for xa, xb in [(ca @ lum, cb @ lum)] + [(ca[:, k], cb[:, k]) for k in range(3)]:
        ma, mb = w @ xa, w @ xb
        sa, sb = np.sqrt(w @ (xa - ma) ** 2), np.sqrt(w @ (xb - mb) ** 2)
        if sa < MIN_COLOUR_STD or sb < MIN_COLOUR_STD:
            continue
        corr = float(w @ ((xa - ma) * (xb - mb)) / (sa * sb))
        best = corr if best is None else max(best, corr)
    return best


def _batched_affine(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_affine`` for S problems at once: src, dst [S, N, 3], w [N] -> (A [S, 3, 3], t [S, 3])."""
    w = w / w.sum()
    cs, cd = np.einsum("n,snj->sj", w, src), np.einsum("n,snj->sj", w, dst)
    s, d = src - cs[:, None], dst - cd[:, None]
    sw = s * w[None, :, None]
    gram = np.matmul(sw.transpose(0, 2, 1), s) + 1e-9 * np.eye(3)
    a = np.linalg.solve(gram, np.matmul(sw.transpose(0, 2, 1), d))
    return a, cd - np.einsum("sj,sji->si", cs, a)


def _apply(points: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[S, N, 3]: ``points @ r[s] + t[s]`` for every start s."""
    return np.matmul(points[None], r) + t[:, None]


_fields: dict[int, tuple[object, np.ndarray]] = {}


def _nearest_field(cloud: ShapeCloud) -> np.ndarray:
    """[C, C, C] int32: for each cell of a ``_FIELD_CELLS``-cube grid over +-``_FIELD_HALF``
    whitened units, the index of a cloud point in the nearest occupied cell (a Euclidean
    distance transform); cached by identity like the k-d trees.

    A look-up is one array index, so a whole ICP step for every start costs microseconds
    instead of the k-d tree's ~1.5 us per point; the answer is the nearest point to within a
    cell (0.2 units, the cloud's own spacing), which is what ICP's first steps need. The
    last steps and the verdict use the exact k-d tree."""
    return _per_cloud(_fields, 1024, cloud, _build_field)


def _build_field(cloud: ShapeCloud) -> np.ndarray:
    cells = _cell_of(cloud.points.astype(np.float64))
    owner = np.full((_FIELD_CELLS,) * 3, -1, np.int32)
    owner[cells[:, 0], cells[:, 1], cells[:, 2]] = np.arange(len(cells), dtype=np.int32)
    _, nearest = ndimage.distance_transform_edt(owner < 0, return_indices=True)
    return owner[nearest[0], nearest[1], nearest[2]]


def _cell_of(points: np.ndarray) -> np.ndarray:
    h = 2.0 * _FIELD_HALF / _FIELD_CELLS
    return np.clip(((points + _FIELD_HALF) / h).astype(np.int64), 0, _FIELD_CELLS - 1)


def _lookup(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Indices of (approximately) nearest cloud points for ``points`` [..., 3]."""
    c = _cell_of(points)
    return field[c[..., 0], c[..., 1], c[..., 2]]


def _plane_turn(degrees: float, axis: int) -> np.ndarray:
    """[3, 3]: a turn by ``degrees`` about canonical ``axis`` (in the plane of the other two)."""
    i, j = [k for k in range(3) if k != axis]
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    turn = np.eye(3)
    turn[i, i], turn[i, j], turn[j, i], turn[j, j] = c, s, -s, c
    return turn


def _degenerate_axes(cloud: ShapeCloud) -> list[int]:
    """The canonical axes about which ``cloud``'s frame is not pinned down: those whose other two
    fourth-moment eigenvalues are within ``_TIED_MOMENTS`` of each other (relative), so any
    turn in that plane, not only the quarter turns of the signed permutations, may be the
    copy's. Measured: a CAD part turned, stretched and jittered came out with two of them 0.3 %
    apart and its true pose 40 deg from every signed permutation."""
    moments = np.asarray(cloud.moments, dtype=np.float64)
    axes = []
    for axis in range(3):
        i, j = [k for k in range(3) if k != axis]
        if abs(moments[i] - moments[j]) <= _TIED_MOMENTS * max(abs(moments[i]), abs(moments[j]), 1e-300):
            axes.append(axis)
    return axes


def _spread_turns(n: int) -> np.ndarray:
    """[2n, 3, 3]: ``n`` turns spread evenly over all orientations (a super-Fibonacci spiral of unit
    quaternions, Alexa 2022: deterministic arithmetic, no random numbers), each also mirrored."""
    s = np.arange(n) + 0.5
    phi, psi = np.sqrt(2.0), 1.533751168755204288118041
    r, big_r = np.sqrt(s / n), np.sqrt(1.0 - s / n)
    alpha, beta = 2.0 * np.pi * s / phi, 2.0 * np.pi * s / psi
    w, x, y, z = r * np.sin(alpha), r * np.cos(alpha), big_r * np.sin(beta), big_r * np.cos(beta)
    turns = np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                      np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                      np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], 1)
    return np.concatenate([turns, turns * np.array([-1.0, 1.0, 1.0])[None, :, None]])


_SPREAD_TURNS = _spread_turns(_SPREAD_STARTS)
_RADIAL_SPREAD = _spread_turns(_RADIAL_TURNS)


def _round(cloud: ShapeCloud) -> bool:
    """True when no axis of ``cloud``'s frame is pinned down (``_degenerate_axes``: all three fourth
    moments within ``_TIED_MOMENTS``): a lumpy sphere, whose copy may sit at any turn from it."""
    return len(_degenerate_axes(cloud)) == 3


_radial_tables: dict[int, tuple[object, np.ndarray]] = {}
_radial_samples_of: dict[int, tuple[object, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}


def _directions(cloud: ShapeCloud) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit directions [N, 3], distances [N], weights [N]) of ``cloud``'s points from its weighted centre."""
    points, weights = cloud.points.astype(np.float64), cloud.weights.astype(np.float64)
    offsets = points - (weights / weights.sum()) @ points
    distances = np.linalg.norm(offsets, axis=1)
    return offsets / np.maximum(distances, 1e-12)[:, None], distances, weights


def _smoothed_radius(directions: np.ndarray, distances: np.ndarray, weights: np.ndarray,
                     at: np.ndarray) -> np.ndarray:
    """[M] the area-weighted mean distance of the points whose direction lies within
    ``_RADIAL_KERNEL_DEG`` of each unit direction of ``at`` [M, 3] (of the nearest
    ``_RADIAL_NEIGHBOURS``; the nearest always counts): the object's radial profile, smoothed
    so that a turn a few degrees off still scores close to the right one."""
    chord = 2.0 * np.sin(np.radians(_RADIAL_KERNEL_DEG) / 2.0)
    gap, index = cKDTree(directions).query(at, k=min(_RADIAL_NEIGHBOURS, len(directions)))
    gap, index = gap.reshape(len(at), -1), index.reshape(len(at), -1)
    near = gap <= chord
    near[:, 0] = True
    w = np.where(near, weights[index], 0.0)
    return (w * distances[index]).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-30)  # 0 where no point weighs


def _radial_table(cloud: ShapeCloud) -> np.ndarray:
    """[C^3] ``cloud``'s radial profile at the direction of every cell of a ``_RADIAL_CELLS``-cube grid
    over [-1, 1]^3 that a unit vector can fall in (0 elsewhere); cached by identity like the fields."""
    return _per_cloud(_radial_tables, 1024, cloud, _build_radial_table)


def _build_radial_table(cloud: ShapeCloud) -> np.ndarray:
    n = _RADIAL_CELLS
    centres = (np.arange(n) + 0.5) * (2.0 / n) - 1.0
    cells = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 3)
    norms = np.linalg.norm(cells, axis=1)
    shell = np.abs(norms - 1.0) <= np.sqrt(3.0) / n + 1e-9
    table = np.zeros(len(cells))
    table[shell] = _smoothed_radius(*_directions(cloud), cells[shell] / norms[shell][:, None])
    return table


def _radial_samples(cloud: ShapeCloud) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(directions [n, 3], radial profile there [n], weights [n] summing to 1) at ``_RADIAL_POINTS``
    of ``cloud``'s points; cached by identity."""
    return _per_cloud(_radial_samples_of, 1024, cloud, _build_radial_samples)


def _build_radial_samples(cloud: ShapeCloud) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    directions, distances, weights = _directions(cloud)
    pick = _pick(cloud, _RADIAL_POINTS)
    return (directions[pick], _smoothed_radius(directions, distances, weights, directions[pick]),
            weights[pick] / weights[pick].sum())


def _radial_starts(a: ShapeCloud, b: ShapeCloud) -> np.ndarray:
    """[_RADIAL_STARTS, 3, 3] the turns of ``_RADIAL_TURNS`` (each also mirrored) under which b's
    radial profile best matches a's: weighted squared difference of the smoothed distance from
    the centre, b's at its sampled directions against a's at those directions turned.

    Why: on a near-round object whose lumps are a few vertices wide (a grey stone), the ICP
    finds the copy's turn only from a start within about 10-15 deg of it, the 256 spread turns
    lie up to about 40 deg apart, and the nearest-point score of 128 points (``compare``) ranks
    the start nearest the copy's turn below eight others: 0.1.13 joined 17 of 36 turned,
    stretched or tilted copies of such stones (copycat_corpus.lumpy_rock: icospheres subdivided
    three or four times, their radius varied by 10-20 %). A profile smoothed over 20 deg varies slowly, so a turn
    near the copy's scores near the best, and 2,048 turns leave none far from it: 34 of 36.
    Only for pairs without colour patterns on both sides (``compare``): where both have one, the
    colours choose the turn, and a warped blob's best shape fit by profile was a wrong turn that
    let one of 48 warped copies escape the colour-pattern path."""
    table = _radial_table(a)
    directions, radii, weights = _radial_samples(b)
    turned = np.matmul(directions[None], _RADIAL_SPREAD)  # [T, n, 3]
    n = _RADIAL_CELLS
    cell = np.minimum(((turned + 1.0) * (n / 2.0)).astype(np.int64), n - 1)
    misfit = ((table[(cell[..., 0] * n + cell[..., 1]) * n + cell[..., 2]] - radii[None]) ** 2) @ weights
    return _RADIAL_SPREAD[np.argsort(misfit, kind="stable")[:_RADIAL_STARTS]]


def _candidate_starts(a: ShapeCloud, b: ShapeCloud) -> np.ndarray:
    """[S, 3, 3] starting maps of b onto a: the 48 signed permutations, and where either frame
    has tied moments (``_degenerate_axes``), each of them composed with the in-between turns
    ``_TIE_TURNS`` in that plane (b's own plane before the permutation, a's after it); where both
    are near-round (``_round``) also ``_SPREAD_TURNS``. Measured on blobs decimated or remeshed,
    jittered 0.3 % and repainted (four seeds, eight draws each): without the spread turns 14 of 64
    ended in a wrong turn 0.022 or more from the original; with 64 of them still 5, with 128 or
    more none."""
    starts = [SIGNED_PERMUTATIONS]
    for axis in _degenerate_axes(b):
        starts += [np.matmul(_plane_turn(d, axis)[None], SIGNED_PERMUTATIONS) for d in _TIE_TURNS]
    for axis in _degenerate_axes(a):
        starts += [np.matmul(SIGNED_PERMUTATIONS, _plane_turn(d, axis)[None]) for d in _TIE_TURNS]
    if _round(a) and _round(b):
        starts.append(_SPREAD_TURNS)
    return np.concatenate(starts)


def _icp(a: ShapeCloud, b: ShapeCloud, starts: np.ndarray, reach: float | None,
         colour_start: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Affine ICP from every start at once; returns the refined fits (r [3, 3], t [3]) worth judging.

    The starts move together: each step matches b -> a and a -> b through the clouds'
    nearest-point fields (``_nearest_field``: one array look-up per point) and solves every
    start's least-squares fit as one batch. After ``_PRUNE_AFTER`` steps only starts within
    ``_PRUNE_RATIO`` of the best fit go on. The best ``_EXACT_STARTS`` by fit error (every one
    still going for a pair of near-round clouds, ``_round``; and the
    start the colours chose, ``starts[colour_start]``, whatever its shape error: a near-round
    object fits its surface in many orientations) then take up to ``_EXACT_STEPS`` steps
    with exact nearest neighbours (k-d trees), so the verdict does not inherit the field's
    cell-sized rounding.

    With ``reach``, returns no fit at all when the field's best fit error exceeds
    ``_FIELD_SLACK + _FIELD_SLOPE * reach`` by more than ``_FIELD_RESCUE``: measured on every
    deformed copy of tests/test_copycat_rules.py, a copy that ends at geometry g started at a
    field error of at most 0.14 + 1.9 g (0.28 at most), so a pair above that line cannot end
    within ``reach`` (with the slack halved to 0.08 every copy is still joined; at 0.16 about
    half of 2,016 honest blob pairs stop here). Real files broke the line: the field's fit of a
    triangle soup (trimesh's ``busted.STL``) creeps, 0.23 after ten steps and 0.19 after forty,
    for copies the exact steps bring to 0.003. So a pair above the line by at most
    ``_FIELD_RESCUE`` is refined from its best start alone (spec 0.1.14), and the verdict decides.
    """
    pa, wa = _subsample(a, _ICP_POINTS)  # ICP on subsamples, the verdict on the whole clouds
    pb0, wb = _subsample(b, _ICP_POINTS)
    field_a, field_b = _nearest_field(a), _nearest_field(b)
    a_points, b_points = a.points.astype(np.float64), b.points.astype(np.float64)
    weights = np.concatenate([wb, wa])
    r = np.array(starts, dtype=np.float64)
    t = np.zeros((len(starts), 3))
    is_colour = np.arange(len(starts)) == (-1 if colour_start is None else colour_start)

    def matches(r: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fit error [S], b -> a indices [S, n], a -> b indices [S, n]) through the fields."""
        inv = _inverse(r)
        moved_b = _apply(pb0, r, t)
        moved_a = _apply(pa, inv, np.einsum("sj,sji->si", -t, inv))  # a's points in b's frame
        i_ba, i_ab = _lookup(field_a, moved_b), _lookup(field_b, moved_a)
        error = (np.linalg.norm(moved_b - a_points[i_ba], axis=2) @ wb
                 + np.linalg.norm(moved_a - b_points[i_ab], axis=2) @ wa)
        return error, i_ba, i_ab

    for step in range(_ICP_STEPS):
        error, i_ba, i_ab = matches(r, t)
        if step == _PRUNE_AFTER and len(r) > 1:
            keep = (error <= _PRUNE_RATIO * error.min()) | is_colour
            r, t, i_ba, i_ab, is_colour = r[keep], t[keep], i_ba[keep], i_ab[keep], is_colour[keep]
        # b -> a matches and a -> b matches together: a copy missing a part does not drag the fit
        src = np.concatenate([np.broadcast_to(pb0, (len(r),) + pb0.shape), b_points[i_ab]], axis=1)
        dst = np.concatenate([a_points[i_ba], np.broadcast_to(pa, (len(r),) + pa.shape)], axis=1)
        r_new, t_new = _batched_affine(src, dst, weights)
        settled = np.abs(r_new - r).max() < _SETTLED and np.abs(t_new - t).max() < _SETTLED
        r, t = r_new, t_new
        if settled:
            break
    error, _, _ = matches(r, t)
    best_error = float(error.min())
    line = _FIELD_SLACK + _FIELD_SLOPE * reach if reach is not None else np.inf
    if best_error > line + _FIELD_RESCUE:
        return []  # even the best start is too far off to end within reach
    if best_error > line:
        # near the line: the field's fit of a sparse or ragged cloud creeps (a triangle soup's stretched
        # copy is still at 0.23 after ten steps and ends at 0.003), so its best start alone is refined
        chosen = [int(np.argmin(error))]
    elif _round(a) and _round(b):
        # a near-round pair: the field's cells (0.2 whitened units) cannot rank poses whose fits differ
        # by hundredths, so every start still going takes the exact steps
        chosen = list(range(len(r)))
    else:
        chosen = [int(k) for k in np.argsort(error, kind="stable")[:_EXACT_STARTS]]
        chosen += [int(k) for k in np.flatnonzero(is_colour) if int(k) not in chosen]
    tree_a, tree_b = _tree(a), _tree(b)  # a -> b onto b's whole cloud: an identical copy fits exactly
    a_normals = a.normals.astype(np.float64)
    plane = np.concatenate([np.zeros((len(pb0), 3)), a_normals[_pick(a, _ICP_POINTS)]])
    fits = []
    for k in chosen:  # exact neighbours, point to plane, for the last steps
        rk, tk = r[k], t[k]
        for _ in range(_EXACT_STEPS):
            _, i_ba = tree_a.query(pb0 @ rk + tk)
            _, i_ab = tree_b.query((pa - tk) @ _inverse(rk))
            plane[:len(pb0)] = a_normals[i_ba]  # both directions measured along a's normals
            r_new, t_new = _plane_affine(np.concatenate([pb0, b_points[i_ab]]),
                                         np.concatenate([a_points[i_ba], pa]), plane, weights, rk, tk)
            settled = np.abs(r_new - rk).max() < _SETTLED and np.abs(t_new - tk).max() < _SETTLED
            rk, tk = r_new, t_new
            if settled:
                break
        fits.append((rk, tk))
    return fits


def compare(a: ShapeCloud, b: ShapeCloud, reach: float | None = None) -> Match:
    """The best alignment of ``b`` onto ``a`` and what is left of their difference (see the module docstring).

    ``reach``: the largest geometry distance the caller could still call the same object;
    a pair the cheap stage of the alignment already shows further apart returns
    ``geometry=inf`` (and colour None) without the exact stage.
    """
    sub, sub_w = _subsample(b, _COARSE_POINTS)
    # every start scored at once, through a's nearest-point field; the turns of a near-round pair
    # without a colour pattern on both sides, ranked by the radial profile, go on too, whatever that
    # score says of them (with patterns on both sides the colours choose the turn, below)
    plain = min(colour_dimensions(a), colour_dimensions(b)) == 0
    by_profile = _radial_starts(a, b) if plain and _round(a) and _round(b) else np.zeros((0, 3, 3))
    candidates = np.concatenate([by_profile, _candidate_starts(a, b)])
    moved = _apply(sub, candidates, np.zeros((len(candidates), 3)))
    index = _lookup(_nearest_field(a), moved)
    by_shape = np.linalg.norm(moved - a.points[index], axis=2) @ sub_w
    starts = [int(k) for k in np.argsort(by_shape, kind="stable")[:_STARTS]]
    starts += [k for k in range(len(by_profile)) if k not in starts]
    # with colours on both sides, a start must also put colours where they were: near-round objects
    # fit their surfaces in many orientations, and only the colours tell which one is the copy's
    if a.colours is not None and b.colours is not None:
        pick = np.linspace(0, len(b.points) - 1, len(sub)).astype(np.int64) if len(b.points) > len(sub) \
            else np.arange(len(b.points))
        sub_rgb = b.colours[pick].astype(np.float64)
        by_colour = by_shape + _COLOUR_WEIGHT * (np.abs(a.colours[index] - sub_rgb[None]).sum(axis=2) @ sub_w)
        best_colour = int(np.argmin(by_colour))
        if best_colour not in starts:  # the colours' choice, when it differs
            starts.append(best_colour)
        colour_start = starts.index(best_colour)
    else:
        colour_start = None
    best = None
    fits = _icp(a, b, candidates[starts], reach, colour_start)
    if not fits:
        return Match(float("inf"), None, np.eye(3), np.zeros(3))
    for r, t in fits:  # the verdict's own measure picks among the refined fits, colours breaking near-ties
        pb = b.points.astype(np.float64) @ r + t
        nb = _turned_normals(b, r)
        wb_full = b.weights.astype(np.float64)
        dist_ab, i_ba, _ = _chamfer(a, pb, nb, wb_full, cKDTree(pb))
        colour = _colour_agreement(None if a.colours is None else a.colours[i_ba].astype(np.float64),
                                   None if b.colours is None else b.colours.astype(np.float64), wb_full)
        score = dist_ab + _COLOUR_PICK * (1.0 - (colour if colour is not None else 1.0))
        if best is None or score < best[0]:
            best = (score, dist_ab, colour, r, t)
    _, dist_ab, colour, r, t = best
    return Match(dist_ab, colour, r, t)


def smoothed_distance(a: ShapeCloud, b: ShapeCloud, found: Match) -> float:
    """``compare``'s distance for the alignment ``found``, once every point's offset is averaged over
    its ``_SMOOTH_NEIGHBOURS`` nearest points of its own cloud (``_smoothed_chamfer``): the part of
    the difference that is shape, not noise."""
    pb = b.points.astype(np.float64) @ found.transform + found.shift
    nb = _turned_normals(b, found.transform)
    wb, tree_b = b.weights.astype(np.float64), cKDTree(pb)
    _, i_ba, i_ab = _chamfer(a, pb, nb, wb, tree_b)
    return _smoothed_chamfer(a, pb, nb, wb, tree_b, i_ba, i_ab)


def _quadratic_terms(x: np.ndarray) -> np.ndarray:
    """[N, 10]: 1, x, y, z and the six products of two coordinates."""
    i, j = np.triu_indices(3)
    return np.concatenate([np.ones((len(x), 1)), x, x[:, i] * x[:, j]], axis=1)


def bent_distance(a: ShapeCloud, b: ShapeCloud, found: Match) -> float:
    """The chamfer distance left once ``b``, aligned by ``found``, may also bend smoothly onto ``a``.

    A smooth warp of a few percent of the size (the cheapest non-affine disguise) is mostly
    a quadratic displacement over the object; ICP with a quadratic map (each coordinate of
    ``b`` a polynomial of degree two in its aligned position, ``_BEND_STEPS`` steps, its
    curved terms lightly held towards the affine fit) takes it out, while two different
    objects keep most of what separates them (measured on the corpora of
    tests/test_copycat_rules.py: warped copies keep 55-80 % of their affine distance,
    honest pairs of structured objects 70-90 %). Same measure as ``compare``'s geometry
    (point-to-plane, both ways, whitened units); a cubic map forgave honest tori as much as
    warps, so the degree stays two.
    """
    pa, wa = a.points.astype(np.float64), a.weights.astype(np.float64)
    pb = b.points.astype(np.float64) @ found.transform + found.shift
    wb = b.weights.astype(np.float64)
    terms = _quadratic_terms(pb)
    identity = np.zeros((terms.shape[1], 3))
    identity[1:4] = np.eye(3)  # the map that leaves every point where the affine fit put it
    hold = np.sqrt(_BEND_HOLD) * np.eye(terms.shape[1])[4:]
    coef = identity.copy()
    tree_a = _tree(a)
    weights = np.sqrt(np.concatenate([wb / wb.sum(), wa / wa.sum()]))[:, None]
    for _ in range(_BEND_STEPS):
        moved = terms @ coef
        _, i_ba = tree_a.query(moved)
        _, i_ab = cKDTree(moved).query(pa)
        lhs = np.concatenate([np.concatenate([terms, terms[i_ab]]) * weights, hold])
        rhs = np.concatenate([np.concatenate([pa[i_ba], pa]) * weights, hold @ identity])
        coef = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    moved = terms @ coef
    nb = _turned_normals(b, found.transform)  # the bend's own turn is small
    dist, _, _ = _chamfer(a, moved, nb, wb, cKDTree(moved))
    return dist


def canonical_colour_correlations(ca: np.ndarray, cb: np.ndarray, w: np.ndarray) -> np.ndarray:
    """[3] the weighted canonical correlations of matched colours ``ca``, ``cb`` [N, 3] (RGB in
    [0, 1]), largest first: how well each independent direction of one side's colours is
    predicted by a linear map of the other's.

    Any channel swap, gain or tint (an affine recolouring) changes none of them. Each
    covariance is held by ``MIN_COLOUR_STD``^2 on its diagonal (a ridge), so a direction
    that barely varies (a one-colour shade's second and third, rounding noise) counts as
    uncorrelated instead of being magnified: for independent channels of spread ``s``
    matched exactly, each is ``s^2 / (s^2 + MIN_COLOUR_STD^2)`` (0.990 at s = 0.3)."""
    w = np.asarray(w, np.float64) / float(np.sum(w))
    x = np.asarray(ca, np.float64) - w @ np.asarray(ca, np.float64)
    y = np.asarray(cb, np.float64) - w @ np.asarray(cb, np.float64)
    ridge = MIN_COLOUR_STD**2 * np.eye(3)

    def inverse_root(m: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh(m)
        return (vectors / np.sqrt(values)) @ vectors.T

    cross = inverse_root((x * w[:, None]).T @ x + ridge) @ ((x * w[:, None]).T @ y) \
        @ inverse_root((y * w[:, None]).T @ y + ridge)
    return np.linalg.svd(cross, compute_uv=False)


def colour_fit(a: ShapeCloud, b: ShapeCloud, found: Match) -> tuple[float, np.ndarray]:
    """(geometry, canonical colour correlations [3]) once ``b`` is re-aligned onto ``a`` by its
    colours as well as its places; both must carry colours.

    Starting from ``found``, affine ICP matches points in six dimensions (position, and the
    RGB colour times ``_COLOUR_BETAS``, 4 then 2 then 1 whitened units per unit of colour,
    up to ``_COLOUR_STEPS`` steps each): a strong colour weight first pulls a near-round
    object into the turn where its colours sit where they were, the weaker ones let the
    shape settle. Why: on a featureless blob many turns fit the shape about as well, and a
    smooth warp of a few percent tips the shape-only alignment into the wrong one (a copy's
    colours then agreed 0.75-0.95); re-aligned by colour, its colour directions agree
    0.85-0.99 at geometry 0.03-0.12 (tests/test_copycat_rules.py). The geometry is
    ``compare``'s measure at the new pose; the correlations (``canonical_colour_correlations``)
    at the geometric nearest points, as in ``compare``."""
    pa, pb0 = a.points.astype(np.float64), b.points.astype(np.float64)
    ca, cb = a.colours.astype(np.float64), b.colours.astype(np.float64)
    wa, wb = a.weights.astype(np.float64), b.weights.astype(np.float64)
    weights = np.concatenate([wb, wa])
    r, t = found.transform.astype(np.float64), found.shift.astype(np.float64)
    for beta in _COLOUR_BETAS:
        tree_a = cKDTree(np.concatenate([pa, beta * ca], axis=1))
        for _ in range(_COLOUR_STEPS):
            moved = np.concatenate([pb0 @ r + t, beta * cb], axis=1)
            _, i_ba = tree_a.query(moved)
            _, i_ab = cKDTree(moved).query(tree_a.data)
            r_new, t_new = _affine(np.concatenate([pb0, pb0[i_ab]]), np.concatenate([pa[i_ba], pa]), weights)
            settled = np.abs(r_new - r).max() < _SETTLED and np.abs(t_new - t).max() < _SETTLED
            r, t = r_new, t_new
            if settled:
                break
    pb = pb0 @ r + t
    nb = _turned_normals(b, r)
    geometry, i_ba, _ = _chamfer(a, pb, nb, wb, cKDTree(pb))
    return geometry, canonical_colour_correlations(ca[i_ba], cb, wb)
