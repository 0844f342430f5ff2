"""One generation earns once, whatever cheap deformation it wears; honest answers are never joined.

The copycat rule (``text3d.reward.defences.fingerprint``) must see one object in: a stretch
of up to +-25 % per axis, a tilt of +-10 deg, a turn about the up axis, a smooth warp of a
few percent of the size, subdivision, decimation, remeshing, re-encoding, vertex
permutation, jitter, mirroring, recolouring, hidden interior geometry, a small decoy beside
the object or far off, a second object beside it (alone or joined by a bar), and combinations,
on a box chair, a CAD part, a Shap-E-like blob and a tiny Shap-E mesh: within a step, as a
repeat for another prompt, and as a repeat after the validator restarts. And it must keep
apart: honest answers to one prompt from different seeds of every generator the project
ships, and distinct objects.

Attacks pinned (each fails on the previous main's rule, 0.02 by shape or 0.034-0.04 at colour
agreement 0.97, which missed 25 of the 96 copies -- warps of 3-5 %, jitter on fine meshes,
decimated and remeshed blobs, hidden geometry and combinations -- and let a packed box
chair earn twice): every family below, and the packing test, where ONE answer earns.

Measured (stated in docs/copycats.md): 96 of the 96 copies are joined (spec 0.1.3 let six
smooth warps of the two UNCOLOURED bases escape: their relief bound was below what a bend leaves).
Spec 0.1.4 scales the shape bound by fine detail too (``cloud_evidence.fine_detail``): a warp
bends a detailed part without smoothing it, while honest procedural seeds of one torus or cone
differ by smooth bumps and carry little detail. Warped plain copies land at 0.89 of the bound at
most (rng 1-4); the closest honest pair at 1.16 (cones, 946 pairs). Coloured copies are caught
whatever the warp: their colours stay with them, and the colour path asks for agreement 0.95
(procedural seeds of one prompt share a palette and agreed 0.83-0.93 at 0.058-0.069). Spec 0.1.5
re-aligns copies carrying two or more colours by their colours (``alignment.colour_fit``): warps
of coloured blobs, 40 of 624 draws missed by 0.1.4, are joined by their colour pattern.
Spec 0.1.7 fingerprints the answer's body only (``shape_cloud._body_mask``): a chip of 0.01-3 %
of the area placed 2-1,000 sizes off moved 0.1.6's frame so far that all 64 decoyed copies below
(four draws of the decoy families on the four bases) escaped, each stopped before the verdict
(its proportions, or its coarse fit, already too far off). Spec 0.1.8 starts the trim again from
the nearest nine tenths of the area, so a chip just beyond the object cannot stay by stretching
the spreads it is measured in (7 of 13 such escapes of a 560-draw sweep, and the copies of an
honest tiny Shap-E answer with a floating island, which 0.1.7 let escape 14 times in 15).
Spec 0.1.9 keeps a scene's *core part* beside its body (``shape_cloud._part_mask``): a second
object of 12-20 % of the area beside a copy stays in the body, as a scene's must, and under
0.1.8 none of 24 such copies was joined; judged part against body too, they are. Spec 0.1.10
keeps a second core part, from 55 % of the area and the median as well as the mean
(``shape_cloud._part_masks``): balls of 30-50 %, which 0.1.9 joined on 24 of 48 draws, are joined.
Spec 0.1.11 keeps the body's largest piece where empty space splits it (``shape_cloud._piece_masks``):
a chip or a ball close to an object that fills its bounding cube lies within the object's reach,
and all twelve such copies that escaped 0.1.10's sweeps are joined. Spec 0.1.12 splits it where a
long bar under three cells wide does too: the four balls on a bar that escaped 0.1.11 are joined.
"""

import io
import itertools

import numpy as np
import pytest

from tests import copycat_corpus as cc
from text3d.reward.defences.fingerprint import (
    DEFAULT_RULE,
    CopyRule,
    Fingerprint,
    cluster_copies,
    fingerprint,
    match,
    match_clouds,
    same_object,
    view_distance,
)
from text3d.reward.defences.shape_cloud import MAX_PARTS
from text3d.reward.render.camera import draw_secret_rig
from text3d.reward.render.views import get_renderer
from text3d.reward.scoring_protocol import PROTOCOL
from text3d.validator.repeats import RecentAnswers

FAMILIES = {**cc.DEFORMATIONS, **cc.COMBINATIONS}
BASES = ("chair", "cad part", "blob", "shap-e")
WARP_FAMILIES = ("warp 3%", "warp 5%", "stretch+tilt+warp+draco", "remesh+warp+stretch+turn")  # every family that warps
@pytest.fixture(scope="module")
def bases():
    return {name: (mesh, fingerprint(mesh)) for name, mesh in cc.copy_bases().items()}


@pytest.fixture(scope="module")
def deformed(bases):
    return {(name, family): fingerprint(deform(mesh, np.random.default_rng(1)))
            for (name, (mesh, _)), (family, deform) in itertools.product(bases.items(), FAMILIES.items())}


@pytest.fixture(scope="module")
def verdicts(bases, deformed):
    """(base, family) -> Match of the base against its deformed copy."""
    return {key: match(bases[key[0]][1], fp) for key, fp in deformed.items()}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_deformation_family_is_the_same_object(verdicts, family):
    for base in BASES:
        found = verdicts[(base, family)]
        assert found.same, f"{family} on the {base} escaped: {found.as_dict()}"


def test_smooth_warps_of_plain_meshes_are_joined_by_their_fine_detail_with_room_to_spare(bases, verdicts):
    """The uncoloured CAD part and tiny Shap-E mesh, warped by 3-5 %: no colour to help, and their
    relief bound (0.035 and 0.02) is below what a bend leaves (0.03-0.057). Their fine detail
    (0.046, 0.044) survives the warp, and the detail bound takes them at 0.85 of it at most
    (spec 0.1.3 let six of these escape)."""
    from text3d.reward.defences.cloud_evidence import relief

    bent, beyond_relief = [], 0
    for base in ("cad part", "shap-e"):
        relief_bound = DEFAULT_RULE.relief_ratio * relief(bases[base][1].cloud)
        for family in WARP_FAMILIES:
            found = verdicts[(base, family)]
            assert found.same and found.histogram is None, (base, family, found.as_dict())
            if found.bent is not None:
                bent.append(found.bent / found.bound)
                beyond_relief += found.bent > relief_bound  # relief alone would not join it
    assert beyond_relief >= 6 and max(bent) <= 0.9, bent


@pytest.mark.parametrize("rng_seed", [2, 3, 4])
def test_the_warp_and_turn_families_hold_for_other_draws_of_the_deformation(bases, rng_seed):
    """The families that come closest, drawn again: a new warp field, a new hidden blob. With rng 2
    the CAD part's two largest fourth moments came out 0.3 % apart, so its canonical frame was
    turned 40 deg from every quarter turn the alignment tried (geometry 0.178: an escape); with
    rng 3 the box chair's 5 % warp needed its 5th-8th best start. Tied moments now add in-between
    turns, and eight starts go on (alignment._candidate_starts, _STARTS). The coloured blob, whose
    5 % warp escaped spec 0.1.4 on 4 of 16 draws (rng 8, 9, 10, 12), is joined by its colour
    pattern (see test_warps_of_any_coloured_blob_are_joined_by_their_colour_pattern)."""
    families = (*WARP_FAMILIES, "hidden+turn+stretch+jitter")
    missed = {}
    for base in ("chair", "cad part", "blob", "shap-e"):
        mesh, original = bases[base]
        for family in families:
            found = match(original, fingerprint(FAMILIES[family](mesh, np.random.default_rng(rng_seed))))
            if not found.same:
                missed[(base, family)] = found.as_dict()
    assert not missed


@pytest.mark.parametrize("rng_seed", [1, 2])
def test_warped_and_recoloured_copies_of_objects_with_shape_are_joined(bases, rng_seed):
    """A warp of 2-5 % (alone, with a stretch, a tilt and Draco, or with a remesh and a turn)
    AND a recolouring: the colour paths stay closed (the chair's histogram moves past 0.15, the
    CAD part and the tiny Shap-E mesh carry no colour pattern), so shape alone must join them,
    and does (96 of 96 over rng 1-8, measured). The featureless coloured blob escapes this
    combination on every draw: honest blobs are as close once recoloured (docs/copycats.md,
    "Where it stops")."""
    missed = {}
    for base in ("chair", "cad part", "shap-e"):
        mesh, original = bases[base]
        for family in WARP_FAMILIES:
            rng = np.random.default_rng(rng_seed)
            found = match(original, fingerprint(cc.recolour(FAMILIES[family](mesh, rng), rng)))
            assert found.histogram is None or found.histogram > DEFAULT_RULE.colour_histogram_max, (base, family)
            if not found.same:
                missed[(base, family)] = found.as_dict()
    assert not missed


