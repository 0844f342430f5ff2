"""One generation earns once, whatever cheap deformation it wears; honest answers are never joined.

The copycat rule (``text3d.reward.defences.fingerprint``) must see one object in: a stretch
of up to +-25 % per axis, a tilt of +-10 deg, a turn about the up axis, a smooth warp of a
few percent of the size, subdivision, decimation, remeshing, re-encoding, vertex
permutation, jitter, mirroring, recolouring, hidden interior geometry, and combinations,
on a box chair, a CAD part, a Shap-E-like blob and a tiny Shap-E mesh. And it must keep
apart: honest answers to one prompt from different seeds of every generator the project
ships, and distinct objects.

Attacks pinned (each fails on the previous main, whose yaw-invariant descriptor against a
threshold of 0.05 missed them: a stretch of 1.10-1.20, a tilt of 3-5 deg, a 3 % warp or one
subdivision gave 0.06-0.16; ``first_come`` found 0 duplicates among 14-36 packed variants):
every family below, and the packing test.

Measured limits (stated in docs/copycats.md, pinned here so they cannot silently change):
honest Shap-E-like blobs of different seeds come as close as 0.0227 and agree on colour by
chance up to 0.987 (64 seeds, bench/copycat.py), so the bounds are tight (0.02; 0.034-0.04
at colour agreement 0.97-1.0): warps of 3-5 %, jitter on fine meshes, hidden interior
geometry (which the views catch within a step) and some combinations escape the geometry
rule (``KNOWN_ESCAPES``: 25 of 96).
"""

import itertools

import numpy as np
import pytest

from tests import copycat_corpus as cc
from text3d.reward.defences.fingerprint import (
    DEFAULT_RULE,
    Fingerprint,
    cluster_copies,
    fingerprint,
    match,
    same_object,
    view_distance,
)
from text3d.reward.render.camera import draw_secret_rig
from text3d.reward.render.views import get_renderer
from text3d.reward.scoring_protocol import PROTOCOL

FAMILIES = {**cc.DEFORMATIONS, **cc.COMBINATIONS}
KNOWN_ESCAPES = {  # (base, family): measured (see the module docstring); the bounds are set by honest blobs
    ("shap-e", "turn 137 deg"), ("chair", "warp 3%"), ("cad part", "warp 3%"), ("shap-e", "warp 3%"),
    ("chair", "warp 5%"), ("cad part", "warp 5%"), ("blob", "warp 5%"), ("shap-e", "warp 5%"),
    ("blob", "decimate"), ("blob", "remesh"), ("blob", "jitter 0.3%"), ("shap-e", "jitter 0.3%"),
    ("chair", "hidden inside"), ("cad part", "hidden inside"), ("chair", "stretch+tilt+warp+draco"),
    ("cad part", "stretch+tilt+warp+draco"), ("blob", "stretch+tilt+warp+draco"), ("shap-e", "stretch+tilt+warp+draco"),
    ("chair", "hidden+turn+stretch+jitter"), ("cad part", "hidden+turn+stretch+jitter"),
    ("shap-e", "hidden+turn+stretch+jitter"), ("blob", "decimate+tilt+repaint+permute"),
    ("chair", "remesh+warp+stretch+turn"), ("cad part", "remesh+warp+stretch+turn"), ("shap-e", "remesh+warp+stretch+turn"),
}


@pytest.fixture(scope="module")
def bases():
    return {name: (mesh, fingerprint(mesh)) for name, mesh in cc.copy_bases().items()}


@pytest.fixture(scope="module")
def verdicts(bases, deformed):
    """(base, family) -> Match of the base against its deformed copy."""
    return {key: match(bases[key[0]][1], fp) for key, fp in deformed.items()}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_deformation_family_is_the_same_object(verdicts, family):
    for base in ("chair", "cad part", "blob", "shap-e"):
        found = verdicts[(base, family)]
        if (base, family) in KNOWN_ESCAPES:
            continue
        assert found.same, f"{family} on the {base} escaped: {found.as_dict()}"


