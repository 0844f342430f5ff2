"""Copycat fingerprints: is this answer the same object as that one, after any cheap deformation?

Every miner gets its own seed, so two honest miners never return the same object; one
generation answered for many hotkeys, or one object served for many prompts, is a copy,
whatever was done to it on the way: stretched up to +-25 % per axis, tilted, turned,
mirrored, warped by a few percent of its size, subdivided, decimated, remeshed,
re-encoded, its vertices permuted or jittered, recoloured, geometry hidden inside it or a
small decoy placed beside it or far off.

**What is compared.** ``fingerprint(mesh, images=None, rig_key=None) -> Fingerprint`` keeps
the answer's outer surface as a small cloud in a frame no affine map changes
(``text3d.reward.defences.shape_cloud``: area-weighted samples, decoys placed far off and
hidden interior dropped, whitened, canonical axes, ~1,500 points with colours and normals), the proportions the
whitening forgot (``aspect``), plus its views at 32 px when it was rendered (``views``,
under the rig named ``rig_key``). When the body is a scene of a large object and a second one
beside it, the clouds of its *parts* (its largest object, seen from cores of three quarters
and of 55 % of the area, and its largest piece where empty space or a long bar splits it) are kept too
(``parts``), and two answers are one object when
either's part is one object with the other's body or part: a copy with a second object set
beside it, alone or joined by a bar, is still the copy.

**How.** ``match(a, b)`` takes the cheap evidence first: the proportions, the radial
profiles, each cloud's *relief* (how far its shape departs from an ellipsoid) and the
distance of the two colour histograms. Only then does it align the clouds
(``text3d.reward.defences.alignment``: the 48 axis permutations and flips, ICP for all the
best starts at once through nearest-point fields, exact k-d tree steps for the last), and
only as far as a bound can still be reached. It measures ``geometry``, the symmetric
point-to-plane chamfer distance after alignment (whitened units), ``colour``, how well the
aligned colour patterns agree (a correlation; None without a pattern), and, where it could
decide, ``bent``: the distance left once one cloud may also bend onto the other by a
quadratic map (a smooth warp of a few percent is mostly that).

**The rule** (``CopyRule``, thresholds from the pinned protocol's ``DefenceSpec``)::

    never the same     if the proportions differ by more than max_aspect_change        (1.6)
    same object  <=>   geometry <= geometry_max and smooth <= smooth_max                (0.025, 0.005)
                  or   bent <= min(max(relief_ratio * min(relief_a, relief_b),
                                       detail_ratio * min(detail_a, detail_b)), relief_max)  (0.1, 1.55, 0.07)
                  or   histogram <= colour_histogram_max and colour >= min_colour       (0.15, 0.95)
                       and geometry <= colour_geometry_max                              (0.08)
                  or   histogram <= colour_histogram_max, both colour patterns of two or more
                       independent colours, and once re-aligned by colour (colour_fit):
                       the second canonical colour correlation >= min_pattern_agreement  (0.8)
                       and geometry <= pattern_geometry_max                             (0.14)
                  or   same rig and view_distance <= view_max                           (0.02)

The relief scales the shape bound: a chair or a machined part (relief 0.3-0.5) has a lot of
shape that two different objects do not share, a lumpy sphere (0.02-0.08) little, so honest
lumpy spheres of different seeds come within 0.010 while a turned or jittered part keeps
0.05-0.1 of its relief (honest procedural tori of one prompt: 0.13 at the closest). Colour only adds evidence, and only when the colours themselves (the histogram,
where they sit does not matter) are the same: a copy keeps them however it is bent, two
honest smooth gradients correlate by chance up to 0.987 but never share a histogram
(0.25 apart at the closest of 2,016 pairs).

Shape alone, without a bend, is judged by the *smoothed* distance (``smooth``,
``alignment.smoothed_distance``: each point's offset averaged over its 24 nearest, so jitter,
decimation and remeshing, which scatter offsets, cancel, and a bump does not), within a plain
distance of ``geometry_max``. A floor on the plain distance cannot tell a jittered copy from
another lumpy sphere: among 41,500 random pairs of 3,000 honest blob seeds ten came within
0.0099-0.0148 of each other, inside 0.1.12's floor of 0.015, where a blob jittered by 0.5 % of
its size and repainted sits at 0.007-0.010. Smoothed, the honest pairs keep 0.8 of it (0.0081
at the closest), the copies 0.3-0.7 (0.0032 at most).

A pattern of two or three independent colours (``cloud_evidence.colour_dimensions``: a
Shap-E-like blob's colour field, not a one-colour shade) is the strongest evidence a smooth
object can carry: a warp of a few percent moves a featureless blob's surface as far as honest
blobs are apart and can tip the shape-only alignment into a wrong turn, but it leaves every
colour where it was. So such a pair is re-aligned by its colours as well as its places
(``alignment.colour_fit``) and judged by how well its *second* independent colour direction
agrees (the canonical correlations: a one-colour shade has no second, 0.001 at most over
685 honest procedural pairs sharing a palette), allowing the geometry a warp leaves. The
histogram gate keeps honest blobs apart (0.25 at the closest of 946 pairs, copies 0.05-0.13):
their colour fields are one family and can be turned to agree.

Fine detail (``cloud_evidence.fine_detail``, the mean offset from local quadric fits) scales
the bend's bound too: a smooth warp bends a detailed part without smoothing its detail, while
honest seeds of a smooth primitive differ by smooth bumps and carry little of it.

Measured (tests/test_copycat_rules.py, bench/copycat.py, docs/copycats.md): 96 of the 96
deformed copies of issue 17; 624 of 624 over four draws of each and 16 draws of every warp
family on four blob seeds (spec 0.1.4 missed 40 of them, warped coloured blobs); 0 of 2,924
honest pairs (``bench/copycat.py --honest-seeds 44``: 44 procedural seeds each of a torus and a
cone among them). Since 0.1.7 the cloud is the answer's body (``shape_cloud``): a decoy chip
of 0.01-3 % of the area 2 to 1e6 sizes off no longer moves the frame (0.1.6 let 64 of 64
decoyed copies escape); since 0.1.8 the trim also starts from a frame a chip just beyond the
object cannot stretch (0.1.7 let 13 of 560 near chips escape, 0.1.8 six); since 0.1.9 a scene's
core part is judged too (0.1.8 joined none of 24 copies with a grey ball of 12-20 % of the area
beside them; 0.1.9 joins 46 of 48, bridged ones among them), and since 0.1.10 a second core part
from 55 % of the area (balls of 30-50 %: 0.1.9 joined 24 of 48 draws, 0.1.10 47), and since
0.1.11 the body's largest piece where empty space splits it (balls of 12-50 % 1.5-10 sizes
off: 0.1.10 missed 20 of 384, 0.1.11 five; chips of 0.01-5 % touching the object or near it:
0.1.10 let 6 of 560 escape, 0.1.11 none), and since 0.1.12 where a long thin bar does (balls on
a bar: 0.1.11 missed 4 of 384 fresh draws, 0.1.12 none), and since 0.1.14 without the bar's stub
(plain round objects with a ball on a bar: 0.1.13 let 14 of 24 draws escape, 0.1.14 five). Since 0.1.13 shape alone decides by
the *smoothed* distance (``alignment.smoothed_distance``): 0.1.12's floor of 0.015 on the
plain distance joined 10 of 41,500 random pairs of honest blob seeds 0-2999, none of which it
joins now; and a pair of near-round clouds is aligned from turns spread over every orientation,
each start refined exactly (blobs decimated or remeshed, jittered and repainted: 0.1.12 turned
14 of 64 draws wrong and let them escape, 0.1.13 none). Within a step the views catch what
hides inside. What still escapes: a blob both warped and recoloured (docs/copycats.md).

``cluster_copies(fingerprints)`` groups answers that are the same object, whatever order
pairs are compared in (each joins the earliest group leader it copies); the validator's step and ``text3d dedupe``
both call it. ``Fingerprint.to_bytes()`` / ``from_bytes()`` store one on disk (npz, no
pickles; hostile bytes raise ``ValueError``).

Cost: bench/copycat.py (per asset at 20k/100k/1M faces, per pair, per step of 16 and 64
answers; figures in docs/copycats.md). A step pays the cheap evidence for every pair of its
answers and the alignment only for the pairs the evidence leaves open.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import trimesh
from PIL import Image

from text3d.reward.defences.alignment import bent_distance, colour_fit, compare, smoothed_distance
from text3d.reward.defences.cloud_evidence import (
    colour_dimensions,
    colour_histogram_distance,
    fine_detail,
    profile_distance,
    relief,
)
from text3d.reward.defences.shape_cloud import MAX_PARTS, ShapeCloud, shape_clouds

log = logging.getLogger(__name__)

__all__ = [
    "Fingerprint",
    "CopyRule",
    "Match",
    "fingerprint",
    "view_fingerprint",
    "view_distance",
    "match",
    "match_clouds",
    "same_object",
    "cluster_copies",
    "parallel_map",
    "DEFAULT_RULE",
    "DEFAULT_BODY_REACH",
]

_VIEW_PX = 32
_FORMAT_VERSION = 10  # 3: the aspect (principal spreads before whitening) is kept; 4: the cloud is the body's;
# 5: the body from a robust start; 6: the core part of a scene is kept beside the body; 7: up to two core parts;
# 8: the largest pieces too; 9: the largest piece where a bar splits the body; 10: ... without the bar's stub
_MAX_POINTS = 100_000  # a stored fingerprint with more points is not one of ours
_MAX_VIEWS = 64
BEND_GAIN_MIN = 0.5  # bending keeps at least this share of the affine distance (measured: 0.55 at least)
PROFILE_MAX = 0.02  # radial profiles further apart than this are never copies (copies measured <= 0.0085)
# ... unless both carry patterns of two or more colours: a 5 % warp of a featureless blob moves its
# radial profile by up to 0.027 (measured over 16 draws of each of four blob seeds), within what the
# pattern path's geometry (0.14) allows; honest blobs never reach that path (their histograms differ)
PATTERN_PROFILE_MAX = 0.035


@dataclass(frozen=True)
class Fingerprint:
    """One answer's fingerprint: its canonical outer-surface ``cloud`` (the body); ``views``
    [V, 32, 32, 3] float32 when it was rendered, under the rig named ``rig_key`` (views compare
    only under the same rig); ``parts``, the clouds of the body's parts when the body is a
    scene of a large object and a second one beside it (``shape_cloud._part_masks``: at most
    ``shape_cloud.MAX_PARTS``; empty for one object, nearly every answer)."""

    cloud: ShapeCloud
    views: np.ndarray | None = None
    rig_key: str | None = None
    parts: tuple[ShapeCloud, ...] = ()

    def digest(self) -> str:
        """Short hex id of the cloud, for reports (not for comparisons)."""
        return hashlib.sha256(np.round(self.cloud.points, 2).astype(np.float32).tobytes()).hexdigest()[:16]

    def to_bytes(self) -> bytes:
        """A compact, versioned serialisation (npz: float16 points and normals, uint8 colours)."""
        arrays = _cloud_arrays(self.cloud, "")
        for k, part in enumerate(self.parts):
            arrays |= _cloud_arrays(part, f"part{k}_")
        if self.views is not None:
            arrays["views"] = np.asarray(self.views, np.float16)
        buffer = io.BytesIO()
        np.savez(buffer, version=np.int32(_FORMAT_VERSION), rig_key=np.str_(self.rig_key or ""), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Fingerprint":
        """The inverse of ``to_bytes``; ``ValueError`` for anything else (no pickles are ever
        loaded; shapes, sizes and values are checked: the bytes may come from anywhere)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                if int(npz["version"]) != _FORMAT_VERSION:
                    raise ValueError(f"unknown fingerprint version {int(npz['version'])}")
                cloud = _read_cloud(npz, "")
                stored = [k for k in range(MAX_PARTS + 1) if f"part{k}_points" in npz.files]
                if stored != list(range(min(len(stored), MAX_PARTS))):  # checked before any part is read
                    raise ValueError("parts out of order or too many")
                parts = tuple(_read_cloud(npz, f"part{k}_") for k in stored)
                views = npz["views"].astype(np.float32) if "views" in npz.files else None
                rig_key = str(npz["rig_key"]) or None
                if views is not None and not (views.ndim == 4 and views.shape[0] <= _MAX_VIEWS
                                              and views.shape[1:] == (_VIEW_PX, _VIEW_PX, 3)):
                    raise ValueError("arrays of the wrong shape")
                if views is not None and not np.isfinite(views).all():
                    raise ValueError("non-finite or negative values")
        except (OSError, KeyError, EOFError, TypeError, ValueError, AttributeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a fingerprint: {exc}") from None
        return cls(cloud, views, rig_key, parts)


def _cloud_arrays(c: ShapeCloud, prefix: str) -> dict[str, np.ndarray]:
    """One cloud's arrays for ``Fingerprint.to_bytes`` (float16 points and normals, uint8 colours)."""
    arrays = {"points": c.points.astype(np.float16), "weights": c.weights.astype(np.float32),
              "normals": c.normals.astype(np.float16), "moments": c.moments.astype(np.float32),
              "aspect": (c.aspect if c.aspect is not None else np.ones(3)).astype(np.float32)}
    if c.colours is not None:
        arrays["colours"] = np.round(np.clip(c.colours, 0, 1) * 255).astype(np.uint8)
    return {prefix + name: value for name, value in arrays.items()}


def _read_cloud(npz, prefix: str) -> ShapeCloud:
    """The cloud ``_cloud_arrays`` stored under ``prefix``, its shapes, sizes and values checked
    (``ValueError`` otherwise, which ``from_bytes`` reports: the bytes may come from anywhere)."""
    points = npz[prefix + "points"].astype(np.float32)
    weights = npz[prefix + "weights"].astype(np.float32)
    normals = npz[prefix + "normals"].astype(np.float32)
    moments = npz[prefix + "moments"].astype(np.float32)
    aspect = npz[prefix + "aspect"].astype(np.float32)
    colours = npz[prefix + "colours"].astype(np.float32) / 255.0 if prefix + "colours" in npz.files else None
    n = len(points)
    if not (points.ndim == 2 and points.shape[1:] == (3,) and 4 <= n <= _MAX_POINTS
            and weights.shape == (n,) and normals.shape == (n, 3) and moments.shape == (3,) and aspect.shape == (3,)
            and (colours is None or colours.shape == (n, 3))):
        raise ValueError("arrays of the wrong shape")
    arrays = [points, weights, normals, moments, aspect] + ([colours] if colours is not None else [])
    if not all(np.isfinite(x).all() for x in arrays) or (weights < 0).any() or not weights.sum() > 0 \
            or not (aspect > 0).all():
        raise ValueError("non-finite or negative values")
    total = float(weights.sum())
    if abs(total - 1.0) > 1e-3:  # ours sum to 1; anything else is normalised (a round trip stays bit-exact)
        weights = (weights / total).astype(np.float32)
    return ShapeCloud(points, weights, colours, moments, normals, aspect)


@dataclass(frozen=True)
class CopyRule:
    """The thresholds of ``same_object`` (see the module docstring); defaults are the pinned protocol's."""

    geometry_max: float = 0.025
    smooth_max: float = 0.005
    colour_geometry_max: float = 0.08
    min_colour_agreement: float = 0.95
    view_max: float = 0.02
    relief_ratio: float = 0.1
    relief_geometry_max: float = 0.07
    detail_ratio: float = 1.55
    colour_histogram_max: float = 0.15
    min_pattern_agreement: float = 0.8
    pattern_geometry_max: float = 0.14
    max_aspect_change: float = 1.6

    def aspects_allow(self, a: ShapeCloud, b: ShapeCloud) -> bool:
        """True unless the two objects' proportions (principal spreads relative to their
        geometric mean) differ by more than ``max_aspect_change`` on some axis: whitening forgets
        any stretch, but a copy is stretched by at most +-25 % per axis (a factor of 1.4 here at
        worst), while a flat plate and a cube are not one object."""
        if a.aspect is None or b.aspect is None:
            return True
        gap = float(np.abs(np.log(a.aspect.astype(np.float64)) - np.log(b.aspect.astype(np.float64))).max())
        return gap <= float(np.log(self.max_aspect_change))

    def shape_bound(self, a: ShapeCloud, b: ShapeCloud) -> float:
        """The bent distance (``alignment.bent_distance``) under which two answers are one object
        by shape alone: the larger of ``relief_ratio`` of the smaller relief and ``detail_ratio``
        of the smaller fine detail, at most ``relief_geometry_max``.

        Relief (``cloud_evidence.relief``) because a lumpy sphere has little shape to tell it
        from another (honest blobs come within 0.010), a chair or a part a lot. Fine detail
        (``cloud_evidence.fine_detail``) because a smooth warp bends a detailed part without
        removing its detail, while honest seeds of a smooth primitive differ by smooth bumps
        and carry little detail: warped plain copies end at 0.89 of this bound at most (four draws
        of each warp), honest procedural cones at 1.16 of it at the closest (44 seeds)."""
        reliefs = min(relief(a), relief(b))
        details = min(fine_detail(a), fine_detail(b))
        return min(max(self.relief_ratio * reliefs, self.detail_ratio * details), self.relief_geometry_max)

    @classmethod
    def from_defences(cls, defences) -> "CopyRule":
        """From a ``DefenceSpec`` or a ``RewardConfig`` (anything with the fingerprint_* fields)."""
        return cls(geometry_max=float(defences.fingerprint_max_distance),
                   smooth_max=float(defences.fingerprint_max_smooth_distance),
                   colour_geometry_max=float(defences.fingerprint_colour_max_distance),
                   min_colour_agreement=float(defences.fingerprint_min_colour_agreement),
                   view_max=float(defences.fingerprint_view_max_distance),
                   relief_ratio=float(defences.fingerprint_relief_ratio),
                   relief_geometry_max=float(defences.fingerprint_relief_max_distance),
                   detail_ratio=float(defences.fingerprint_detail_ratio),
                   colour_histogram_max=float(defences.fingerprint_colour_histogram_max),
                   min_pattern_agreement=float(defences.fingerprint_min_pattern_agreement),
                   pattern_geometry_max=float(defences.fingerprint_pattern_max_distance),
                   max_aspect_change=float(defences.fingerprint_max_aspect_change))


def _protocol_defences():
    from text3d.reward.scoring_protocol import PROTOCOL

    return PROTOCOL.defences


DEFAULT_RULE = CopyRule.from_defences(_protocol_defences())
DEFAULT_BODY_REACH = float(_protocol_defences().fingerprint_body_reach)
"""The pinned protocol's body trim (``shape_cloud``): surface beyond this many principal spreads is not the object."""


@dataclass(frozen=True)
class Match:
    """What ``match`` measured: ``geometry`` (chamfer after alignment, whitened units; inf when
    the cheap stages alone showed the pair further apart than any bound could forgive),
    ``colour`` (aligned pattern agreement in [-1, 1] or None), ``views`` (RMS view distance
    or None when the answers were not rendered under one rig), ``histogram`` (colour
    histogram distance in [0, 1], None without colour patterns on both sides), ``bound``
    (the shape bound for this pair), ``bent`` (the distance once ``b`` may also bend, None when
    not needed), ``pattern`` and ``pattern_geometry`` (the second canonical colour correlation
    and the geometry once re-aligned by colour, ``alignment.colour_fit``; None when not
    needed), the verdict ``same``, and ``clouds``: which clouds it was decided on when a part
    decided it ("part0/body", "body/part1", "part0/part1", ...; None for body against body), and
    ``smooth`` (the geometry once each offset is averaged over its neighbours,
    ``alignment.smoothed_distance``: noise cancels, a bump does not; None when the geometry is over
    ``geometry_max`` or the cheap stages decided)."""

    geometry: float
    colour: float | None
    views: float | None
    same: bool
    histogram: float | None = None
    bound: float | None = None
    bent: float | None = None
    pattern: float | None = None
    pattern_geometry: float | None = None
    clouds: str | None = None
    smooth: float | None = None

    def as_dict(self) -> dict:
        r = lambda x, n: None if x is None else round(x, n)  # noqa: E731
        return {"geometry": r(self.geometry, 4), "colour": r(self.colour, 3), "views": r(self.views, 4),
                "histogram": r(self.histogram, 3), "bound": r(self.bound, 4), "bent": r(self.bent, 4),
                "pattern": r(self.pattern, 3), "pattern_geometry": r(self.pattern_geometry, 4), "same": self.same,
                "clouds": self.clouds, "smooth": r(self.smooth, 4)}


def view_fingerprint(images: Sequence[Image.Image], px: int = _VIEW_PX) -> np.ndarray:
    """[V, px, px, 3] float32 in [0, 1]: the views box-filtered down to ``px``."""
    return np.stack([np.asarray(img.convert("RGB").resize((px, px), Image.Resampling.BOX), dtype=np.float32) / 255.0
                     for img in images])


def view_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference of two view fingerprints of the same shape, in [0, 1]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"view fingerprints differ in shape: {a.shape} vs {b.shape}")
    return float(np.sqrt(np.mean((a - b) ** 2)))