@pytest.mark.parametrize("blob_seed", [1, 3])
def test_warps_of_any_coloured_blob_are_joined_by_their_colour_pattern(blob_seed):
    """A featureless Shap-E-like blob, warped by 3-5 % of its size (alone or with a stretch, a tilt
    and Draco): its surface moves as far as honest blobs are apart and the shape-only alignment
    lands in a wrong turn, so spec 0.1.4 (colours compared at that pose, agreement 0.95 at
    geometry 0.08) let 28 of these 48 draws of two other blob seeds escape (0.76-0.95 colour
    agreement; rng 8 of seed 0's 5 % warp escaped at geometry 0.081). Re-aligned by colour
    (``alignment.colour_fit``) every copy's second colour direction agrees 0.85 or more at
    geometry 0.12 at most: all joined, by the pattern path where the other paths miss."""
    mesh = cc.coloured_sphere(20_000, seed=blob_seed)
    original = fingerprint(mesh)
    without_pattern = CopyRule(**{**DEFAULT_RULE.__dict__, "min_pattern_agreement": 2.0})  # the 0.1.4 rule
    missed, missed_before = {}, 0
    for family in ("warp 3%", "warp 5%", "stretch+tilt+warp+draco"):
        for rng_seed in (1, 5, 6, 8, 10, 12, 14, 16):
            copy = fingerprint(FAMILIES[family](mesh, np.random.default_rng(rng_seed)))
            found = match(original, copy)
            if not found.same:
                missed[(family, rng_seed)] = found.as_dict()
            missed_before += not match(original, copy, without_pattern).same
    assert not missed
    assert missed_before >= {1: 10, 3: 15}[blob_seed]  # the attack this pins: escapes without the pattern path


def test_canonical_colour_correlations_golden():
    """Eight colours at the corners of a cube of half-side s = 0.3 about mid-grey (three independent
    channels, each of variance s^2, equal weights), against: themselves, each direction at
    s^2 / (s^2 + 0.03^2) = 0.09 / 0.0909 = 0.990099 (the ridge holds it under 1); a recolouring
    (channels swapped, gains 1, 0.5, 0.25, a tint), a direction of gain g at s^2 g / sqrt((s^2 +
    0.0009)(s^2 g^2 + 0.0009)): 0.990099, 0.975714, 0.923869; and one brightness field shading
    one colour (rank one): its own direction only, the other two exactly 0."""
    from text3d.reward.defences.alignment import canonical_colour_correlations

    s, ridge = 0.3, 0.03**2
    corners = 0.5 + s * np.array(list(itertools.product((-1.0, 1.0), repeat=3)))
    weights = np.ones(8)
    np.testing.assert_allclose(canonical_colour_correlations(corners, corners, weights), [0.9900990099] * 3, atol=1e-9)
    recoloured = corners[:, [2, 0, 1]] * np.array([1.0, 0.5, 0.25]) + np.array([0.0, 0.1, 0.3])
    gains = np.array([1.0, 0.5, 0.25])
    expected = s**2 * gains / np.sqrt((s**2 + ridge) * (s**2 * gains**2 + ridge))
    np.testing.assert_allclose(expected, [0.990099, 0.975714, 0.923869], atol=1e-6)
    np.testing.assert_allclose(canonical_colour_correlations(corners, recoloured, weights), expected, atol=1e-9)
    shade = np.linspace(0.6, 1.0, 8)[:, None] * np.array([0.9, 0.2, 0.1])
    other = np.linspace(0.6, 1.0, 8)[::-1, None] * np.array([0.2, 0.8, 0.3])
    found = canonical_colour_correlations(shade, other, weights)
    assert found[0] > 0.9 and np.abs(found[1:]).max() < 1e-6


def test_a_one_colour_shade_never_opens_the_pattern_path_and_honest_blobs_stay_behind_the_histogram():
    """The pattern path needs two or more independent colour directions on both sides: the
    procedural backend shades one colour (its second direction under 0.001: none), a blob
    carries three. Honest blobs, whose colour fields are one family that can be turned to agree,
    are kept off every colour path by their histograms (0.25 apart at the closest of 946 pairs
    of 44 seeds; here 28 pairs of 8), above the gate of 0.15 that copies pass (0.05-0.13)."""
    from text3d.reward.defences.cloud_evidence import colour_dimensions, colour_histogram_distance

    assert [colour_dimensions(fingerprint(m).cloud) for m in cc.procedural_seeds("a green torus", range(4))] == [1] * 4
    blobs = [fingerprint(m).cloud for m in cc.blob_seeds(range(8))]
    assert all(colour_dimensions(c) == 3 for c in blobs)
    assert colour_dimensions(fingerprint(cc.repaint(cc.box_chair())).cloud) == 0
    closest = min(colour_histogram_distance(a, b) for a, b in itertools.combinations(blobs, 2))
    assert closest > 1.5 * DEFAULT_RULE.colour_histogram_max


def test_colour_only_adds_evidence_a_recoloured_or_repainted_copy_is_caught_by_shape(verdicts):
    """Colour and texture changes never save a copy: the recoloured and repainted families are
    joined with no colour evidence at all (the histograms differ, or one side is one flat colour)."""
    for base in BASES:
        for family in ("recolour", "repaint", "mirror+stretch+subdivide+recolour"):
            found = verdicts[(base, family)]
            assert found.same and (found.histogram is None or found.histogram > DEFAULT_RULE.colour_histogram_max)


def test_every_deformation_family_is_a_repeat_for_another_prompt_also_after_a_restart(bases, deformed):
    """The repeat memory (what each miner sent before) sees through every family as the step does,
    and so does the memory a restarted validator reads back from its sidecar bytes."""
    memory = RecentAnswers(answers_per_miner=4)
    for name, (_, fp) in bases.items():
        memory.add(name, 1, "a red chair", fp)
    restarted = RecentAnswers.from_bytes(memory.to_bytes(), answers_per_miner=4)
    assert restarted == memory
    for remembered in (memory, restarted):
        missed = [key for key, fp in deformed.items()
                  if remembered.repeat_of(key[0], "a golden crown", fp) is None]
        assert not missed
    assert all(memory.repeat_of(name, "A red  chair ", fp) is None for name, (_, fp) in bases.items())  # same prompt


def _pairs(fps):
    return [match(fps[i], fps[j]) for i, j in itertools.combinations(range(len(fps)), 2)]


@pytest.fixture(scope="module")
def honest():
    """Honest answers to one prompt from different seeds, per generator the project ships, and distinct objects."""
    groups = {
        "tiny Shap-E (8 seeds)": cc.tiny_shap_e_seeds("a red chair", range(8)),
        "Shap-E-like blobs (8 seeds)": cc.blob_seeds(range(8)),
        **{f"procedural {p!r} (6 seeds)": cc.procedural_seeds(p, range(6))
           for p in ("a red sphere", "a blue cube", "a green torus", "a yellow cone")},
        "distinct objects (12)": list(cc.distinct_objects().values()),
    }
    return {name: _pairs([fingerprint(m) for m in meshes]) for name, meshes in groups.items()}


def test_honest_answers_of_every_generator_are_never_joined(honest):
    """False-positive rate pair by pair: 0 of 182 pairs here (0 of 2,016 among 64 blob seeds in
    bench/copycat.py), and none near a bound: every honest pair the bend was tried on ends at
    least 1.05 of its relief bound, and the few whose colours agree (procedural seeds of one
    prompt share a palette) are far apart in shape."""
    rates = {name: (sum(m.same for m in pairs), len(pairs)) for name, pairs in honest.items()}
    assert all(false == 0 for false, _ in rates.values()), rates
    assert sum(n for _, n in rates.values()) == 28 + 28 + 4 * 15 + 66
    every = [m for pairs in honest.values() for m in pairs]
    assert all(m.smooth is None or m.smooth > DEFAULT_RULE.smooth_max for m in every)
    assert min(m.geometry for m in every) > 3 * DEFAULT_RULE.smooth_max  # 0.0184: honest pairs keep 0.8 of it smoothed
    assert all(m.bent / m.bound >= 1.05 for m in every if m.bent is not None)
    colour_open = [m for m in every if m.histogram is not None and m.histogram <= DEFAULT_RULE.colour_histogram_max
                   and m.colour is not None and m.colour >= DEFAULT_RULE.min_colour_agreement]
    assert all(m.geometry > DEFAULT_RULE.colour_geometry_max for m in colour_open), [m.as_dict() for m in colour_open]


def remesh_jitter_repaint(mesh, rng):
    """Remeshed, jittered by 0.3 % of the size and painted one colour: the remeshing twin of the
    ``decimate+jitter+repaint`` copy family."""
    return cc.repaint(cc.jitter(cc.remesh(mesh), 0.003, rng))


# Honest Shap-E-like blob seeds that spec 0.1.12 joined by shape alone (geometry 0.0099-0.0148, under its
# floor of 0.015): ten of 41,500 random pairs of seeds 0-2999, every one with other colours (histograms
# 0.46-0.89 apart). Lumpy spheres are one family, and among thousands of seeds some pairs come within
# the noise of a jittered copy by the chamfer distance; what is left between them is whole bumps.
HONEST_BLOB_PAIRS_JOINED_BY_0_1_12 = ((2140, 2627), (535, 644), (610, 1319), (144, 2627), (682, 883),
                                      (976, 2554), (1205, 1292), (2199, 2559), (49, 201), (2331, 2779))


