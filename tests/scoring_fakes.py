"""Fixed embeddings at the model edge, for golden tests of the scoring formula.

``FixedClip`` and ``FixedText`` stand where ``ClipScorer`` and ``TextEmbedder`` stand in a
``RewardModel``: they return hand-chosen unit vectors, so a test can compute the score by
hand. Images are looked up by the colour of their top-left pixel.
"""

import numpy as np
import torch
from PIL import Image

__all__ = ["FixedClip", "FixedText", "ListCaptioner", "solid"]


def solid(rgb: tuple[int, int, int], px: int = 8) -> Image.Image:
    return Image.new("RGB", (px, px), rgb)


class FixedClip:
    name = "fixed/golden"

    def __init__(self, images: dict[tuple[int, int, int], list[float]], texts: dict[str, list[float]]) -> None:
        self.images = {k: np.asarray(v, np.float64) for k, v in images.items()}
        self.texts = {k: np.asarray(v, np.float64) for k, v in texts.items()}

    def encode_images(self, images):
        rows = [self.images[img.convert("RGB").getpixel((0, 0))] for img in images]
        return torch.tensor(np.stack([r / np.linalg.norm(r) for r in rows]), dtype=torch.float32)

    def encode_texts(self, texts):
        return torch.tensor(np.stack([self.texts[t] / np.linalg.norm(self.texts[t]) for t in texts]),
                            dtype=torch.float32)


class FixedText:
    model_id = "fixed/text"

    def __init__(self, texts: dict[str, list[float]]) -> None:
        self.texts = {k: np.asarray(v, np.float64) for k, v in texts.items()}

    def embed(self, texts, *, cache=True, cache_dir=None):
        return np.stack([self.texts[t] / np.linalg.norm(self.texts[t]) for t in texts]).astype(np.float32)


class ListCaptioner:
    """Answers the given captions, view by view, for every asset."""

    name = "list"

    def __init__(self, captions: list[str]) -> None:
        self.captions = captions

    def caption(self, images, prompt):
        return [self.captions[i % len(self.captions)] for i in range(len(images))]
