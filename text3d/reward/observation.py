"""``Observation``: what the scoring core measures of one asset before it sees a prompt.

Scoring an asset against a prompt has two halves (``text3d.reward.model.RewardModel``):

1. **observe** (expensive, prompt-free): render the views under a rig, the defences that
   read the mesh or its pixels (render budget, thickness, silhouettes, fingerprint, OCR),
   CLIP image embeddings of the views, captions of the views and their text embeddings;
2. **judge** (cheap, per prompt): CLIP text embeddings of the prompt and its contrast texts,
   the similarities, the caption guard, the formula (``text3d.reward.formula``), the report.

``RewardModel.score_batch`` does both; ``RewardModel.observe_batch`` stops after the first and
``RewardModel.score_observations`` runs the second on observations made earlier -- in this
process or by an asset library that stored them (``text3d.library``), so a library asks
a new question without rendering or captioning anything again, and gets the score
``text3d score`` would give for the same prompt, rig and models.

Contracts: ``image_embeddings`` [V, D] float32 unit rows (CLIP, one per view, in rig order);
``caption_embeddings`` [V, T] float32 unit rows (the text model) or None (no captioner, or
the jaccard metric, which compares words); ``thickness`` None when the views came without
a mesh (the flatness factor is then 1). Captions must not depend on the prompt (the
protocol's ``include_prompt`` is off), or observations could not be shared by prompts.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["Observation"]


@dataclass
class Observation:
    """One asset under one rig, before any prompt. ``reason`` set = invalid (scores 0)."""

    reason: str | None = None
    images: list[Image.Image] | None = None  # the views; libraries keep embeddings, not pixels
    image_embeddings: np.ndarray | None = None  # [V, D] float32
    captions: list[str] | None = None  # one per view
    caption_embeddings: np.ndarray | None = None  # [V, T] float32
    captioner: str | None = None  # who wrote the captions
    ocr: list[Any] | None = None  # text3d.reward.defences.ocr.OcrView per view (None: OCR off)
    thickness: float | None = None  # text3d.reward.defences.flatness.thickness of the mesh
    fingerprint: Any = None  # text3d.reward.defences.fingerprint.Fingerprint
    defences: dict[str, Any] = field(default_factory=dict)  # evidence for the report
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def is_valid(self) -> bool:
        return self.reason is None

    @property
    def n_views(self) -> int:
        if self.image_embeddings is not None:
            return int(len(self.image_embeddings))
        return len(self.images or ())