def test_honest_blobs_within_the_old_shape_floor_stay_apart():
    """The ten honest blob pairs that 0.1.12 joined, all within its shape floor: the smoothed
    distance (offsets averaged over 24 neighbours) keeps 0.8 of what separates them (0.0081-0.0119,
    over 0.005; where the alignment now settles elsewhere, beyond the plain cap of 0.025), while
    the copies the floor is for, jittered, decimated or remeshed and repainted, keep 0.3-0.7 of
    theirs and stay joined (0.0020-0.0032 for a 0.5 % jitter)."""
    fps = {s: fingerprint(cc.coloured_sphere(20_000, seed=s)) for s in {x for p in HONEST_BLOB_PAIRS_JOINED_BY_0_1_12 for x in p}}
    for a, b in HONEST_BLOB_PAIRS_JOINED_BY_0_1_12:
        found = match(fps[a], fps[b])
        assert found.histogram > DEFAULT_RULE.colour_histogram_max, (a, b, found.as_dict())  # no colour path
        assert not found.same and (found.smooth is None or found.smooth > DEFAULT_RULE.smooth_max), (a, b, found.as_dict())
    repainted = {"jitter 0.5%": lambda m, r: cc.repaint(cc.jitter(m, 0.005, r)),
                 "remesh+jitter": remesh_jitter_repaint,
                 "decimate+tilt+permute": FAMILIES["decimate+tilt+repaint+permute"]}
    for seed in (1, 3):
        mesh = cc.coloured_sphere(20_000, seed=seed)
        original = fingerprint(mesh)
        for name, deform in repainted.items():
            found = match(original, fingerprint(deform(mesh, np.random.default_rng(1))))
            assert found.same and found.smooth <= DEFAULT_RULE.smooth_max, (seed, name, found.as_dict())
            if name == "jitter 0.5%":  # beyond the bend's bound and the smoothed floor: only it joins this copy
                assert found.geometry > max(found.bound, DEFAULT_RULE.smooth_max), (seed, found.as_dict())


# Blobs decimated (cluster decimation) or remeshed, jittered by 0.3 % of the size and painted one colour:
# (blob seed, way, rng seeds) of the draws 0.1.12 aligned in a wrong turn, 0.022 or more from the original,
# and let escape (14 of 64 over seeds 0-3, eight draws each). Without colours only the blurred bumps say
# which turn is the copy's, and the field's cells cannot rank poses that close.
ROUND_BLOBS_TURNED_WRONG_BY_0_1_12 = ((0, "decimate", (1, 2, 3, 4, 5, 6, 7, 8)), (0, "remesh", (1, 3, 4, 5, 7)),
                                      (3, "remesh", (2,)))


def test_a_repainted_jittered_blob_is_aligned_from_every_orientation():
    """A pair of near-round clouds (no axis of either frame pinned down) is aligned from 256 turns
    spread over every orientation too, and every start still going after the field's ICP takes
    the exact steps: the 14 draws end 0.005-0.008 from their original, joined by shape alone."""
    ways = {"decimate": FAMILIES["decimate+jitter+repaint"], "remesh": remesh_jitter_repaint}
    for seed, way, draws in ROUND_BLOBS_TURNED_WRONG_BY_0_1_12:
        mesh = cc.coloured_sphere(20_000, seed=seed)
        original = fingerprint(mesh)
        for draw in draws:
            found = match(original, fingerprint(ways[way](mesh, np.random.default_rng(draw))))
            assert found.same and found.geometry < 0.01 and found.histogram is None, (seed, way, draw, found.as_dict())


def test_the_smoothed_distance_golden():
    """Hand-computed, four points 10 apart on the plane z = 0 (normals +z and -z in turn: the sign
    of a normal must not matter) and the same four moved by z = (d, -d, d, 3d), equal weights, so
    every point's 24 nearest are all four. Chamfer: the mean |z| = 1.5 d both ways. Smoothed: the
    mean offset vector (0, 0, (1 - 1 + 1 + 3) d / 4) = (0, 0, d), length d both ways. Moved by
    (d, -d, d, -d) instead (noise): chamfer d, smoothed 0."""
    from scipy.spatial import cKDTree

    from text3d.reward.defences.alignment import _chamfer, _smoothed_chamfer
    from text3d.reward.defences.shape_cloud import ShapeCloud

    plane = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [10, 10, 0]], np.float64)
    a = ShapeCloud(plane.astype(np.float32), np.full(4, 0.25, np.float32), None, np.full(3, 1 / 3, np.float32),
                   np.array([[0, 0, 1], [0, 0, -1], [0, 0, 1], [0, 0, -1]], np.float32))
    d = 0.01
    for heights, chamfer, smoothed in (((d, -d, d, 3 * d), 1.5 * d, d), ((d, -d, d, -d), d, 0.0)):
        pb = plane + np.array([[0, 0, z] for z in heights])
        nb, wb = np.tile([0.0, 0.0, 1.0], (4, 1)), np.full(4, 0.25)
        tree_b = cKDTree(pb)
        dist, i_ba, i_ab = _chamfer(a, pb, nb, wb, tree_b)
        assert i_ba.tolist() == i_ab.tolist() == [0, 1, 2, 3]
        assert dist == pytest.approx(chamfer, abs=1e-9)
        assert _smoothed_chamfer(a, pb, nb, wb, tree_b, i_ba, i_ab) == pytest.approx(smoothed, abs=1e-9)


def test_procedural_seeds_of_one_torus_or_cone_stay_apart_at_scale():
    """16 seeds each of the two procedural prompts whose seeds come closest (bumps and a stretch of
    0.7-1.3 on one shape): 240 pairs, none joined, and no pair within 1.15 of the shape bound
    (1.23 at the closest; 1.16 over 44 seeds each). A bound of 0.185 of the relief (which caught
    5 % warps of plain meshes) joined 6 of them."""
    from text3d.reward.defences.alignment import bent_distance, compare

    closest = []
    for prompt in ("a green torus", "a yellow cone"):
        fps = [fingerprint(m) for m in cc.procedural_seeds(prompt, range(6, 22))]
        for a, b in itertools.combinations(fps, 2):
            found = match(a, b)
            assert not found.same, (prompt, found.as_dict())
            bent = bent_distance(a.cloud, b.cloud, compare(a.cloud, b.cloud))  # measured whatever the gates say
            closest.append(bent / DEFAULT_RULE.shape_bound(a.cloud, b.cloud))
    assert len(closest) == 240 and min(closest) > 1.15


@pytest.mark.parametrize("base", ["chair", "blob"])
def test_packing_one_mesh_into_dozens_of_variants_earns_once(bases, base):
    """Stretches of 0.90-1.10 on two axes and tilts of +-5 deg: 24 variants that look different
    side by side (on the previous main: the blob's earned once, the box chair's twice; before
    issue 17, 24 times). One group, in any order of arrival: ONE answer earns."""
    mesh, _ = bases[base]
    fps = [fingerprint(v) for v in cc.packing_variants(mesh, 24)]
    assert cluster_copies(fps) == [list(range(24))]
    order = np.random.default_rng(3).permutation(24)
    assert cluster_copies([fps[i] for i in order]) == [list(range(24))]


def test_a_flat_plate_and_a_cube_are_not_one_object_though_whitening_makes_them_alike():
    """Whitening forgets any stretch; the proportions gate remembers what a copy may change: +-25 %
    per axis is one object, a plate ten times wider than it is thick is not a cube (0.024 apart
    after whitening: under a cube's relief bound of 0.033 without the gate)."""
    cube = cc.distinct_objects()["box"]
    plate = cc.stretch(cube, (1.0, 0.1, 1.0))
    assert not match(fingerprint(cube), fingerprint(plate)).same
    assert not DEFAULT_RULE.aspects_allow(fingerprint(cube).cloud, fingerprint(plate).cloud)
    chair = cc.box_chair()
    squat = fingerprint(cc.stretch(chair, (1.25, 0.75, 1.0)))
    assert DEFAULT_RULE.aspects_allow(fingerprint(chair).cloud, squat.cloud) and same_object(fingerprint(chair), squat)


def test_views_catch_what_hides_inside_under_one_rig():
    """A copy stuffed with interior geometry renders the same pixels under the step's rig."""
    base = cc.coloured_sphere(8000, seed=0)
    stuffed = cc.hide_inside(base, np.random.default_rng(2))
    rig = draw_secret_rig(PROTOCOL, 3)
    renderer = get_renderer()
    a = fingerprint(base, renderer.render(base, 8, 128, rig), rig_key="r3")
    b = fingerprint(stuffed, renderer.render(stuffed, 8, 128, rig), rig_key="r3")
    c = fingerprint(cc.coloured_sphere(8000, seed=5), renderer.render(cc.coloured_sphere(8000, seed=5), 8, 128, rig),
                    rig_key="r3")
    assert view_distance(a.views, b.views) < PROTOCOL.defences.fingerprint_view_max_distance
    assert same_object(a, b) and not same_object(a, c)
    assert match(a, Fingerprint(b.cloud, b.views, "another rig")).views is None  # views only under one rig


