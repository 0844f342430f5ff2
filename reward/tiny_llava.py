"""A tiny random LLaVA-1.5-style model pair for exercising a real ``llama-server`` offline.

LLaVA-1.5 ships as two GGUF files: a llama-architecture language model and a CLIP
"mmproj" (vision tower + 2-layer MLP projector, tensors ``mm.0`` / ``mm.2``). This
module writes the same two files with random weights, small enough (~17 MB) to write
in seconds and to run on CPU at hundreds of tokens per second:

* ``model.gguf``: llama arch, ``embedding_px``-wide (64), 2 blocks, 4 heads, and the
  genuine 32000-token LLaMA SentencePiece vocabulary copied from llama.cpp's
  ``models/ggml-vocab-llama-spm.gguf`` (every ``tokenizer.*`` KV field), so prompts
  tokenize exactly as they would for the production model.
* ``mmproj.gguf``: ``clip`` arch, projector type ``mlp``, 56 px images in 14 px patches
  (16 image tokens), a class embedding, pre-layernorm and 2 ViT blocks.

Tensor names and KV keys follow llama.cpp's loaders (``src/llama-model.cpp`` for llama,
``tools/mtmd/clip.cpp`` / ``clip-impl.h`` for the mmproj) as of llama.cpp b11434.

The text it produces is junk, but never empty: the output rows of special, byte and
whitespace-only tokens are zero, so greedy decoding always picks a visible word piece.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["TinyLlavaConfig", "write_tiny_llava", "ensure_tiny_llava", "default_vocab_path"]

# llama.cpp token types (gguf.TokenType): 1 normal, 2 unknown, 3 control, 6 byte.
_TOKEN_TYPE_NORMAL = 1


@dataclass(frozen=True)
class TinyLlavaConfig:
    """Shapes of the tiny pair. ``text_embd`` must equal the projector's output width."""

    text_embd: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_ff: int = 128
    context_length: int = 2048
    vision_embd: int = 32
    vision_layers: int = 2
    vision_heads: int = 4
    vision_ff: int = 64
    image_px: int = 56
    patch_px: int = 14
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_px % self.patch_px:
            raise ValueError(f"image_px ({self.image_px}) must be a multiple of patch_px ({self.patch_px})")
        if self.text_embd % self.text_heads or self.vision_embd % self.vision_heads:
            raise ValueError("embedding widths must be divisible by their head counts")
        if self.vision_ff == self.vision_embd:
            # clip.cpp swaps ffn_up/ffn_down of old mlp models when ffn_down's input width
            # equals n_embd; keep the widths apart so the tensors load as written.
            raise ValueError("vision_ff must differ from vision_embd")


def default_vocab_path() -> Path:
    """Where ``scripts/build_llama_server.sh`` caches llama.cpp's LLaMA vocabulary."""
    return _cache_root() / "llama.cpp" / "models" / "ggml-vocab-llama-spm.gguf"


def _cache_root() -> Path:
    return Path(os.environ.get("TEXT3D_CACHE") or Path.home() / ".cache" / "text3d")


def _read_vocab(vocab_path: Path) -> dict[str, tuple[object, object, object]]:
    """The ``tokenizer.*`` KV fields of a vocab-only GGUF: key -> (value, type, sub_type)."""
    import gguf

    reader = gguf.GGUFReader(str(vocab_path))
    fields: dict[str, tuple[object, object, object]] = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            sub_type = field.types[1] if len(field.types) > 1 else None
            fields[key] = (field.contents(), field.types[0], sub_type)
    if "tokenizer.ggml.tokens" not in fields:
        raise ValueError(f"{vocab_path} has no tokenizer.ggml.tokens; is it a llama.cpp vocab file?")
    return fields


def _add_tokenizer(writer, fields: dict[str, tuple[object, object, object]]) -> None:
    """Copy the vocabulary with its original GGUF value types (uint32 ids, int32 token types)."""
    for key, (value, vtype, sub_type) in fields.items():
        writer.add_key_value(key, value, vtype, sub_type=sub_type)


def _visible_token_mask(fields: dict[str, tuple[object, object, object]]) -> np.ndarray:
    """True for normal tokens that decode to something other than whitespace."""
    tokens = fields["tokenizer.ggml.tokens"][0]
    types = fields["tokenizer.ggml.token_type"][0] if "tokenizer.ggml.token_type" in fields else [_TOKEN_TYPE_NORMAL] * len(tokens)
    return np.array(
        [t == _TOKEN_TYPE_NORMAL and tok.replace("\u2581", "").strip() != "" for tok, t in zip(tokens, types)]
    )


