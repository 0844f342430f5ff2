"""Secret views: the step's cameras are drawn from the protocol's ranges by the step
seed, include views from below or above that no miner can predict, are the same on
every validator with that seed and are recorded in the report.

Attack pinned (fails before this change: the rig was fixed and public, and
``draw_secret_rig`` did not exist): a box painted by projecting a picture from the public
cameras reproduces the picture there (foreground Pearson r ~ 0.94) and not under the
secret views (mean r < 0.3). The flatness check penalises a billboard; it does not
catch the painted box (a cube is not flat) -- the secret views do.
"""

import json

import numpy as np
import pytest

from text3d.reward.render.camera import CameraRig, canonical_rig, draw_secret_rig
from text3d.reward.defences.flatness import flatness_factor, thickness
from text3d.reward.render.views import get_renderer
from text3d.reward.scoring_protocol import PROTOCOL
from tests.attack_meshes import billboard, painted_box, text_picture
from tests.meshes import coloured_sphere, red_cube

RES = 128


def test_draw_is_deterministic_within_ranges_and_has_unpredictable_views():
    rig = draw_secret_rig(PROTOCOL, 42)
    assert rig == draw_secret_rig(PROTOCOL, 42) and rig != draw_secret_rig(PROTOCOL, 43)
    spec = PROTOCOL.rig
    assert rig.n_views == spec.n_views == 8
    ring = rig.view_elevations_deg[: spec.n_ring_views]
    secret = rig.view_elevations_deg[spec.n_ring_views :]
    low, high = spec.camera.elevation_range_deg
    assert all(low <= e <= high for e in ring)
    assert len(secret) == 2
    assert all(any(lo <= e <= hi for lo, hi in spec.camera.secret_elevation_bands_deg) for e in secret)
    azimuths = rig.view_azimuths_deg[: spec.n_ring_views]
    steps = np.diff(np.unwrap(np.radians(azimuths)))
    np.testing.assert_allclose(np.degrees(steps), 60.0, atol=1e-4)  # an evenly spaced ring, turned
    offsets = {round(draw_secret_rig(PROTOCOL, s).view_azimuths_deg[0], 3) for s in range(20)}
    assert len(offsets) == 20  # the ring's offset depends on the seed


def test_rig_is_json_serialisable_and_round_trips():
    rig = draw_secret_rig(PROTOCOL, 7)
    again = CameraRig.from_dict(json.loads(json.dumps(rig.to_dict())))
    assert again == rig
    np.testing.assert_array_equal(again.view_matrices(8), rig.view_matrices(8))
    with pytest.raises(ValueError, match="lists 8 views"):
        rig.view_matrices(4)


def test_renderer_draws_per_view_elevations():
    """A listed view at elevation e renders exactly like a canonical rig at elevation e."""
    mesh = coloured_sphere(2000, seed=3)
    listed = CameraRig(view_azimuths_deg=(30.0, 200.0), view_elevations_deg=(-40.0, 60.0))
    views = get_renderer().render(mesh, 2, 64, listed)
    below = get_renderer().render(mesh, 1, 64, CameraRig(elevation_deg=-40.0, azimuth_start_deg=30.0))[0]
    above = get_renderer().render(mesh, 1, 64, CameraRig(elevation_deg=60.0, azimuth_start_deg=200.0))[0]
    assert np.array_equal(np.asarray(views[0]), np.asarray(below))
    assert np.array_equal(np.asarray(views[1]), np.asarray(above))
    assert canonical_rig(PROTOCOL) == CameraRig()


def _foreground_r(view, picture) -> float:
    a = np.asarray(view.convert("L"), dtype=np.float64)
    b = np.asarray(picture.convert("L"), dtype=np.float64)
    fg = a < 250
    return float(np.corrcoef(a[fg], b[fg])[0, 1])


def test_box_painted_for_the_public_cameras_falls_apart_under_secret_views():
    picture = text_picture("a red wooden chair").resize((RES, RES))
    public = CameraRig()  # the validators' old default: 4 views at 20 degrees
    box = painted_box(picture, public, 4, grid=64, resolution=RES)
    renderer = get_renderer()
    public_r = [_foreground_r(v, picture) for v in renderer.render(box, 4, RES, public)]
    assert min(public_r) > 0.85, public_r
    for seed in (1, 2, 3):
        secret_r = [_foreground_r(v, picture) for v in renderer.render(box, 8, RES, draw_secret_rig(PROTOCOL, seed))]
        assert np.mean(secret_r) < 0.3 and max(secret_r) < 0.6, (seed, secret_r)


def test_flatness_penalises_a_billboard_not_a_painted_box():
    picture = text_picture("a red wooden chair")
    assert flatness_factor(thickness(billboard(picture)), PROTOCOL.defences.min_thickness) == 0.0
    slab = billboard(picture, thickness=0.01)  # 1/140 of its width
    assert flatness_factor(thickness(slab), PROTOCOL.defences.min_thickness) < 0.5
    assert thickness(red_cube()) == pytest.approx(1.0)
    assert flatness_factor(thickness(coloured_sphere(2000)), PROTOCOL.defences.min_thickness) == 1.0
    box = painted_box(picture.resize((64, 64)), CameraRig(), 4, grid=16, resolution=64)
    assert flatness_factor(thickness(box), PROTOCOL.defences.min_thickness) == 1.0  # honest: not caught here
