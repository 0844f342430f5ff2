"""docs/scoring-for-miners.md states every number from the code that decides a score: the pinned
protocol, the validator's defaults, the copycat rule, the canary and the incentive curve.

Before: the page said overdraw 24 (the code: 8), weights proportional to the averages (the
code: average^4), prompts from the shipped file (the code: composed and mixed), and nothing
of duplicates, repeats or the canary. Each fact below is computed from the code and must
appear on the page as written; the stale claims must not.
"""

from pathlib import Path

import numpy as np

from text3d.protocol.limits import DEFAULT_LIMITS
from text3d.reward.config import RewardConfig
from text3d.reward.defences import alignment, shape_cloud
from text3d.reward.defences.budget import MAX_COORDINATE
from text3d.reward.defences.canary import CANARY_PROMPT
from text3d.reward.scoring_protocol import DEFAULT_SIMILARITY_RANGE, PROTOCOL
from text3d.settings import ValidatorSettings
from text3d.validator.prompts import ComposedPrompts, MixedPrompts
from text3d.validator.weights import DEFAULT_CURVE, transform_scores

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "scoring-for-miners.md").read_text()
TEXT = " ".join(PAGE.split())  # line breaks do not matter


def _share_in_words(share: float) -> str:
    """How the page names a share of the area: "nine tenths", "three quarters", else "55 %"."""
    return {0.9: "nine tenths", 0.75: "three quarters"}.get(share, f"{100 * share:g} %")


def _facts() -> list[str]:
    p, v = PROTOCOL, ValidatorSettings()
    cam, clip, d, w = p.rig.camera, p.clip, p.defences, p.weights
    low, high = DEFAULT_SIMILARITY_RANGE[p.metric]
    three = transform_scores(np.array([0.9, 0.7, 0.5]), DEFAULT_CURVE)
    two = transform_scores(np.array([0.9, 0.7]), DEFAULT_CURVE)
    mixed = MixedPrompts()
    return [
        f"with probability {mixed.shipped_share:g}", f"({ComposedPrompts().size:,} distinct prompts)",
        f"`--validator.sample_size` ({v.sample_size})", f"`--validator.timeout_s` ({v.timeout_s:g} s)",
        f"`timeout_s` ({v.timeout_s:g} s by default)", f"`--validator.alpha` ({v.alpha:g} by default)",
        f"at most {DEFAULT_LIMITS.max_vertices:,} vertices", f"{DEFAULT_LIMITS.max_faces:,} faces",
        f"{DEFAULT_LIMITS.max_payload_bytes // 2**20} MiB encoded",
        f"from {p.rig.n_views} views at {p.rig.resolution_px} px",
        f"a ring of {p.rig.n_ring_views} views", f"({cam.elevation_range_deg[0]:g}-{cam.elevation_range_deg[1]:g}°)",
        f"plus {p.rig.n_secret_views} views from below",
        "({:g}° to {:g}°)".format(*cam.secret_elevation_bands_deg[0]),
        "({:g}° to {:g}°)".format(*cam.secret_elevation_bands_deg[1]),
        f"open_clip {p.models.clip_model}, `{p.models.clip_pretrained}` weights",
        f"to {clip.n_distractors} *distractor* prompts", f"to {len(clip.reject_texts)} junk texts",
        *[f'"{t}"' for t in clip.reject_texts],
        f"margin {clip.margin:g} and temperature {clip.temperature:g}",
        f"fixed pool of {len(clip.distractor_pool)} ordinary objects",
        f'("{p.caption.instruction}", at most {p.caption.max_tokens} tokens',
        "all-mpnet-base-v2" if p.models.text_model.endswith("all-mpnet-base-v2") else p.models.text_model,
        f"from [{low:g}, {high:g}] to [0, 1]",
        f"**CLIP {w.clip:g}, caption {w.caption:g}**", f"and {w.reference:g} for reference descriptions",
        f"more than {d.ocr_max_chars} legible characters (confidence at least {d.ocr_min_confidence:g})",
        f"`min(1, thickness / {d.min_thickness:g})`", f"worst view) exceeds {d.max_overdraw:g}", f"worst view) exceeds {d.max_edge_overdraw:g}, is invalid",
        f"coordinates beyond {MAX_COORDINATE:.0e}".replace("e+", "e"),
        f"({RewardConfig().render_timeout_s:g} s by default",
        f"surface within {d.fingerprint_body_reach:g} of its own principal spreads",
        f"from the nearest {_share_in_words(shape_cloud._BODY_CORE_SHARE)} of the area",
        *[f"nearest {_share_in_words(share)}" for share, _ in shape_cloud._PART_CORES],
        f"grid of {shape_cloud._BODY_CELLS} cells along the longest side",
        "pieces with " + " and ".join(f"at least {2 * gap + 1}" for gap in shape_cloud._PIECE_GAPS) + " empty cells",
        f"pieces still apart when grown back by {shape_cloud._BRIDGE_GROW} cells, each holding the samples within "
        f"{shape_cloud._BRIDGE_MEMBER_GROW} cell of it",
        f"carries more than {'half' if shape_cloud._PIECE_MIN_SHARE == 0.5 else shape_cloud._PIECE_MIN_SHARE} of the area",
        f"differ by more than {d.fingerprint_max_aspect_change:g} on some axis",
        f"alignment is at most {d.fingerprint_max_distance:g} and",
        f"averaged over its {alignment._SMOOTH_NEIGHBOURS} nearest neighbours",
        f"does not), at most {d.fingerprint_max_smooth_distance:g}",
        f"at most {d.fingerprint_relief_ratio:g} of the smaller *relief*",
        f"or {d.fingerprint_detail_ratio:g} times the smaller *fine detail*",
        f"up to {d.fingerprint_relief_max_distance:g}",
        f"differ by at most {d.fingerprint_colour_histogram_max:g} (total variation)",
        f"agree at least {d.fingerprint_min_colour_agreement:g}",
        f"the geometry distance is at most {d.fingerprint_colour_max_distance:g}",
        f"canonical correlation of their colours is at least {d.fingerprint_min_pattern_agreement:g}",
        f"the geometry distance is at most {d.fingerprint_pattern_max_distance:g}",
        f"differ by at most {d.fingerprint_view_max_distance:g} (RMS)", "32 px views",
        f"your last {v.copycat_answers_per_miner} answers",
        f"(`--validator.canary_every_steps` {v.canary_every_steps})", f'against "{CANARY_PROMPT}"',
        f"**{DEFAULT_CURVE.exponent:g}th power** (above a floor of {DEFAULT_CURVE.floor:g})",
        f"w_i = max(a_i - {DEFAULT_CURVE.floor:g}, 0)^{DEFAULT_CURVE.exponent:g}",
        "get {:.1f} %, {:.1f} % and {:.1f} % of the weight".format(*(100 * three)),
        "get {:.1f} % and {:.1f} %".format(*(100 * two)),
    ]


def test_every_number_on_the_page_is_the_codes():
    missing = [fact for fact in _facts() if fact not in TEXT]
    assert not missing, missing


def test_the_stale_claims_are_gone():
    for stale in ("exceeds 24", "proportional to the moving averages", "from the shipped set of object descriptions"):
        assert stale not in TEXT
    for topic in ("## Copies: duplicates and repeats", "## The canary", "## From averages to weight"):
        assert topic in PAGE
