"""The gguf writer's production-size preset and streaming writer (``text3d.reward.tiny_llava``).

The LLaVA-1.5-7B shape is checked from its tensor plan (nothing 14 GB is written); the
plan is checked against the tiny pair ``write_tiny_llava`` writes, and the streaming
writer against a real ``llama-server`` with a small F16 pair at the production 336 px.
"""

import hashlib

import httpx
import numpy as np
import pytest
from PIL import Image

from text3d.ops.llava import LlamaServer, LlamaServerConfig, find_llama_server, tiny_llava_models
from text3d.ops.net import free_port
from text3d.reward.caption_client import CaptionerConfig, OpenAICaptioner, png_data_uri
from text3d.reward.tiny_llava import (
    TinyLlavaConfig,
    default_vocab_path,
    plan_nbytes,
    tensor_plan,
    write_llava_shape,
    write_tiny_llava,
)


def _file_layout(path) -> list[tuple[str, tuple[int, ...], str]]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return [(t.name, tuple(int(n) for n in reversed(t.shape.tolist())), t.tensor_type.name) for t in reader.tensors]


def _plan_layout(specs) -> list[tuple[str, tuple[int, ...], str]]:
    return [(s.name, s.shape, "F16" if s.dtype == np.float16 else "F32") for s in specs]


def test_llava_7b_preset_has_llava_1_5_7b_shapes():
    cfg = TinyLlavaConfig.llava_7b_shape()
    plan = tensor_plan(cfg)
    text = {s.name: s for s in plan["model"]}
    assert len(plan["model"]) == 2 + 32 * 9 + 1  # embeddings, 32 blocks of 9, output
    assert text["token_embd.weight"].shape == text["output.weight"].shape == (32000, 4096)
    assert text["blk.31.attn_q.weight"].shape == (4096, 4096)
    assert text["blk.31.ffn_gate.weight"].shape == text["blk.31.ffn_up.weight"].shape == (11008, 4096)
    assert text["blk.31.ffn_down.weight"].shape == (4096, 11008)
    assert "blk.32.attn_q.weight" not in text
    assert sum(int(np.prod(s.shape)) for s in plan["model"]) == 6_738_415_616  # LLaMA-7B's parameter count
    assert all(s.dtype == np.float16 for s in plan["model"] if len(s.shape) == 2)
    assert plan_nbytes(plan["model"]) == 13_477_363_712  # F16 matrices, F32 norms

    vision = {s.name: s for s in plan["mmproj"]}
    assert vision["v.patch_embd.weight"].shape == (1024, 3, 14, 14)
    assert vision["v.position_embd.weight"].shape == ((336 // 14) ** 2 + 1, 1024)  # 576 patches + class
    assert vision["v.blk.22.ffn_up.weight"].shape == (4096, 1024)
    assert "v.blk.23.ffn_up.weight" not in vision  # 23 blocks, as in the production mmproj
    assert vision["mm.0.weight"].shape == (4096, 1024) and vision["mm.2.weight"].shape == (4096, 4096)
    assert 0.6e9 < plan_nbytes(plan["mmproj"]) < 0.65e9
    assert (cfg.context_length, cfg.text_heads, cfg.vision_heads) == (4096, 32, 16)


def test_defaults_are_still_the_tiny_pair_and_the_plan_matches_what_it_writes(tmp_path):
    assert TinyLlavaConfig() == TinyLlavaConfig(text_embd=64, text_layers=2, text_heads=4, text_ff=128,
                                                context_length=2048, vision_embd=32, vision_layers=2,
                                                vision_heads=4, vision_ff=64, image_px=56, patch_px=14, seed=0)
    cached = tiny_llava_models(find_llama_server())  # also makes sure the vocabulary is cached
    model, mmproj = write_tiny_llava(tmp_path, default_vocab_path())
    plan = tensor_plan(TinyLlavaConfig())
    assert _file_layout(model) == _plan_layout(plan["model"])
    assert _file_layout(mmproj) == _plan_layout(plan["mmproj"])
    again = write_tiny_llava(tmp_path / "again", default_vocab_path())
    for first, second in zip((model, mmproj), again):
        assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    assert cached[0].stat().st_size == model.stat().st_size and cached[1].stat().st_size == mmproj.stat().st_size
    with pytest.raises(ValueError, match="write_llava_shape"):
        write_tiny_llava(tmp_path / "no", default_vocab_path(), TinyLlavaConfig.llava_7b_shape())


@pytest.mark.integration
def test_streamed_f16_pair_at_336_px_loads_and_never_stops_before_max_tokens(tmp_path):
    binary = find_llama_server()
    tiny_llava_models(binary)  # the vocabulary
    small = TinyLlavaConfig(image_px=336, text_dtype="f16")
    model, mmproj = write_llava_shape(tmp_path, default_vocab_path(), small)
    assert _file_layout(model) == _plan_layout(tensor_plan(small)["model"])
    assert _file_layout(mmproj) == _plan_layout(tensor_plan(small)["mmproj"])
    assert not list(tmp_path.glob(".*.tmp"))

    config = LlamaServerConfig(binary=binary, model_path=model, mmproj_path=mmproj, port=free_port(), slots=1,
                               context_tokens=1024, threads=1)
    with LlamaServer(config) as server:
        server.wait_until_ready(60)
        body = OpenAICaptioner(CaptionerConfig(max_tokens=64))._request_body(
            png_data_uri(Image.new("RGB", (512, 512), (200, 40, 40))), "a red cube")
        reply = httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=60, trust_env=False).json()
    assert reply["usage"]["completion_tokens"] == 64  # random weights never emit EOS: the cost is max_tokens'
    assert reply["usage"]["prompt_tokens"] > 576  # 24 x 24 image tokens at 336 px, plus the text
    assert reply["choices"][0]["message"]["content"].strip()


def test_tiled_fill_keeps_the_layout_the_scales_and_the_eos_trick(tmp_path):
    """The GPU bundle writes the 14 GB 7B shape with ``fill="tiled"`` (one pool of draws per scale,
    repeated from a random offset): the file must be the same plan, each tensor at its scale, and the
    rows of invisible tokens still zero, so captions still run to max_tokens."""
    import gguf

    tiny_llava_models(find_llama_server())  # the vocabulary
    config = TinyLlavaConfig(text_dtype="f16")
    model, mmproj = write_llava_shape(tmp_path, default_vocab_path(), config, fill="tiled")
    plan = tensor_plan(config)
    assert _file_layout(model) == _plan_layout(plan["model"])
    assert _file_layout(mmproj) == _plan_layout(plan["mmproj"])
    tensors = {t.name: np.asarray(t.data, np.float64) for t in gguf.GGUFReader(str(model)).tensors}
    for spec in plan["model"]:
        values = tensors[spec.name]
        if spec.init == "ones":
            assert (values == 1).all()
        elif spec.name != "output.weight":
            assert abs(values.std() / spec.std - 1) < 0.1, spec.name
            assert abs(values.mean()) < 0.1 * spec.std, spec.name
    assert not np.array_equal(tensors["blk.0.attn_q.weight"], tensors["blk.1.attn_q.weight"])  # offsets differ
    normal, _ = write_llava_shape(tmp_path / "normal", default_vocab_path(), config)
    reference = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(normal)).tensors}
    assert ((tensors["output.weight"] == 0).all(axis=1) == (reference["output.weight"] == 0).all(axis=1)).all()
    with pytest.raises(ValueError, match="fill"):
        write_llava_shape(tmp_path / "bad", default_vocab_path(), config, fill="zeros")