def _winding_numbers(mesh, points: np.ndarray) -> np.ndarray:
    """The generalised winding number of a closed ``mesh`` at each point (0 outside, 1 inside, 2
    inside two overlapping solids): the solid angles of its triangles summed over 4 pi (Van
    Oosterom and Strackee). Written out because trimesh's ``contains`` needs rtree."""
    corners = np.asarray(mesh.vertices, np.float64)[np.asarray(mesh.faces)]
    out = []
    for p in np.asarray(points, np.float64):
        a, b, c = (corners[:, k] - p for k in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        det = np.einsum("ij,ij->i", a, np.cross(b, c))
        div = la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", b, c) * la \
            + np.einsum("ij,ij->i", c, a) * lb
        out.append(2.0 * np.arctan2(det, div).sum() / (4.0 * np.pi))
    return np.array(out)


def test_geometry_hidden_in_the_interior_is_inside_every_base_and_joined(bases):
    """The 'hidden in the interior' family hides its blob for real: every vertex of it lies
    inside the closed base (so no view can see it, unlike 'hidden inside', whose blob at the
    centre of mass sits in a torus's hole), and each copy is joined to its base. An object
    with no interior (an open sheet) cannot hide anything, and the family says so instead of
    adding a visible blob."""
    torus = cc.distinct_objects()["torus"]
    for name, mesh in [*((n, m) for n, (m, _) in bases.items()), ("torus", torus)]:
        copy = cc.hide_in_interior(mesh, np.random.default_rng(1))
        blob = np.asarray(copy.vertices)[len(mesh.vertices):]
        assert len(blob) > 1000 and mesh.is_watertight, name
        assert _winding_numbers(mesh, blob[::20]).min() > 1.0 - 1e-6, name  # 2 where the CAD part's boxes overlap
        assert same_object(fingerprint(mesh), fingerprint(copy)), name
    at_centre = np.asarray(cc.hide_inside(torus, np.random.default_rng(1)).vertices)[len(torus.vertices):]
    assert np.abs(_winding_numbers(torus, at_centre[::20])).max() < 1e-6  # in the hole: in plain view
    with pytest.raises(ValueError, match="no interior"):
        cc.hide_in_interior(cc.flat_sheet(), np.random.default_rng(1))


def test_copies_cluster_whatever_the_order_and_none_is_skipped():
    sphere, box = cc.distinct_objects()["sphere"], cc.distinct_objects()["box"]
    fps = [fingerprint(sphere), fingerprint(box), None, fingerprint(cc.stretch(sphere, (1.2, 1.0, 0.8))),
           fingerprint(cc.turn(sphere, 40.0, (1, 0, 0)))]
    assert cluster_copies(fps) == [[0, 3, 4]]
    assert cluster_copies([fps[4], fps[1], fps[3], None, fps[0]]) == [[0, 2, 4]]


def test_a_fingerprint_survives_its_own_serialisation_and_hostile_bytes_do_not_load():
    fp = fingerprint(cc.coloured_sphere(4000, seed=1))
    back = Fingerprint.from_bytes(fp.to_bytes())
    assert back.views is None and back.rig_key is None and len(back.cloud.points) == len(fp.cloud.points)
    np.testing.assert_allclose(back.cloud.aspect, fp.cloud.aspect)
    assert same_object(fp, back) and match(fp, back).geometry < 0.005
    assert len(fp.to_bytes()) < 40_000  # what the repeat memory keeps per answer
    assert fp.parts == () and back.parts == ()  # one object: no core part, nothing more stored
    scene = fingerprint(cc.add_object(cc.box_chair(), 2.0, 0.2, np.random.default_rng(1)))
    kept = Fingerprint.from_bytes(scene.to_bytes())
    assert len(scene.parts) == 2 and [len(p.points) for p in kept.parts] == [len(p.points) for p in scene.parts]
    assert all(match_clouds(p, q).geometry < 0.005 for p, q in zip(scene.parts, kept.parts))
    assert len(scene.to_bytes()) < 120_000

    for junk in (b"\x80\x04not a fingerprint", fp.to_bytes()[:-40]):
        with pytest.raises(ValueError):
            Fingerprint.from_bytes(junk)

    def saved(**changes) -> bytes:
        arrays = dict(version=np.int32(10), rig_key=np.str_(""), points=np.ones((8, 3), np.float16),
                      weights=np.ones(8, np.float32), normals=np.ones((8, 3), np.float16),
                      moments=np.ones(3, np.float32), aspect=np.ones(3, np.float32))
        arrays.update(changes)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    assert len(Fingerprint.from_bytes(saved()).cloud.points) == 8  # the well-formed baseline loads
    assert Fingerprint.from_bytes(saved()).parts == ()
    part = dict(points=np.ones((8, 3), np.float16), weights=np.ones(8, np.float32), normals=np.ones((8, 3), np.float16),
                moments=np.ones(3, np.float32), aspect=np.ones(3, np.float32))

    def parts(*indices: int) -> dict:
        return {f"part{k}_{name}": value for k in indices for name, value in part.items()}

    assert len(Fingerprint.from_bytes(saved(**parts(0, 1))).parts) == 2  # well-formed parts load
    assert MAX_PARTS == 5 and len(Fingerprint.from_bytes(saved(**parts(*range(MAX_PARTS)))).parts) == MAX_PARTS
    for hostile, reason in ((dict(points=np.full((8, 3), np.nan, np.float16)), "non-finite"),
                            (dict(aspect=np.array([1.0, 0.0, -1.0], np.float32)), "non-finite or negative"),
                            (dict(aspect=np.ones(4, np.float32)), "wrong shape"),
                            (dict(version=np.int32(2)), "unknown fingerprint version"),
                            (dict(version=np.int32(3)), "unknown fingerprint version"),
                            (dict(version=np.int32(4)), "unknown fingerprint version"),
                            (dict(version=np.int32(5)), "unknown fingerprint version"),
                            (dict(version=np.int32(6)), "unknown fingerprint version"),
                            (dict(version=np.int32(7)), "unknown fingerprint version"),
                            (dict(version=np.int32(8)), "unknown fingerprint version"),
                            (dict(version=np.int32(9)), "unknown fingerprint version"),
                            (dict(part0_points=np.ones((8, 3), np.float16)), "part0_weights"),
                            ({**parts(0), "part0_colours": np.ones((9, 3), np.uint8)}, "wrong shape"),
                            ({**parts(0), "part0_points": np.full((8, 3), np.inf, np.float16)}, "non-finite"),
                            (parts(1), "out of order"),
                            (parts(*range(MAX_PARTS + 1)), "too many")):
        with pytest.raises(ValueError, match=reason):
            Fingerprint.from_bytes(saved(**hostile))


def six_points_and_a_chip(share: float, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """(points, weights): a body of six samples at +-1 on each axis, replicated past the trim's
    16-sample floor and carrying 1 - ``share``, and a chip of weight ``share`` on the x axis at
    ``distance``: the hand-computed cases of the body trim's golden tests."""
    body = np.repeat(np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float), 4, axis=0)
    return (np.vstack([body, [[distance, 0.0, 0.0]]]),
            np.append(np.full(len(body), (1.0 - share) / len(body)), share))


def test_the_body_trim_golden():
    """Hand-computed: a body of six samples at +-1 on each axis (weight 0.99 / 6 each, spreads
    sqrt(0.33) about its centre) and a decoy of weight 0.01 on the x axis at distance L.
    Mean x = 0.01 L; var x = 0.99 / 3 + 0.01 * 0.99 * L^2; the decoy lies 0.99 L / sqrt(var x)
    spreads out: 9.93 at L = 100 and 4.59 at L = 3 (beyond 3.5: dropped, and the body then keeps
    all six, each sqrt(3) = 1.73 out); at weight 0.05 and L = 2, 1.9 / sqrt(0.95 / 3 + 0.19) =
    2.67 in the plain trim and 2 / sqrt(1 / 3) = 3.46 in the body's own spreads (kept either way).
    The y and z spreads, 0.33 against var x = 99.3 at L = 100, are clamped to (0.2^2) * 99.3 =
    3.97 first, so the body's samples are within 0.51 of the centre then."""
    from text3d.reward.defences.shape_cloud import _body_mask, _reach_trim

    def mask(decoy_weight: float, distance: float) -> np.ndarray:
        return _body_mask(*six_points_and_a_chip(decoy_weight, distance), 3.5)

    assert mask(0.01, 100.0).tolist() == [True] * 24 + [False]
    assert mask(0.01, 3.0).tolist() == [True] * 24 + [False]
    assert mask(0.05, 2.0).all()
    # the plain trim's bound itself: at 4.6 it keeps the decoy at L = 3 (4.59 out), at 4.58 it drops it
    points, weights = six_points_and_a_chip(0.01, 3.0)
    everything = np.ones(len(points), bool)
    assert _reach_trim(points, weights, 4.6, everything).all() and not _reach_trim(points, weights, 4.58, everything).all()


def test_the_body_trim_starts_again_from_a_frame_a_near_chip_cannot_pull():
    """Hand-computed, the body above (six points at +-1, spreads sqrt(1/3) = 0.577) and a chip of
    weight f on the x axis at L = 2.5. At f = 0.05 the plain trim measures it in spreads it
    stretched itself: mean x = 0.125, var x = 0.95 (1/3 + 0.125^2) + 0.05 * 2.375^2 = 0.614, so
    2.375 / 0.783 = 3.03 out, kept; the nearest nine tenths of the area are the body alone, in
    whose spreads it lies 2.5 / 0.577 = 4.33 out: dropped (the plain trim at reach 4.6 keeps the
    decoy at L = 3, 4.59 out; in the body's spreads it is 5.20 out). At f = 0.1 the part also lies
    4.33 out, but it carries more than 1 / (1 + 3.5^2) = 7.5 % of the area, more than any far
    decoy the plain trim drops: a second large part of a scene, which stays."""
    from text3d.reward.defences.shape_cloud import _body_mask

    def mask(share: float, distance: float, reach: float = 3.5) -> np.ndarray:
        return _body_mask(*six_points_and_a_chip(share, distance), reach)

    assert mask(0.05, 2.5).tolist() == [True] * 24 + [False]
    assert mask(0.01, 3.0, reach=4.6).tolist() == [True] * 24 + [False]
    assert mask(0.1, 2.5).all()
    assert mask(0.05, 2.0).all()  # 3.46 out in the body's own spreads: inside the reach, part of the object


def test_the_core_part_golden():
    """Hand-computed, the body of six points at +-1 (spreads sqrt(1/3) = 0.577) and a second part of
    weight f on the x axis at L = 2.5. At f = 0.15 it carries more than 1 / (1 + 3.5^2) = 7.5 % of
    the area, so the body keeps it (``_body_mask``, a scene's second object); the core part starts
    from three quarters of the area: over every sample the part's x offset 2.125 from the mean
    0.375 is 2.125 / sqrt(0.85 (1/3 + 0.375^2) + 0.15 * 2.125^2) = 2.125 / 1.039 = 2.04 spreads, the
    farthest (the +-y, +-z points: sqrt(0.36^2 + 1.88^2) = 1.91), so the nearest 0.75 are the six
    body points (cumulative 0.85 at the sixth), in whose spreads the part lies 2.5 / 0.577 = 4.33
    out: dropped. At f = 0.05 the body drops it itself (under 7.5 %) and there is no core part;
    at L = 2, 2 / 0.577 = 3.46 out, within reach: one object, no core part either."""
    from text3d.reward.defences.shape_cloud import _body_mask, _part_mask

    def masks(share: float, distance: float):
        points, weights = six_points_and_a_chip(share, distance)
        body = _body_mask(points, weights, 3.5)
        return body, _part_mask(points, weights, 3.5, body, 0.75)

    body, part = masks(0.15, 2.5)
    assert body.all() and part.tolist() == [True] * 24 + [False]
    body, part = masks(0.05, 2.5)
    assert body.tolist() == [True] * 24 + [False] and part is None
    body, part = masks(0.15, 2.0)
    assert body.all() and part is None


def sphere_and_ball(share: float, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """(points, weights): 3,000 samples of a unit sphere's surface carrying 1 - ``share`` of the
    area and a ball carrying ``share`` (radius sqrt(share / (1 - share)), the area of a sphere
    growing with its radius squared) ``distance`` radii off on the x axis."""
    directions = np.random.default_rng(0).normal(size=(3000, 3))
    sphere = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    ball = np.array([distance, 0.0, 0.0]) + np.sqrt(share / (1.0 - share)) * sphere
    return (np.vstack([sphere, ball]),
            np.concatenate([np.full(3000, (1.0 - share) / 3000), np.full(3000, share / 3000)]))


def test_a_second_object_of_two_fifths_is_left_out_only_by_the_smaller_core():
    """A unit sphere carrying 60 % of the area and a ball of 40 % four radii off. A core of three
    quarters of the area must take in at least 0.75 - 0.6 = 15 % of the ball, the trim from there
    reaches the rest of it, and there is no core part; a core of 55 % fits inside the sphere
    (0.55 < 0.6), in whose spreads (sqrt(1/3) = 0.577 of the radius) the ball lies at least
    (4 - 0.82) / 0.577 = 5.5 out: dropped, and the core part is the sphere, the second of
    ``_PART_CORES``. Measured from the mean alone the 55 % core settles across both (the
    compact ball lies nearer the mean, in the spreads of both, than the sphere's rim), so it is
    also started from the median (``_part_mask(from_median=True)``). With a ball of 15 % both
    shares leave out the same ball: one cloud, not two."""
    from text3d.reward.defences.shape_cloud import _PART_CORES, _body_mask, _part_mask, _part_masks

    points, weights = sphere_and_ball(0.4, 4.0)
    body = _body_mask(points, weights, 3.5)
    assert body.all() and _PART_CORES == ((0.75, False), (0.55, True))
    assert _part_mask(points, weights, 3.5, body, 0.75) is None
    assert _part_mask(points, weights, 3.5, body, 0.55) is None  # from the mean alone: across both
    part = _part_mask(points, weights, 3.5, body, 0.55, from_median=True)
    assert part is not None and part.tolist() == [True] * 3000 + [False] * 3000
    assert [m.tolist() for m in _part_masks(points, weights, 3.5, body)] == [part.tolist()]
    points, weights = sphere_and_ball(0.15, 4.0)
    assert [m.tolist() for m in _part_masks(points, weights, 3.5, np.ones(6000, bool))] == [[True] * 3000 + [False] * 3000]


def test_the_piece_part_golden():
    """Hand-computed, a unit sphere and a ball on the x axis (``sphere_and_ball``) on the body's
    grid of 32 cells along the longest side. A ball of 40 % (radius 0.8165) 2 radii off: the box
    spans x from -1 to 3.8165, so a cell is 0.1193 wide; the sphere's samples end in cell 16
    (2 / 0.1193 = 16.8) and the ball's begin in cell 18 (2.1835 / 0.1193 = 18.3): not touching, two
    pieces at a gap of 0 cells, and one once grown by a cell (both reach cell 17). The largest
    piece is the sphere, 60 % of the area: a part. In the spreads of the whole (or of any core of
    it) the ball's near side is within reach, so the cores find no part at all: the ball lies
    within the object's reach, and only the empty space sets it apart. 1.9 radii off (the gap,
    0.08, narrower than a cell) it is one piece. A ball of 55 % 2.6 radii off (cells 13 and 16) is
    the larger piece: the part is the ball, never the smaller object. A chip of 0.4 % leaves out
    less than 0.5 % (``_CORE_SETTLED``): no part; of 1 %, the sphere is a part."""
    from text3d.reward.defences.shape_cloud import (_BODY_CELLS, _PIECE_GAPS, _PIECE_MIN_SHARE, _body_cells, _part_mask,
                                                    _piece_masks, _pieces)

    def parts(share: float, distance: float) -> list[list[bool]]:
        points, weights = sphere_and_ball(share, distance)
        return [m.tolist() for m in _piece_masks(points, weights, np.ones(6000, bool))]

    sphere, ball = [True] * 3000 + [False] * 3000, [False] * 3000 + [True] * 3000
    assert _PIECE_GAPS == (0, 1) and _PIECE_MIN_SHARE == 0.5 and _BODY_CELLS == 32
    points, weights = sphere_and_ball(0.4, 2.0)
    everything = np.ones(6000, bool)
    cells = _body_cells(points)[2]
    assert cells[:3000, 0].max() == 16 and cells[3000:, 0].min() == 18 and len(_pieces(cells)) == 1
    assert all(_part_mask(points, weights, 3.5, everything, share, from_median) is None
               for share, from_median in ((0.75, False), (0.55, True)))
    assert parts(0.4, 2.0) == [sphere]
    assert parts(0.4, 1.9) == []
    assert parts(0.55, 2.6) == [ball]
    assert parts(0.004, 2.0) == []
    assert parts(0.01, 2.0) == [sphere, sphere]  # apart at both gaps: _part_masks keeps one


def cube_bar_cube(distance: float) -> tuple[np.ndarray, np.ndarray]:
    """(points, weights): 3,000 samples of the surface of the cube [-1, 1]^3 carrying 60 % of the
    area, 2,000 of a cube carrying 40 % (side 2 sqrt(0.4 / 0.6) = 1.633) ``distance`` off on the x
    axis, and 100 of a bar along the x axis from one to the other carrying 1 %."""
    rng = np.random.default_rng(0)

    def cube_surface(n: int, half: float, centre: float) -> np.ndarray:
        points = rng.uniform(-half, half, size=(n, 3))
        axis = np.arange(n) % 3
        points[np.arange(n), axis] = np.where(np.arange(n) % 2 == 0, half, -half)  # onto one of the six faces
        return points + np.array([centre, 0.0, 0.0])

    half = float(np.sqrt(0.4 / 0.6))
    bar = np.zeros((100, 3))
    bar[:, 0] = np.linspace(1.0, distance - half, 102)[1:-1]
    return (np.vstack([cube_surface(3000, 1.0, 0.0), cube_surface(2000, half, distance), bar]),
            np.concatenate([np.full(3000, 0.6 / 3000), np.full(2000, 0.4 / 2000), np.full(100, 0.01 / 100)]))


def test_the_bar_piece_golden():
    """Hand-computed on the body's grid of 32 cells along the longest side: two cubes joined by a
    bar one cell wide (``cube_bar_cube``). 5 sizes apart the box spans x from -1 to 5.8165, a cell
    is 0.21302 wide, the large cube fills cells 0-9 on every axis (2 / 0.21302 = 9.39) and the
    small one cells 24-31 along x (5.1835 / 0.21302 = 24.3). The bar joins them, so empty space
    splits nothing. Filled and opened by one cell, the solid is the two cubes (a box of cells at
    least three wide is unchanged by the opening) and the bar is gone; grown back by
    ``_BRIDGE_GROW`` = 2 cells they reach cells 11 and 22: still apart, two pieces. The larger,
    60 % of the area, takes the bar's samples within ``_BRIDGE_MEMBER_GROW`` = 1 cell of its
    opened solid, cells 9-10, those with x below -1 + 11 x 0.21302 = 1.343: the part is the large
    cube and the bar's first 0.343 sizes (0.1.13 took cell 11 too). 2.4 sizes apart (a cell
    0.13177 wide, the cubes in cells 0-15 and from 19 on) the bar is three cells long, the pieces
    grown back by two touch, and there is no part: a thin joint between near parts, as a chair's
    posts are, never makes a scene."""
    from text3d.reward.defences.shape_cloud import (_BODY_CELLS, _BRIDGE_GROW, _BRIDGE_MEMBER_GROW, _body_cells,
                                                    _pieces, _piece_masks)

    assert _BODY_CELLS == 32 and _BRIDGE_GROW == 2 and _BRIDGE_MEMBER_GROW == 1
    points, weights = cube_bar_cube(5.0)
    cells = _body_cells(points)[2]
    assert cells[:3000].max() == 9 and cells[3000:5000, 0].min() == 24 and cells[5000:, 1:].min() == 4
    assert len(_pieces(cells)) == 1  # the bar's split only: empty space splits nothing
    expected = np.zeros(5100, bool)
    expected[:3000] = True
    expected[5000:] = points[5000:, 0] < -1.0 + 11 * (6.0 + float(np.sqrt(0.4 / 0.6))) / 32
    assert 3 < expected[5000:].sum() < 15  # the bar's samples of cells 9-10
    assert [m.tolist() for m in _piece_masks(points, weights, np.ones(5100, bool))] == [expected.tolist()]
    points, weights = cube_bar_cube(2.4)
    cells = _body_cells(points)[2]
    assert cells[:3000].max() == 15 and cells[3000:5000, 0].min() == 19
    assert _piece_masks(points, weights, np.ones(5100, bool)) == []


def test_copies_of_an_honest_answer_with_a_floating_island_are_one_object():
    """The tiny Shap-E generator's seed 6 makes a floating island of about 5 % of the area, 3-4
    spreads off the rest: inside the plain trim's reach only because it stretches the spreads
    itself. A copy stretched, warped or with geometry hidden inside tipped it in or out, and
    spec 0.1.7 let 14 of these 15 copies escape (65 of 84 over every family, three draws). The
    robust start drops the island from original and copies alike."""
    from text3d.reward.defences.shape_cloud import _body_mask, surface_samples

    mesh = cc.tiny_shap_e_seeds("a red chair", [6])[0]
    original = fingerprint(mesh)
    missed = []
    for family in ("stretch 0.75/1.25", "warp 3%", "hidden inside", "hidden+turn+stretch+jitter",
                   "mirror+stretch+subdivide+recolour"):
        for draw in (1, 2, 3):
            found = match(original, fingerprint(FAMILIES[family](mesh, np.random.default_rng(draw))))
            if not found.same:
                missed.append((family, draw, found.as_dict()))
    assert not missed, f"{len(missed)} of 15 copies escaped: {missed}"
    points, weights, _, _ = surface_samples(mesh)
    island = weights[~_body_mask(points, weights, PROTOCOL.defences.fingerprint_body_reach)].sum() / weights.sum()
    assert 0.03 < island < 0.07


def test_what_honest_generators_make_is_all_body():
    """The trim never touches an honest answer of ours: every sample of the copy bases and of
    honest seeds of each generator lies within 3.5 spreads (the box chair at 3.19 the farthest:
    its legs' feet), and none has a core part (one object, nothing more stored or compared).
    Real files can reach past it: 5 of trimesh's 115 sample models lose some area (5 % at most:
    several parts far apart), and their copies the same; 3 are scenes with a core part."""
    from text3d.reward.defences.shape_cloud import _body_mask, surface_samples

    meshes = [*cc.copy_bases().values(), *cc.procedural_seeds("a torus", [1, 2]), *cc.procedural_seeds("a cone", [1, 2]),
              *cc.blob_seeds([3, 4]), *cc.tiny_shap_e_seeds("a wooden table", [1, 2])]
    for mesh in meshes:
        points, weights, _, _ = surface_samples(mesh)
        assert _body_mask(points, weights, PROTOCOL.defences.fingerprint_body_reach).all()
        assert fingerprint(mesh).parts == ()


DECOYS = [*itertools.product((2.0, 10.0, 1e3, 1e6), (1e-4, 1e-3, 1e-2, 3e-2), (False, True)),
          *itertools.product((1.0, 1.25, 1.5), (1e-4, 1e-3), (False, True)),
          *itertools.product((1.5,), (1e-2, 3e-2, 5e-2), (False, True)),
          *itertools.product((1.0, 1.25), (1e-2, 3e-2, 5e-2), (False, True))]


@pytest.mark.parametrize("base", BASES)
def test_a_decoy_beside_or_far_off_does_not_make_a_copy_another_object(bases, base):
    """A chip of 0.01 % to 3 % of the area two to a million sizes from the centre, of up to 0.1 %
    nearer (1-1.5 sizes: just beyond the object), or of 1-5 % at 1-1.5 sizes, plain or crumpled: the
    same object (spec 0.1.6 let 114 of the first 176 escape). A chip of 1-5 % at 1-1.25 sizes lies
    within the body's reach even in the body's own spreads and moved the alignment on some draws
    (two of these on the tiny Shap-E mesh, 6 of 560 in a sweep under 0.1.8 to 0.1.10); since 0.1.11
    the body's largest piece is judged too, which empty space sets apart from the chip. A second
    object of 12 % of the area or more beside the copy stays in the body and is judged by the
    copy's parts (test_a_second_object_beside_a_copy_...)."""
    mesh, original = bases[base]
    missed = {}
    for k, (distance, share, crumpled) in enumerate(DECOYS):
        copy = cc.add_decoy(mesh, distance, share, np.random.default_rng(k), crumpled)
        found = match(original, fingerprint(copy))
        if not found.same:
            missed[(distance, share, crumpled)] = found.as_dict()
    assert not missed


SECOND_OBJECTS = [*itertools.product((1.5, 2.0, 10.0), (0.12, 0.2), (False, True)),
                  *itertools.product((2.0, 3.0), (0.3, 0.4, 0.5), (False, True))]


@pytest.mark.parametrize("base", BASES)
def test_a_second_object_beside_a_copy_does_not_make_it_another_object(bases, base):
    """A grey ball of 12 % to half of the area 1.5 to 10 sizes from the copy, alone or joined to it
    by a bar 3 % of the size wide: more than a decoy, so it stays in the body as a scene's second
    object must, and the copy's body is another object. The copy's core part is the original:
    joined, part against body. Of the 48 draws of 12-20 % spec 0.1.8 joined none of the 24 unbridged,
    0.1.9 all but two (a 20 % ball on a 10-size bar, the bar carrying another fifth of the area, on
    the chair and the CAD part); of the 48 draws of 30-50 % 0.1.9 joined 24 (a core of three quarters
    cannot leave out more than a quarter), 0.1.10 all but one (its second core, of 55 %, started
    from the median too). Not pinned, that one: the tiny Shap-E mesh with a ball of half its area
    2 sizes off on a bar."""
    mesh, original = bases[base]
    missed, by_body = {}, 0
    for k, (distance, share, bridged) in enumerate(SECOND_OBJECTS):
        if (base, distance, share, bridged) == ("shap-e", 2.0, 0.5, True):
            continue
        copy = fingerprint(cc.add_object(mesh, distance, share, np.random.default_rng(7000 + k), bridged))
        found = match(original, copy)
        if not found.same:
            missed[(distance, share, bridged)] = found.as_dict()
        by_body += match_clouds(original.cloud, copy.cloud).same
    assert not missed
    assert by_body == 0  # the body alone is another object: the core parts decide


# chips that escaped spec 0.1.7 in a sweep of 560 (0.01-5 % of the area at 1 to 1e6 sizes, plain or
# crumpled, two draws each on the four bases: 13 escaped 0.1.7, 6 escape 0.1.8, none newly): base,
# distance in sizes, share of the area, crumpled, the draw's seed. A dishonest miner searches for such a draw.
NEAR_CHIPS_THAT_ESCAPED_0_1_7 = [("cad part", 1.0, 0.03, True, 5014), ("cad part", 1.5, 0.05, True, 5059),
                                 ("blob", 1.0, 0.05, True, 5018), ("blob", 1.25, 0.05, True, 5039),
                                 ("shap-e", 1.25, 0.05, False, 5036), ("shap-e", 1.25, 0.05, False, 5037),
                                 ("shap-e", 1.5, 0.05, True, 5059)]


def test_near_chips_that_pulled_the_plain_trim_are_dropped_from_a_robust_start(bases):
    """Each of these chips lies beyond the body's reach in the body's own spreads but stretched
    the spreads it was measured in enough to stay (spec 0.1.7 let all seven escape); the trim
    started again from the nearest nine tenths of the area drops it, and the copy is joined."""
    missed = {}
    for base, distance, share, crumpled, seed in NEAR_CHIPS_THAT_ESCAPED_0_1_7:
        mesh, original = bases[base]
        found = match(original, fingerprint(cc.add_decoy(mesh, distance, share, np.random.default_rng(seed), crumpled)))
        if not found.same:
            missed[(base, distance, share, crumpled, seed)] = found.as_dict()
    assert not missed


# copies of the tiny Shap-E mesh (it fills its bounding cube) that escaped spec 0.1.10 in its sweeps: a chip of
# 1-5 % just beyond the object (the 560-draw sweep: distance in sizes, share, crumpled, the draw's seed) and a
# ball of 12-50 % 1.5 sizes off (the 384-draw sweep: distance, share, the draw's seed). A dishonest miner
# searches for such a draw.
CHIPS_WITHIN_REACH_THAT_ESCAPED_0_1_10 = [(1.0, 0.01, False, 5008), (1.0, 0.03, False, 5013), (1.0, 0.05, False, 5016),
                                          (1.0, 0.05, True, 5018), (1.25, 0.01, False, 5028), (1.25, 0.03, False, 5033)]
BALLS_WITHIN_REACH_THAT_ESCAPED_0_1_10 = [(1.5, 0.12, 9100), (1.5, 0.3, 9109), (1.5, 0.4, 9112), (1.5, 0.4, 9113),
                                          (1.5, 0.45, 9117), (1.5, 0.5, 9120)]
# balls on a bar 3 % of the size wide that escaped spec 0.1.11 in a sweep of 384 (12-50 % of the area at 1.5 / 2 /
# 3 / 10 sizes, alone or on a bar, two draws each on the four bases): base, distance, share, the draw's seed
BALLS_ON_A_BAR_THAT_ESCAPED_0_1_11 = [("cad part", 1.5, 0.12, 11098), ("shap-e", 1.5, 0.3, 11298),
                                      ("shap-e", 1.5, 0.3, 11299), ("shap-e", 3.0, 0.3, 11346)]


def test_what_lies_within_the_objects_reach_but_apart_is_left_out_by_empty_space(bases):
    """A chip or a ball close to an object that fills its bounding cube lies, in the spreads of the
    rest, as near as the object's own corners: the body keeps it, no core part leaves it out, and
    it tips the alignment (spec 0.1.10 let all twelve escape). Empty space still sets it apart: the
    body's largest piece (``shape_cloud._piece_masks``) is the original, joined part against body."""
    mesh, original = bases["shap-e"]
    copies = {("chip", distance, share, seed): cc.add_decoy(mesh, distance, share, np.random.default_rng(seed), crumpled)
              for distance, share, crumpled, seed in CHIPS_WITHIN_REACH_THAT_ESCAPED_0_1_10}
    copies |= {("ball", distance, share, seed): cc.add_object(mesh, distance, share, np.random.default_rng(seed))
               for distance, share, seed in BALLS_WITHIN_REACH_THAT_ESCAPED_0_1_10}
    missed = {}
    for key, copy in copies.items():
        found = match(original, fingerprint(copy))
        if not found.same:
            missed[key] = found.as_dict()
    assert not missed, f"{len(missed)} of {len(copies)} escaped: {sorted(missed)}"


def test_a_ball_on_a_long_bar_is_cut_off_at_the_bar(bases):
    """A bar joins the ball to the copy, so no empty space sets it apart, and the ball (12-30 %)
    tips both cores (spec 0.1.11 let all four escape). Opened by one cell the bar is gone, and the
    pieces stay apart grown back by two: the largest is the original, joined part against body."""
    missed = {}
    for base, distance, share, seed in BALLS_ON_A_BAR_THAT_ESCAPED_0_1_11:
        mesh, original = bases[base]
        found = match(original, fingerprint(cc.add_object(mesh, distance, share, np.random.default_rng(seed), True)))
        if not found.same:
            missed[(base, distance, share, seed)] = found.as_dict()
    assert not missed, f"{len(missed)} of {len(BALLS_ON_A_BAR_THAT_ESCAPED_0_1_11)} escaped: {sorted(missed)}"


# (object of copycat_corpus.distinct_objects, draws of add_object's rng) whose ball on a bar escaped 0.1.13:
# the piece kept the bar's stub, two cells long, and a plain round object has a tight bound
# (cylinder draw 2 escaped too, and still does: the cylinder's symmetry gives equally good turns, and the
# one the search keeps bends to 0.0152 against a bound of 0.0143)
BALLS_ON_A_BAR_THAT_ESCAPED_0_1_13 = [("sphere", (1, 2, 4, 5)), ("cylinder", (1, 3)), ("annulus", (2, 4)),
                                      ("torus", (5,))]


def test_a_ball_on_a_bar_leaves_no_stub_of_the_bar_in_the_object():
    """The bar cut splits the copy into the object and the ball, but the object's piece kept every
    sample within the two cells the pieces were grown back by, the bar's first two cells among them.
    On a plain round object that stub alone ends the piece outside the object's tight bound (spec
    0.1.13 let all nine draws escape; on trimesh's real files 79 of 168). A sample now belongs to a
    piece only within one cell of its opened solid: the piece is the object."""
    objects = cc.distinct_objects()
    missed = {}
    for name, draws in BALLS_ON_A_BAR_THAT_ESCAPED_0_1_13:
        original = fingerprint(objects[name])
        for draw in draws:
            found = match(original, fingerprint(cc.add_object(objects[name], 2.0, 0.2, np.random.default_rng(draw),
                                                              bridged=True)))
            if not found.same:
                missed[(name, draw)] = found.as_dict()
    assert not missed, f"{len(missed)} of 9 escaped: {sorted(missed)}"


def test_a_copy_the_cheap_fit_leaves_just_over_its_line_is_still_refined(monkeypatch):
    """The field's ICP (nearest points to within a 0.2-unit cell) creeps on some lumpy surfaces:
    on these grey stones its best fit ends just above the line a copy was measured to start
    under (``alignment._FIELD_SLACK``), and 0.1.13 gave up without an exact step (geometry inf;
    on trimesh's ``busted.STL`` every stretched copy, eight of them). Within ``_FIELD_RESCUE`` of
    the line the best start alone takes the exact steps, and they end at 0.004. (The stones are
    near-round and plain, so the turns ranked by their radial profile, which start nearer, are
    left out here: this is the field's own start, as on a pair that is not round.)"""
    from text3d.reward.defences import alignment

    monkeypatch.setattr(alignment, "_RADIAL_STARTS", 0)
    pairs = []
    for rock, family in ((cc.lumpy_rock(3, amplitude=0.25, smoothing=6), "stretch 0.75/1.25"),
                         (cc.lumpy_rock(0, amplitude=0.3, smoothing=8), "turn 137 deg")):
        pairs.append((family, fingerprint(rock), fingerprint(cc.DEFORMATIONS[family](rock, None))))
    for family, original, copy in pairs:
        found = match(original, copy)
        assert found.same and found.geometry < 0.006, (family, found.as_dict())
    monkeypatch.setattr(alignment, "_FIELD_RESCUE", 0.0)  # 0.1.13: the line is a hard stop
    for family, original, copy in pairs:
        found = match(original, copy)
        assert not found.same and found.geometry == float("inf"), (family, found.as_dict())


# grey stones (copycat_corpus.lumpy_rock: seed, subdivisions, amplitude, smoothing) whose turned, stretched or
# tilted copies 0.1.13 mostly let escape: near-round and colourless, their turn is found by shape alone
PLAIN_STONES = [(1, 4, 0.2, 10), (2, 4, 0.2, 10), (0, 4, 0.15, 6), (1, 4, 0.15, 6), (2, 4, 0.15, 6),
                (0, 3, 0.15, 3), (1, 3, 0.15, 3), (2, 3, 0.15, 3)]


def test_a_plain_stone_turned_or_stretched_is_found_by_its_radial_profile(monkeypatch):
    """A near-round object with lumps a few vertices wide and one flat colour: the ICP finds the
    copy's turn only from a start within 10-15 deg of it, the 256 spread turns lie up to 40 deg
    apart, and the nearest-point score ranked the nearest one below eight others. 0.1.13 let 13 of
    these 24 copies escape (geometry 0.04-0.09, the stone in a wrong turn). The turns ranked by
    the smoothed radial profile (``alignment._radial_starts``) find every one."""
    from text3d.reward.defences import alignment

    pairs = []
    for seed, subdivisions, amplitude, smoothing in PLAIN_STONES:
        stone = cc.lumpy_rock(seed, subdivisions, amplitude, smoothing)
        original = fingerprint(stone)
        for family in ("turn 137 deg", "stretch 0.75/1.25", "tilt 10 deg"):
            pairs.append(((seed, subdivisions, family), original, fingerprint(cc.DEFORMATIONS[family](stone, None))))
    missed = {key: found.as_dict() for key, a, b in pairs if not (found := match(a, b)).same}
    assert not missed, f"{len(missed)} of {len(pairs)} escaped: {sorted(missed)}"
    monkeypatch.setattr(alignment, "_RADIAL_STARTS", 0)  # 0.1.13's search: no turn ranked by the profile
    escaped = [key for key, a, b in pairs if not match(a, b).same]
    assert len(escaped) >= 10, escaped


def test_the_radial_profile_golden():
    """Hand-computed: six points on the axes at distances 1 to 6 (+x, -x, +y, -y, +z, -z), equal
    weights, so the centre is (-1/6, -1/6, -1/6). Within 20 deg of the +x point's direction lies
    only that point (the others are 80 deg or more off), so the profile there is its own distance
    from the centre, sqrt((7/6)^2 + 2 (1/6)^2). Of a copy turned a quarter about z, every point's
    profile is its own distance again, and the best-ranked turn carries each point's direction
    nearest to its original's: the ranking misplaces no point."""
    from text3d.reward.defences import alignment
    from text3d.reward.defences.shape_cloud import ShapeCloud

    axes = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float64)
    points = axes * np.arange(1, 7, dtype=np.float64)[:, None]

    def cloud(p):
        return ShapeCloud(points=p.astype(np.float32), weights=np.full(6, 1 / 6, np.float32), colours=None,
                          moments=np.full(3, 1 / 3, np.float32), normals=axes.astype(np.float32),
                          aspect=np.ones(3, np.float32))

    directions, distances, _ = alignment._directions(cloud(points))
    assert distances[0] == pytest.approx(np.sqrt((7 / 6) ** 2 + 2 / 36))
    profile = alignment._smoothed_radius(directions, distances, np.full(6, 1 / 6), directions)
    assert profile == pytest.approx(distances)  # each direction holds its own point only
    quarter = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # row vectors: x -> y
    copy = cloud(points @ quarter)
    best = alignment._radial_starts(cloud(points), copy)[0]
    turned = alignment._directions(copy)[0] @ best
    assert np.argmax(turned @ directions.T, axis=1).tolist() == [0, 1, 2, 3, 4, 5]


def test_a_mesh_scaled_past_float32_still_fingerprints_as_the_same_object():
    """Normalised in float64 first: no overflow. Up to 1e20 the cloud is the same to the bit; at
    1e30 one-ulp rounding of the normalised samples moves faces that lie exactly on a cell boundary
    of the outer-surface grid (the box chair's coplanar seat and leg faces) into the next cell, and
    8 % of the samples change sides (measured): the copy is still joined, at 0.018."""
    base = cc.box_chair()
    assert match(fingerprint(base), fingerprint(cc.stretch(base, (1e3, 1e3, 1e3)))).geometry < 1e-6
    assert match(fingerprint(base), fingerprint(cc.stretch(base, (1e20, 1e20, 1e20)))).geometry < 1e-6
    assert same_object(fingerprint(base), fingerprint(cc.stretch(base, (1e30, 1e30, 1e30))))


def test_groups_gather_around_their_earliest_answer_so_mistaken_pairs_do_not_chain():
    """Joining every pair judged alike chained 44 of 64 honest blobs into one group (bench/copycat.py):
    a->b and b->c alike, a and c not, made one group of three. Now each answer joins the earliest
    leader it is alike to: b joins a, c leads its own group (and earns)."""
    alike = {(0, 1), (1, 2), (3, 4), (0, 4)}
    items = list(range(6))
    same = lambda a, b: (min(a, b), max(a, b)) in alike  # noqa: E731
    assert cluster_copies(items, same=same, workers=1) == [[0, 1, 4]]
    assert cluster_copies(items, same=same, workers=4) == [[0, 1, 4]]  # the threads change nothing
    assert cluster_copies([None, 7, None], same=same) == []


def test_a_step_flooded_with_copies_costs_one_judgement_per_copy():
    """Only the pairs the grouping reads are judged: each answer against the leaders before it.
    64 copies of one mesh cost 63 judgements (every pair, 2,016, before), so flooding a step
    with copies does not buy the validator's time; 64 different answers still cost every pair,
    and the groups are those of judging every pair (the verdict is the earliest leader alike)."""
    import threading

    lock, judged = threading.Lock(), []

    def counting(same):
        def judge(a, b):
            with lock:
                judged.append((a, b))
            return same(a, b)
        return judge

    assert cluster_copies(list(range(64)), same=counting(lambda a, b: True), workers=4) == [list(range(64))]
    assert len(judged) == 63
    judged.clear()
    assert cluster_copies(list(range(64)), same=counting(lambda a, b: False), workers=4) == []
    assert len(judged) == 64 * 63 // 2
    judged.clear()
    copies_of = {k: k % 3 for k in range(30)}  # three objects, arriving interleaved
    groups = cluster_copies(list(range(30)), same=counting(lambda a, b: copies_of[a] == copies_of[b]), workers=4)
    assert groups == [list(range(0, 30, 3)), list(range(1, 30, 3)), list(range(2, 30, 3))]
    assert len(judged) == 1 + 2 + 27 * 3  # answer 1 meets one leader, answer 2 two, the rest three


def test_a_flat_answer_is_compared_not_raised_and_remembered_as_a_repeat():
    """A planar mesh whitens to a cloud with no extent along one axis; the affine fit of two such
    clouds leaves that row of the map at zero, and the ICP's inverse raised ``LinAlgError`` (on the
    previous main, for trimesh's and Alec Jacobson's planar files against any copy of themselves,
    found by ``bench/copycat.py --corpus-copies``). Now a flat copy, turned, stretched in its plane
    or with its vertices permuted, is the same object, within a step and as a repeat."""
    sheet = fingerprint(cc.flat_sheet(0))
    copies = {"turned and stretched": cc.turn(cc.stretch(cc.flat_sheet(0), (1.2, 0.9, 1.0)), 30.0, (0, 0, 1)),
              "permuted": cc.permute(cc.flat_sheet(0), np.random.default_rng(1)),
              "mirrored": cc.mirror(cc.flat_sheet(0))}
    for name, copy in copies.items():
        found = match(sheet, fingerprint(copy))
        assert found.same and found.geometry < 0.01, (name, found.as_dict())
    memory = RecentAnswers(answers_per_miner=4)
    memory.add("flat", 1, "a rug", sheet)
    assert memory.repeat_of("flat", "a painting", fingerprint(copies["permuted"])) == 1


def test_a_singular_map_is_pseudo_inverted_and_a_regular_one_inverted_exactly():
    from text3d.reward.defences.alignment import _inverse

    regular = np.array([[1.2, 0.1, 0.0], [0.0, 0.9, 0.3], [0.2, 0.0, 1.1]])
    assert np.array_equal(_inverse(regular), np.linalg.inv(regular))  # bit for bit: no other verdict moves
    batch = np.stack([regular, regular.T])
    assert np.array_equal(_inverse(batch), np.linalg.inv(batch))
    flat = np.diag([1.5, 0.5, 0.0])  # what the fit of two flat clouds gives: that axis maps to nothing
    assert np.allclose(_inverse(flat), np.diag([1 / 1.5, 2.0, 0.0]))
    assert np.isfinite(_inverse(np.stack([regular, flat]))).all()


def test_a_comparison_that_fails_is_logged_and_judged_apart(monkeypatch, caplog):
    """Whatever a comparison trips on, ``match`` returns a verdict: not the same object (a failure of
    ours costs no miner its pay), logged with both digests; it never raises into the step."""
    import text3d.reward.defences.fingerprint as fingerprint_module

    def broken(a, b, rule):
        raise FloatingPointError("a shape no test had")

    a, b = fingerprint(cc.flat_sheet(0)), fingerprint(cc.box_chair())
    monkeypatch.setattr(fingerprint_module, "_match", broken)
    with caplog.at_level("ERROR", logger="text3d.reward.defences.fingerprint"):
        found = match(a, b)
    assert not found.same and found.geometry == float("inf")
    assert a.digest()[:12] in caplog.text and b.digest()[:12] in caplog.text and "a shape no test had" in caplog.text