def fingerprint(mesh: trimesh.Trimesh, images: Sequence[Image.Image] | None = None,
                rig_key: str | None = None, *, body_reach: float = DEFAULT_BODY_REACH) -> Fingerprint:
    """The fingerprint of ``mesh``, with the view fingerprint of ``images`` when given; ``body_reach``:
    ``shape_cloud``'s body trim (the pinned protocol's by default).

    Raises ``ValueError`` for a mesh without surface area.
    """
    views = view_fingerprint(images) if images else None
    body, parts = shape_clouds(mesh, body_reach=body_reach)
    return Fingerprint(body, views, rig_key if views is not None else None, parts)


def match(a: Fingerprint, b: Fingerprint, rule: CopyRule = DEFAULT_RULE) -> Match:
    """Measure ``a`` against ``b`` and judge them under ``rule`` (symmetric up to ICP's tolerance).

    Never raises: a comparison that fails (a bug of ours on some shape no test had; a flat
    answer did it until the alignment inverted singular maps) is logged with both digests and
    judged *not* the same object. Raising took down the step's whole copycat check, so one
    miner's mesh froze every miner's step; and a failure of ours must not cost the two miners
    their pay.

    The bodies first (``match_clouds``). When they are not one object and either answer has
    parts (a scene: ``Fingerprint.parts``), each part against the other's body, then each
    part against each of the other's parts, are judged too, in that order, and the first that
    is one object decides: a copy with a second object set beside it is still the copy. The
    views (one rig) are the answers', not the clouds'.
    """
    try:
        return _match(a, b, rule)
    except Exception:  # see the docstring: logged, and judged apart
        log.exception("copycat: comparing fingerprints %s and %s failed; judged different objects",
                      a.digest()[:12], b.digest()[:12])
        return Match(float("inf"), None, None, False)