def _write_text_model(path: Path, cfg: TinyLlavaConfig, fields: dict, rng: np.random.Generator) -> None:
    import gguf

    n_vocab = len(fields["tokenizer.ggml.tokens"][0])
    d, f = cfg.text_embd, cfg.text_ff

    def w(*shape: int, std: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("text3d tiny llava (random)")
    writer.add_context_length(cfg.context_length)
    writer.add_embedding_length(d)
    writer.add_block_count(cfg.text_layers)
    writer.add_feed_forward_length(f)
    writer.add_head_count(cfg.text_heads)
    writer.add_head_count_kv(cfg.text_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(d // cfg.text_heads)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(writer, fields)

    writer.add_tensor("token_embd.weight", w(n_vocab, d, std=1.0))
    for i in range(cfg.text_layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(d, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"blk.{i}.{name}.weight", w(d, d, std=d**-0.5))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(d, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", w(f, d, std=d**-0.5))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", w(f, d, std=d**-0.5))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", w(d, f, std=f**-0.5))
    writer.add_tensor("output_norm.weight", np.ones(d, np.float32))
    output = w(n_vocab, d, std=1.0)
    output[~_visible_token_mask(fields)] = 0.0  # EOS/control/byte/space never win greedy decoding
    writer.add_tensor("output.weight", output)
    _finish(writer)


def _write_mmproj(path: Path, cfg: TinyLlavaConfig, rng: np.random.Generator) -> None:
    import gguf

    d, f, p = cfg.vision_embd, cfg.vision_ff, cfg.patch_px
    n_pos = (cfg.image_px // p) ** 2 + 1  # patches + class token

    def w(*shape: int, std: float = 0.02, dtype=np.float32) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(dtype)

    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_name("text3d tiny llava mmproj (random)")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_audio_encoder", False)
    writer.add_bool("clip.use_gelu", False)  # LLaVA-1.5's CLIP uses quick-gelu
    writer.add_string("clip.projector_type", "mlp")
    writer.add_uint32("clip.vision.image_size", cfg.image_px)
    writer.add_uint32("clip.vision.patch_size", p)
    writer.add_uint32("clip.vision.embedding_length", d)
    writer.add_uint32("clip.vision.feed_forward_length", f)
    writer.add_uint32("clip.vision.projection_dim", cfg.text_embd)
    writer.add_uint32("clip.vision.attention.head_count", cfg.vision_heads)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_uint32("clip.vision.block_count", cfg.vision_layers)
    writer.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    writer.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])

    # numpy shapes are ggml's ne reversed: a (out, in) matrix is ne = [in, out].
    writer.add_tensor("v.class_embd", w(d))
    writer.add_tensor("v.patch_embd.weight", w(d, 3, p, p, std=(3 * p * p) ** -0.5, dtype=np.float16))
    writer.add_tensor("v.position_embd.weight", w(n_pos, d, dtype=np.float16))
    writer.add_tensor("v.pre_ln.weight", np.ones(d, np.float32))
    writer.add_tensor("v.pre_ln.bias", np.zeros(d, np.float32))
    for i in range(cfg.vision_layers):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            writer.add_tensor(f"v.blk.{i}.{name}.weight", w(d, d, std=d**-0.5, dtype=np.float16))
            writer.add_tensor(f"v.blk.{i}.{name}.bias", np.zeros(d, np.float32))
        for name in ("ln1", "ln2"):
            writer.add_tensor(f"v.blk.{i}.{name}.weight", np.ones(d, np.float32))
            writer.add_tensor(f"v.blk.{i}.{name}.bias", np.zeros(d, np.float32))
        writer.add_tensor(f"v.blk.{i}.ffn_up.weight", w(f, d, dtype=np.float16))
        writer.add_tensor(f"v.blk.{i}.ffn_up.bias", np.zeros(f, np.float32))
        writer.add_tensor(f"v.blk.{i}.ffn_down.weight", w(d, f, dtype=np.float16))
        writer.add_tensor(f"v.blk.{i}.ffn_down.bias", np.zeros(d, np.float32))
    # unit-scale projector: image tokens as loud as word embeddings, so views change captions
    writer.add_tensor("mm.0.weight", w(cfg.text_embd, d, std=d**-0.5, dtype=np.float16))
    writer.add_tensor("mm.0.bias", np.zeros(cfg.text_embd, np.float32))
    writer.add_tensor("mm.2.weight", w(cfg.text_embd, cfg.text_embd, std=2 * cfg.text_embd**-0.5, dtype=np.float16))
    writer.add_tensor("mm.2.bias", np.zeros(cfg.text_embd, np.float32))
    _finish(writer)


def _finish(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_tiny_llava(out_dir: Path | str, vocab_path: Path | str, config: TinyLlavaConfig | None = None) -> tuple[Path, Path]:
    """Write ``model.gguf`` and ``mmproj.gguf`` into ``out_dir``; returns their paths.

    Deterministic for a given config (numpy ``default_rng(config.seed)``). Files are
    written to temporary names and renamed, so a reader never sees a half-written pair.
    Raises FileNotFoundError when ``vocab_path`` is missing.
    """
    cfg = config or TinyLlavaConfig()
    vocab_path = Path(vocab_path)
    if not vocab_path.is_file():
        raise FileNotFoundError(
            f"LLaMA vocabulary not found at {vocab_path}; run scripts/build_llama_server.sh, which caches it"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    model_path, mmproj_path = out / "model.gguf", out / "mmproj.gguf"
    tmp_model, tmp_mmproj = out / f".model.{os.getpid()}.tmp", out / f".mmproj.{os.getpid()}.tmp"
    _write_text_model(tmp_model, cfg, _read_vocab(vocab_path), rng)
    _write_mmproj(tmp_mmproj, cfg, rng)
    os.replace(tmp_mmproj, mmproj_path)
    os.replace(tmp_model, model_path)
    return model_path, mmproj_path


def ensure_tiny_llava(cache_dir: Path | str | None = None, vocab_path: Path | str | None = None) -> tuple[Path, Path]:
    """The cached tiny pair ``(model_path, mmproj_path)``, written on first use.

    Cached under ``$TEXT3D_CACHE/models/tiny-llava/`` (default ``~/.cache/text3d``);
    the vocabulary defaults to the one ``scripts/build_llama_server.sh`` caches.
    """
    out = Path(cache_dir) if cache_dir else _cache_root() / "models" / "tiny-llava"
    model_path, mmproj_path = out / "model.gguf", out / "mmproj.gguf"
    if model_path.is_file() and mmproj_path.is_file():
        return model_path, mmproj_path
    return write_tiny_llava(out, vocab_path or default_vocab_path())
