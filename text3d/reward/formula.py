"""The scoring formula of one asset, pure numpy: similarities in, components and a score out.

For one asset with views v = 1..V under the step's rig, prompt p, contrast texts D
(distractor prompts drawn from (prompt, step seed) plus the junk texts) and references
r_1..r_R; every constant comes from the scoring protocol (``text3d.reward.scoring_protocol``)::

    CLIP, per view    clip_v = mean_{d in D} sigmoid((s_p - s_d - margin) / temperature)
                      (s_p = cos(img_v, p), s_d = cos(img_v, d); see text3d.reward.clip)
    caption, per view cap_v  = rescale(metric(c_v, p))        rescale: [low, high] -> [0, 1], clipped
                      ref_vj = rescale(metric(c_v, r_j))      (only with references)
    guards            a view whose OCR reads more than ocr_max_chars legible characters has
                      clip_v = cap_v = ref_vj = 0; a caption that mentions text or quotes the
                      prompt (text3d.reward.defences.caption_guard) has cap_v = ref_vj = 0
    components        clip = A(clip_v), caption = A(cap_v), reference = A(ref_vj)
                      A = the aggregation, kept in [0, 1] (text3d.reward.metrics.aggregate_unit)
    score             = flatness * sum_i w_i * component_i / sum_i w_i   over the components present
                      flatness = min(1, thickness / min_thickness)    (text3d.reward.defences.flatness)

Without a captioner only the CLIP component is present; without references there is no
reference component. ``asset_score`` computes all of it; ``RewardModel`` only gathers the
similarities and writes the report.
"""

from dataclasses import dataclass, field

import numpy as np

from text3d.reward.clip import contrastive_clip
from text3d.reward.metrics import aggregate, aggregate_unit, rescale

__all__ = ["AssetInputs", "AssetScore", "asset_score"]


@dataclass(frozen=True)
class AssetInputs:
    """Everything the formula reads for one asset (V views, K contrast texts, R references)."""

    s_prompt: np.ndarray  # [V] cos(view, prompt)
    s_contrast: np.ndarray  # [V, K] cos(view, contrast text)
    caption_to_prompt: np.ndarray | None = None  # [V] raw metric(caption, prompt), None without captions
    caption_to_refs: np.ndarray | None = None  # [V, R]
    ocr_rejected: np.ndarray | None = None  # [V] bool
    caption_flagged: np.ndarray | None = None  # [V] bool
    flatness: float = 1.0


@dataclass(frozen=True)
class AssetScore:
    score: float
    components: dict[str, float]
    weights: dict[str, float]  # renormalised over the components present
    clip_contrastive: np.ndarray  # [V] before the OCR guard
    clip_view: np.ndarray  # [V] after it
    caption_view: np.ndarray | None = None  # [V] after the guards
    aggregates: dict[str, float | list[float]] = field(default_factory=dict)


def asset_score(
    inputs: AssetInputs,
    *,
    weights: dict[str, float],
    temperature: float,
    margin: float,
    similarity_range: tuple[float, float],
    aggregation: str,
) -> AssetScore:
    """The formula of the module docstring. ``weights`` maps component -> raw weight
    (``clip``, ``caption``, ``reference``); components absent from the inputs are skipped."""
    n = len(inputs.s_prompt)
    ocr = np.zeros(n, bool) if inputs.ocr_rejected is None else np.asarray(inputs.ocr_rejected, bool)
    flagged = np.zeros(n, bool) if inputs.caption_flagged is None else np.asarray(inputs.caption_flagged, bool)
    contrastive = contrastive_clip(inputs.s_prompt, inputs.s_contrast, temperature=temperature, margin=margin)
    clip_view = np.where(ocr, 0.0, contrastive)
    components = {"clip": aggregate_unit(clip_view, aggregation)}
    aggregates: dict[str, float | list[float]] = {"clip_similarity": aggregate(inputs.s_prompt, aggregation)}
    caption_view = None
    if inputs.caption_to_prompt is not None:
        low, high = similarity_range
        zero = ocr | flagged
        caption_view = np.where(zero, 0.0, rescale(inputs.caption_to_prompt, low, high))
        components["caption"] = aggregate_unit(caption_view, aggregation)
        aggregates["caption_similarity"] = aggregate(inputs.caption_to_prompt, aggregation)
        refs = inputs.caption_to_refs
        if refs is not None and refs.size:
            components["reference"] = aggregate_unit(np.where(zero[:, None], 0.0, rescale(refs, low, high)),
                                                     aggregation)
            aggregates["reference_similarity"] = aggregate(refs, aggregation)
    raw = {name: float(weights[name]) for name in components}
    total = sum(raw.values())
    if not total > 0:
        raise ValueError("every component present has weight 0")
    normalised = {name: w / total for name, w in raw.items()}
    weighted = sum(normalised[name] * components[name] for name in components)
    score = float(np.clip(float(inputs.flatness) * weighted, 0.0, 1.0))
    return AssetScore(score=score, components=components, weights=normalised, clip_contrastive=contrastive,
                      clip_view=clip_view, caption_view=caption_view, aggregates=aggregates)