def _match(a: Fingerprint, b: Fingerprint, rule: CopyRule) -> Match:
    """``match`` without its guard."""
    views = None
    if a.views is not None and b.views is not None and a.rig_key is not None and a.rig_key == b.rig_key \
            and a.views.shape == b.views.shape:
        views = view_distance(a.views, b.views)
    by_views = bool(views is not None and views <= rule.view_max)
    found = match_clouds(a.cloud, b.cloud, rule)
    if not (found.same or by_views):
        for name, x, y in _part_pairs(a, b):
            by_part = match_clouds(x, y, rule)
            if by_part.same:
                found = replace(by_part, clouds=name)
                break
    return replace(found, views=views, same=bool(found.same or by_views))


def _part_pairs(a: Fingerprint, b: Fingerprint) -> list[tuple[str, ShapeCloud, ShapeCloud]]:
    """(name, cloud of ``a``, cloud of ``b``) for every pair with a part in it, the parts
    against the other's body first ("part0/body", "body/part1", ...), then part against part."""
    pairs = [(f"part{k}/body", part, b.cloud) for k, part in enumerate(a.parts)]
    pairs += [(f"body/part{k}", a.cloud, part) for k, part in enumerate(b.parts)]
    pairs += [(f"part{i}/part{j}", x, y) for i, x in enumerate(a.parts) for j, y in enumerate(b.parts)]
    return pairs


