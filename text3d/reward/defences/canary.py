"""The canary: a known mesh and prompt that tell the validator whether its OWN pipeline works.

A renderer that draws nothing, a captioner that answers fluent nonsense with HTTP 200 or
a CLIP that lost its weights all look, from inside scoring, like bad miners: every
average falls (a nonsense captioner halved them). So the validator scores a mesh it
knows -- ``canary_mesh()``, a brown wooden table built by code (no binary ships) -- with
``CANARY_PROMPT`` under the step's rig every step or every N steps, and checks
``CanaryExpectations``:

* renderer: every view shows the table (foreground share within ``foreground_range``) and
  its foreground is brown-ish (mean red > green > blue by ``min_colour_gap``);
* CLIP (``min_clip``, the CLIP component; None skips it -- the tiny test CLIP has no
  meaning): the real ViT-L-14 prefers "a wooden table" over the step's distractors;
* captions (with a captioner): none empty, and the median raw mpnet similarity of the
  captions to the prompt at least ``min_caption_similarity`` (genuine all-mpnet-base-v2:
  "a wooden table with four legs" scores 0.8 against the prompt, fluent nonsense below 0.15);
* the score at least ``min_score`` when set.

``check_canary(reward_model, step_seed=...) -> CanaryResult(ok, reason, report)``. When
``ok`` is False the step is the validator's fault: nobody's average changes.
"""

from dataclasses import dataclass

import numpy as np
import trimesh

from text3d.reward.errors import ValidatorFault
from text3d.reward.reporting.evidence import RewardReport

__all__ = ["CANARY_PROMPT", "canary_mesh", "CanaryExpectations", "CanaryResult", "check_canary"]

CANARY_PROMPT = "a wooden table"

_TOP_RGB = (150, 95, 50)
_LEG_RGB = (120, 75, 40)


def _box(extents: tuple[float, float, float], centre: tuple[float, float, float], rgb) -> trimesh.Trimesh:
    box = trimesh.creation.box(extents=extents)
    box.apply_translation(centre)
    colours = np.tile(np.array([*rgb, 255], np.uint8), (len(box.vertices), 1))
    return trimesh.Trimesh(box.vertices, box.faces, vertex_colors=colours, process=False)


def canary_mesh() -> trimesh.Trimesh:
    """A table, +Y up: a 1.6 x 0.08 x 1.0 top at height 0.75 on four 0.08-thick legs.

    Deterministic (no randomness); 60 faces; per-vertex uint8 RGBA colours.
    """
    parts = [_box((1.6, 0.08, 1.0), (0.0, 0.75, 0.0), _TOP_RGB)]
    for x in (-0.7, 0.7):
        for z in (-0.4, 0.4):
            parts.append(_box((0.08, 0.71, 0.08), (x, 0.355, z), _LEG_RGB))
    vertices = np.concatenate([p.vertices for p in parts])
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets)])
    colours = np.concatenate([p.visual.vertex_colors for p in parts])
    return trimesh.Trimesh(vertices, faces, vertex_colors=colours, process=False)


@dataclass(frozen=True)
class CanaryExpectations:
    foreground_range: tuple[float, float] = (0.03, 0.8)
    min_colour_gap: float = 10.0  # mean foreground red - blue, in 0..255 units
    min_clip: float | None = 0.5
    min_caption_similarity: float = 0.35
    min_score: float | None = None
    check_captions: bool = True  # False for the tiny random test LLaVA, whose captions are junk by design

    @classmethod
    def for_models(cls, models: str) -> "CanaryExpectations":
        """Real models: every check. Tiny random models: the renderer's checks only (their CLIP
        and captions carry no meaning, so they cannot vouch for anything)."""
        return cls() if models == "real" else cls(min_clip=None, check_captions=False)


@dataclass(frozen=True)
class CanaryResult:
    ok: bool
    reason: str  # "ok", or one sentence naming the broken part
    report: RewardReport | None = None


def _foreground_colour(report: RewardReport, background: tuple[int, int, int]) -> list[np.ndarray | None]:
    bg = np.asarray(background, dtype=np.int16)
    out = []
    for image in report.images:
        px = np.asarray(image.convert("RGB"), dtype=np.int16).reshape(-1, 3)
        fg = px[np.abs(px - bg).max(axis=1) > 8]
        out.append(fg.mean(axis=0) if len(fg) else None)
    return out


def check_canary(reward_model, *, step_seed: int | None = None, rig=None,
                 expectations: CanaryExpectations = CanaryExpectations()) -> CanaryResult:
    """Score the canary with ``reward_model`` and check it against ``expectations``.

    A validator fault raised while scoring (captioner down, no GL context) is a failed
    canary with that reason, not an exception: the caller skips the step either way.
    """
    try:
        report = reward_model.score(canary_mesh(), CANARY_PROMPT, step_seed=step_seed, rig=rig)
    except ValidatorFault as exc:
        return CanaryResult(False, f"scoring the canary failed: {exc}")
    e = expectations
    if not report.is_valid:
        return CanaryResult(False, f"the renderer refused the canary mesh: {report.invalid_reason}", report)
    silhouette = report.defences.get("silhouette") or []
    low, high = e.foreground_range
    for v, share in enumerate(silhouette):
        if not low <= share <= high:
            return CanaryResult(False, f"renderer: canary view {v} covers {share:.1%} of the image, expected "
                                       f"{low:.0%}-{high:.0%} (blank or broken renders)", report)
    background = tuple((report.rig or {}).get("background_rgb", (255, 255, 255)))
    for v, colour in enumerate(_foreground_colour(report, background)):
        if colour is None or not (colour[0] > colour[1] > colour[2] and colour[0] - colour[2] >= e.min_colour_gap):
            return CanaryResult(False, f"renderer: canary view {v} is not the brown table (mean colour "
                                       f"{None if colour is None else colour.round().tolist()})", report)
    if e.min_clip is not None and report.components.get("clip", 0.0) < e.min_clip:
        return CanaryResult(False, f"CLIP: the canary's CLIP component is {report.components.get('clip', 0.0):.3f}, "
                                   f"expected >= {e.min_clip} (wrong or broken CLIP weights)", report)
    if report.captioner is not None and e.check_captions:
        captions = [view.caption or "" for view in report.views]
        if any(not c.strip() for c in captions):
            return CanaryResult(False, "captioner: it returned an empty caption for the canary", report)
        sims = [view.caption_similarity for view in report.views if view.caption_similarity is not None]
        median = float(np.median(sims)) if sims else 0.0
        if median < e.min_caption_similarity:
            return CanaryResult(False, f"captioner: its captions of the canary are off-topic (median similarity "
                                       f"{median:.2f} to {CANARY_PROMPT!r}, expected >= {e.min_caption_similarity}; "
                                       f"e.g. {captions[0][:80]!r})", report)
    if e.min_score is not None and report.score < e.min_score:
        return CanaryResult(False, f"the canary scored {report.score:.3f}, expected >= {e.min_score}", report)
    return CanaryResult(True, "ok", report)
