"""Caption similarity runs on the GENUINE all-mpnet-base-v2 weights, and every text is
embedded once: repeated prompts and references cost no model work (memory or disk cache).
"""

import numpy as np
import pytest

from text3d.reward.errors import ModelUnavailable
from text3d.reward.text import DEFAULT_TEXT_MODEL, TextEmbedder

# (prompt, a caption that describes it, an unrelated caption): hand-written, varied wording.
TRIPLES = [
    ("a red sports car", "a shiny red automobile with two doors", "a bowl of green apples on a table"),
    ("a wooden chair", "a simple chair made of brown wood", "a blue whale swimming in the ocean"),
    ("a yellow rubber duck", "a small yellow toy duck", "a tall glass skyscraper at night"),
    ("a medieval castle", "a stone fortress with towers and walls", "a plate of spaghetti with tomato sauce"),
    ("a green cactus in a pot", "a spiky desert plant in a clay pot", "a silver laptop computer"),
    ("a white coffee mug", "a ceramic cup for hot drinks", "a snowy mountain landscape"),
    ("a pink donut with sprinkles", "a frosted ring-shaped pastry with colourful sprinkles", "an old steam locomotive"),
    ("a blue umbrella", "an open umbrella in blue fabric", "a cat sleeping on a sofa"),
    ("a low-poly tree", "a simple 3D model of a tree with a brown trunk and green leaves", "a pair of running shoes"),
    ("a golden crown", "a king's crown made of gold with jewels", "a bicycle leaning against a fence"),
]


def fresh(embedder: TextEmbedder, **kwargs) -> TextEmbedder:
    return TextEmbedder(embedder.model, model_id=embedder.model_id, **kwargs)


def test_shape_dtype_and_unit_norm(mpnet):
    text = fresh(mpnet)
    emb = text.embed(["a red cube", "a blue sphere"])
    assert text.dim == 768
    assert emb.shape == (2, 768) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert text.embed([]).shape == (0, 768)


def test_memory_cache_second_call_does_no_model_work(mpnet, monkeypatch):
    text = fresh(mpnet)
    first = text.embed(["a red cube", "a blue sphere", "a red cube"])
    assert text.texts_encoded == 2
    np.testing.assert_array_equal(first[0], first[2])
    monkeypatch.setattr(text.model, "encode", lambda *a, **k: pytest.fail("model used for cached texts"))
    np.testing.assert_array_equal(text.embed(["a blue sphere", "a red cube"]), first[[1, 0]])
    assert text.texts_encoded == 2


def test_cache_false_always_encodes(mpnet):
    text = fresh(mpnet)
    text.embed(["a caption"], cache=False)
    text.embed(["a caption"], cache=False)
    assert text.texts_encoded == 2


def test_disk_cache_survives_a_new_embedder(mpnet, tmp_path, monkeypatch):
    writer = fresh(mpnet, cache_dir=tmp_path)
    expected = writer.embed(["a wooden chair", "a golden crown"])
    assert len(list(tmp_path.rglob("*.npy"))) == 2
    reader = fresh(mpnet, cache_dir=tmp_path)
    monkeypatch.setattr(reader.model, "encode", lambda *a, **k: pytest.fail("model used despite the disk cache"))
    np.testing.assert_array_equal(reader.embed(["a golden crown", "a wooden chair"]), expected[[1, 0]])
    assert reader.texts_encoded == 0


def test_disk_cache_is_keyed_by_model(mpnet, tmp_path):
    fresh(mpnet, cache_dir=tmp_path).embed(["a wooden chair"])
    other = TextEmbedder(mpnet.model, model_id="another/model", cache_dir=tmp_path)
    other.embed(["a wooden chair"])
    assert other.texts_encoded == 1  # a different model id never reads mpnet's vectors


def test_descriptive_caption_beats_unrelated_caption(mpnet):
    text = fresh(mpnet)
    emb = text.embed([t for triple in TRIPLES for t in triple]).reshape(len(TRIPLES), 3, -1)
    wins = sum(float(p @ r) > float(p @ u) for p, r, u in emb)
    assert wins >= 9, f"related caption won only {wins}/10 times"


def test_genuine_weights_are_loaded(mpnet):
    assert mpnet.model_id == DEFAULT_TEXT_MODEL
    a, b = fresh(mpnet).embed(["a red cube", "a crimson box"])
    assert 0.4 < float(a @ b) < 0.7  # all-mpnet-base-v2 puts this pair at 0.535


def test_missing_model_is_model_unavailable():
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        TextEmbedder.from_pretrained("sentence-transformers/not-a-model-text3d", device="cpu")