def match_clouds(a: ShapeCloud, b: ShapeCloud, rule: CopyRule = DEFAULT_RULE) -> Match:
    """Measure cloud ``a`` against cloud ``b`` and judge them under ``rule`` by shape and colour
    (``views`` is None: views belong to answers, ``match``).

    Cheap evidence first: the reliefs give the shape-alone bound, the colour histograms say
    whether the colour paths are open at all; the alignment then runs only as far as the
    largest of the bounds can still be reached (``compare(..., reach=...)``), and the bend
    and the colour re-alignment only for pairs still undecided that they could decide.
    """
    bound = rule.shape_bound(a, b)
    histogram = colour_histogram_distance(a, b)
    colour_open = histogram is not None and histogram <= rule.colour_histogram_max
    pattern_open = colour_open and min(colour_dimensions(a), colour_dimensions(b)) >= 2
    reach = max(rule.geometry_max, bound / BEND_GAIN_MIN, rule.colour_geometry_max if colour_open else 0.0,
                rule.pattern_geometry_max if pattern_open else 0.0)
    profile_max = PATTERN_PROFILE_MAX if pattern_open else PROFILE_MAX
    if not rule.aspects_allow(a, b) or profile_distance(a, b) > profile_max:
        # proportions no cheap stretch explains, or radial profiles apart: cannot be copies, no alignment
        return Match(float("inf"), None, None, False, histogram, bound)
    found = compare(a, b, reach=reach)
    smooth = smoothed_distance(a, b, found) if found.geometry <= rule.geometry_max else None
    same = ((smooth is not None and smooth <= rule.smooth_max)
            or (colour_open and found.colour is not None and found.colour >= rule.min_colour_agreement
                and found.geometry <= rule.colour_geometry_max))
    bent = None
    if not same and found.geometry * BEND_GAIN_MIN <= bound:  # bending could bring it within the shape bound
        bent = bent_distance(a, b, found)
        same = bent <= bound
    pattern = pattern_geometry = None
    if not same and pattern_open and found.geometry <= rule.pattern_geometry_max:
        pattern_geometry, correlations = colour_fit(a, b, found)
        pattern = float(correlations[1])
        same = pattern >= rule.min_pattern_agreement and pattern_geometry <= rule.pattern_geometry_max
    return Match(found.geometry, found.colour, None, bool(same), histogram, bound, bent, pattern, pattern_geometry,
                 smooth=smooth)