def test_the_copies_that_escape_are_exactly_the_measured_ones(verdicts):
    escaped = {key for key, found in verdicts.items() if not found.same}
    assert escaped == KNOWN_ESCAPES
    for key in KNOWN_ESCAPES:  # none far off: a looser bound would take them, and honest blobs with them
        assert verdicts[key].geometry < 0.09
    caught = len(verdicts) - len(escaped)
    assert caught == 71 and len(verdicts) == 96


@pytest.fixture(scope="module")
def deformed(bases):
    return {(name, family): fingerprint(deform(mesh, np.random.default_rng(1)))
            for (name, (mesh, _)), (family, deform) in itertools.product(bases.items(), FAMILIES.items())}


def test_every_deformation_family_is_a_repeat_for_another_prompt(bases, deformed):
    """The repeat memory (what each miner sent before) sees through every family as the step does."""
    from text3d.validator.repeats import RecentAnswers

    memory = RecentAnswers(answers_per_miner=4)
    for name, (_, fp) in bases.items():
        memory.add(name, 1, "a red chair", fp)
    missed = [key for key, fp in deformed.items()
              if key not in KNOWN_ESCAPES and memory.repeat_of(key[0], "a golden crown", fp) is None]
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
    """False-positive rate pair by pair (measured: 0 of 182 pairs here; 0 of 2,016 among 64 blob
    seeds in bench/copycat.py, the closest at geometry 0.0227)."""
    rates = {name: (sum(m.same for m in pairs), len(pairs)) for name, pairs in honest.items()}
    assert all(false == 0 for false, _ in rates.values()), rates
    assert sum(n for _, n in rates.values()) == 28 + 28 + 4 * 15 + 66
    closest = min(m.geometry for pairs in honest.values() for m in pairs)
    assert closest > DEFAULT_RULE.geometry_max  # never under the colour-blind bound
    coloured_close = [m for pairs in honest.values() for m in pairs
                      if m.geometry <= DEFAULT_RULE.colour_geometry_max and m.colour is not None]
    assert all(m.colour < DEFAULT_RULE.min_colour_agreement or m.geometry > DEFAULT_RULE.colour_bound(m.colour)
               for m in coloured_close)


@pytest.mark.parametrize("base, earning", [("chair", 2), ("blob", 1)])
def test_packing_one_mesh_into_dozens_of_variants_earns_once_or_twice(bases, base, earning):
    """Stretches of 0.90-1.10 on two axes and tilts of +-5 deg: 24 variants that look different
    side by side (before: 24 paid). The blob's are one group; the box chair's flat faces keep
    some variants near the tight geometry bound (0.02, set by honest blobs), so its 24
    variants form two groups: two answers earn, not 24. Any order of the answers gives
    groups of the same sizes."""
    mesh, _ = bases[base]
    fps = [fingerprint(v) for v in cc.packing_variants(mesh, 24)]
    groups = cluster_copies(fps)
    assert len(groups) == earning and sorted(i for g in groups for i in g) == list(range(24))
    order = np.random.default_rng(3).permutation(24)
    assert len(cluster_copies([fps[i] for i in order])) <= earning


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
    assert same_object(fp, back) and match(fp, back).geometry < 0.005
    assert len(fp.to_bytes()) < 40_000  # what the repeat memory keeps per answer
    import io

    for junk in (b"\x80\x04not a fingerprint", fp.to_bytes()[:-40]):
        with pytest.raises(ValueError):
            Fingerprint.from_bytes(junk)
    buffer = io.BytesIO()  # the right keys with hostile values: NaN points
    np.savez(buffer, version=np.int32(2), rig_key=np.str_(""), points=np.full((8, 3), np.nan, np.float16),
             weights=np.ones(8, np.float32), normals=np.ones((8, 3), np.float16), moments=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        Fingerprint.from_bytes(buffer.getvalue())


def test_a_mesh_scaled_past_float32_still_fingerprints():
    """Normalised in float64 first: no overflow, the same cloud within the method's noise (measured
    0.021 at 1e30, 0 at 1e3 -- an unexplained rounding effect, see the report of issue 17)."""
    base = cc.box_chair()
    assert match(fingerprint(base), fingerprint(cc.stretch(base, (1e3, 1e3, 1e3)))).geometry < 1e-6
    assert match(fingerprint(base), fingerprint(cc.stretch(base, (1e30, 1e30, 1e30)))).geometry < 0.03


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
