"""CLIP embeddings are unit vectors of the right shape, texts are encoded once, and
missing weights are a ModelUnavailable (validator fault) with a clear sentence.

The tiny CLIP loads through the same open_clip.create_model_and_transforms(name,
pretrained=<file>) path as the production checkpoint.
"""

import hashlib

import pytest
import torch
from PIL import Image

from text3d.reward.clip import ClipScorer
from text3d.reward.errors import ModelUnavailable
from text3d.reward.tiny_clip import TINY_CLIP_CONFIG, TINY_CLIP_NAME, ensure_tiny_clip

DIM = TINY_CLIP_CONFIG["embed_dim"]


def fresh(scorer: ClipScorer) -> ClipScorer:
    """Same loaded model, empty caches and counters (the constructor is cheap)."""
    return ClipScorer(scorer.model, scorer.preprocess, scorer.tokenizer, model_name=scorer.model_name,
                      pretrained=scorer.pretrained, device=scorer.device, batch_size=scorer.batch_size)


def images(n: int, px: int = 96) -> list[Image.Image]:
    return [Image.new("RGB", (px, px), (40 * i % 256, 255 - 30 * i % 256, 90)) for i in range(n)]


def test_tiny_clip_is_built_once_and_deterministic(tmp_path):
    name, weights = ensure_tiny_clip(tmp_path / "a")
    assert name == TINY_CLIP_NAME and weights.is_file()
    mtime = weights.stat().st_mtime_ns
    assert ensure_tiny_clip(tmp_path / "a") == (name, weights)
    assert weights.stat().st_mtime_ns == mtime  # reused, not rewritten
    _, other = ensure_tiny_clip(tmp_path / "b")
    assert hashlib.sha256(weights.read_bytes()).digest() == hashlib.sha256(other.read_bytes()).digest()


def test_encode_images_shape_dtype_norm(tiny_clip):
    clip = fresh(tiny_clip)
    emb = clip.encode_images(images(5))
    assert emb.shape == (5, DIM) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(clip.encode_images(images(5)), emb)  # deterministic
    assert clip.images_encoded == 10
    assert clip.encode_images([]).shape == (0, DIM)


def test_images_are_chunked_by_batch_size(tiny_clip):
    clip = fresh(tiny_clip)
    clip.batch_size = 2
    whole = fresh(tiny_clip).encode_images(images(5))
    torch.testing.assert_close(clip.encode_images(images(5)), whole, atol=1e-5, rtol=1e-5)


def test_text_cache_means_no_model_work_the_second_time(tiny_clip, monkeypatch):
    clip = fresh(tiny_clip)
    first = clip.encode_texts(["a red cube", "a blue sphere", "a red cube"])
    assert first.shape == (3, DIM) and first.dtype == torch.float32
    torch.testing.assert_close(first.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(first[0], first[2])
    assert clip.texts_encoded == 2  # the duplicate went through the model once

    def no_model_work(*args, **kwargs):
        raise AssertionError("encode_text called for cached texts")

    monkeypatch.setattr(clip.model, "encode_text", no_model_work)
    again = clip.encode_texts(["a blue sphere", "a red cube"])
    torch.testing.assert_close(again, first[[1, 0]])
    assert clip.texts_encoded == 2


def test_similarity_matrix(tiny_clip):
    clip = fresh(tiny_clip)
    sims = clip.similarity(images(3), ["a", "b"])
    assert sims.shape == (3, 2)
    assert float(sims.abs().max()) <= 1.0 + 1e-5


def test_missing_weights_are_model_unavailable(tmp_path):
    with pytest.raises(ModelUnavailable, match="does not exist"):
        ClipScorer.from_pretrained(TINY_CLIP_NAME, tmp_path / "nope.safetensors", device="cpu")
    with pytest.raises(ModelUnavailable, match="no model named"):
        ClipScorer.from_pretrained("ViT-Q-99", "x", device="cpu")


def test_uncached_hub_weights_offline_are_model_unavailable(monkeypatch, tmp_path):
    # HF_HUB_OFFLINE=1 (conftest) and an empty cache: the hub download must fail fast and clearly
    with pytest.raises(ModelUnavailable, match="could not be loaded.*--models tiny"):
        ClipScorer.from_pretrained("ViT-B-32", "laion2b_s34b_b79k", device="cpu", cache_dir=tmp_path)