def same_object(a: Fingerprint, b: Fingerprint, rule: CopyRule = DEFAULT_RULE) -> bool:
    """True when ``a`` and ``b`` are the same object under ``rule`` (see the module docstring)."""
    return match(a, b, rule).same


def parallel_map(fn: Callable, items: Sequence, workers: int | None = None) -> list:
    """``[fn(x) for x in items]`` on a few threads (in order); plain when one worker or few items."""
    workers = default_workers() if workers is None else max(1, workers)
    if workers == 1 or len(items) < 4:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="text3d-copies") as pool:
        return list(pool.map(fn, items))


def default_workers() -> int:
    """Threads for pairwise comparisons: the k-d tree queries and numpy work release the GIL."""
    return max(1, min(8, os.cpu_count() or 1))


def cluster_copies(
    fingerprints: Sequence[Fingerprint | None],
    same: Callable[[Fingerprint, Fingerprint], bool] = same_object,
    workers: int | None = None,
) -> list[list[int]]:
    """Groups of indices that are the same object, whatever order pairs are compared in.

    Callers order their inputs (by arrival: ``group[0]`` is the earliest). In input order,
    each answer joins the group of the EARLIEST group leader it is the same object as, or
    leads a new group. Leaders, not members, gather: a group is the leader and what copies
    it directly, so one honest pair judged alike by mistake costs one answer and never
    chains a whole step of similar honest answers into one group (connected components
    did: 44 of 64 honest blobs in one group, bench/copycat.py). A copy must therefore be
    close to the earliest answer of its group, which every deformation family is
    (tests/test_copycat_rules.py). Groups are sorted ascending and by their first index;
    singletons and ``None`` entries are left out. This is the one copycat rule: the
    validator's step and ``text3d dedupe`` both call it.

    Only the pairs the grouping reads are judged: each answer against the leaders before it
    (all of them at once, on ``workers`` threads, default ``default_workers()``; the verdict
    is the earliest leader judged alike, so the threads change nothing). A step of honest
    answers judges every pair, as before; a step packed with copies of one mesh judges each
    copy against its one leader, n - 1 pairs instead of n (n - 1) / 2, so flooding a step
    with copies does not buy the flooder the validator's time.
    """
    leaders: list[int] = []
    groups: dict[int, list[int]] = {}
    for j in range(len(fingerprints)):
        if fingerprints[j] is None:
            continue
        verdicts = parallel_map(lambda i: same(fingerprints[i], fingerprints[j]), leaders, workers)
        leader = next((i for i, alike in zip(leaders, verdicts) if alike), None)
        if leader is None:
            leaders.append(j)
            groups[j] = [j]
        else:
            groups[leader].append(j)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])
