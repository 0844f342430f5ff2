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

Production-size shapes, for cost measurements (time and memory do not depend on weight
values): ``TinyLlavaConfig.llava_7b_shape()`` is LLaVA-1.5-7B's shape (llama 4096 wide,
32 blocks, 32 heads, ff 11008, context 4096; CLIP ViT-L/14 at 336 px with the mlp
projector 1024 -> 4096 -> 4096), written by ``write_llava_shape`` / ``ensure_llava_7b_shape``
in F16 (13.5 GB text + 0.6 GB mmproj), streamed one tensor at a time so memory stays at
about one tensor (the largest, ``token_embd``/``output``, is 262 MB in F16). The vision
tower has 23 blocks, not ViT-L's 24: LLaVA-1.5 takes the penultimate layer's features,
so llama.cpp's converter drops the last block and the production ``mmproj-model-f16.gguf``
holds 23. ``tensor_plan`` lists every tensor (name, shape, dtype) either writer writes, so
sizes can be checked without writing anything. The EOS trick is the same: random weights
never stop early, so a caption costs exactly ``max_tokens`` tokens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from text3d.common.paths import cache_dir as text3d_cache_dir

__all__ = [
    "TinyLlavaConfig", "write_tiny_llava", "ensure_tiny_llava", "default_vocab_path",
    "TensorSpec", "tensor_plan", "plan_nbytes", "write_llava_shape", "ensure_llava_7b_shape",
]

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
    text_dtype: str = "f32"  # "f16" for production-size shapes (``write_llava_shape`` only)

    @classmethod
    def llava_7b_shape(cls, seed: int = 0) -> "TinyLlavaConfig":
        """LLaVA-1.5-7B's shape: Vicuna-7B (llama) text model + CLIP ViT-L/14-336 mmproj, F16.

        23 vision blocks, as in the production mmproj (the converter drops ViT-L's last
        block: LLaVA-1.5 uses the penultimate layer's features). Write it with
        ``write_llava_shape`` (streaming), not ``write_tiny_llava`` (in memory).
        """
        return cls(text_embd=4096, text_layers=32, text_heads=32, text_ff=11008, context_length=4096,
                   vision_embd=1024, vision_layers=23, vision_heads=16, vision_ff=4096,
                   image_px=336, patch_px=14, seed=seed, text_dtype="f16")

    def __post_init__(self) -> None:
        if self.text_dtype not in ("f32", "f16"):
            raise ValueError(f"text_dtype must be 'f32' or 'f16', got {self.text_dtype!r}")
        if self.image_px % self.patch_px:
            raise ValueError(f"image_px ({self.image_px}) must be a multiple of patch_px ({self.patch_px})")
        if self.text_embd % self.text_heads or self.vision_embd % self.vision_heads:
            raise ValueError("embedding widths must be divisible by their head counts")
        if self.vision_ff == self.vision_embd:
            # clip.cpp swaps ffn_up/ffn_down of old mlp models when ffn_down's input width
            # equals n_embd; keep the widths apart so the tensors load as written.
            raise ValueError("vision_ff must differ from vision_embd")


def default_vocab_path() -> Path:
    """Where ``text3d/ops/llava/build_llama_server.sh`` caches llama.cpp's LLaMA vocabulary."""
    return text3d_cache_dir() / "llama.cpp" / "models" / "ggml-vocab-llama-spm.gguf"


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


def _vocab_fields(vocab_path: Path | str) -> dict[str, tuple[object, object, object]]:
    """The vocabulary's KV fields; FileNotFoundError naming the script that caches it."""
    vocab_path = Path(vocab_path)
    if not vocab_path.is_file():
        raise FileNotFoundError(
            f"LLaMA vocabulary not found at {vocab_path}; run `make models` (or bash text3d/ops/llava/build_llama_server.sh), which caches it"
        )
    return _read_vocab(vocab_path)


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
    _text_kv(writer, cfg, fields, n_vocab)

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
    _mmproj_kv(writer, cfg)

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
    if cfg.text_dtype != "f32":
        raise ValueError("write_tiny_llava writes F32 in memory; write other text dtypes with write_llava_shape")
    fields = _vocab_fields(vocab_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    model_path, mmproj_path = out / "model.gguf", out / "mmproj.gguf"
    tmp_model, tmp_mmproj = out / f".model.{os.getpid()}.tmp", out / f".mmproj.{os.getpid()}.tmp"
    _write_text_model(tmp_model, cfg, fields, rng)
    _write_mmproj(tmp_mmproj, cfg, rng)
    os.replace(tmp_mmproj, mmproj_path)
    os.replace(tmp_model, model_path)
    return model_path, mmproj_path


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a pair: numpy-order ``shape`` (ggml's ne reversed), its storage dtype,
    and how it is initialised: ``normal`` (times ``std``), ``ones`` or ``zeros``."""

    name: str
    shape: tuple[int, ...]
    dtype: type
    init: str = "normal"
    std: float = 0.02

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


def tensor_plan(cfg: TinyLlavaConfig, n_vocab: int = 32000) -> dict[str, list[TensorSpec]]:
    """Every tensor of the pair, in file order: ``{"model": [...], "mmproj": [...]}``.

    The same names, shapes, dtypes and initial scales as ``write_tiny_llava`` writes
    (a test checks the plan against the written tiny pair); ``write_llava_shape`` writes
    exactly this plan. The text model's matrices are ``cfg.text_dtype``; norms are F32.
    """
    d, f, T = cfg.text_embd, cfg.text_ff, cfg.text_embd
    mat = np.float16 if cfg.text_dtype == "f16" else np.float32
    f32, f16 = np.float32, np.float16
    text = [TensorSpec("token_embd.weight", (n_vocab, d), mat, std=1.0)]
    for i in range(cfg.text_layers):
        text.append(TensorSpec(f"blk.{i}.attn_norm.weight", (d,), f32, "ones"))
        text += [TensorSpec(f"blk.{i}.{n}.weight", (d, d), mat, std=d**-0.5)
                 for n in ("attn_q", "attn_k", "attn_v", "attn_output")]
        text += [TensorSpec(f"blk.{i}.ffn_norm.weight", (d,), f32, "ones"),
                 TensorSpec(f"blk.{i}.ffn_gate.weight", (f, d), mat, std=d**-0.5),
                 TensorSpec(f"blk.{i}.ffn_up.weight", (f, d), mat, std=d**-0.5),
                 TensorSpec(f"blk.{i}.ffn_down.weight", (d, f), mat, std=f**-0.5)]
    text += [TensorSpec("output_norm.weight", (d,), f32, "ones"),
             TensorSpec("output.weight", (n_vocab, d), mat, std=1.0)]  # invisible-token rows zeroed

    vd, vf, p = cfg.vision_embd, cfg.vision_ff, cfg.patch_px
    n_pos = (cfg.image_px // p) ** 2 + 1
    vision = [TensorSpec("v.class_embd", (vd,), f32),
              TensorSpec("v.patch_embd.weight", (vd, 3, p, p), f16, std=(3 * p * p) ** -0.5),
              TensorSpec("v.position_embd.weight", (n_pos, vd), f16),
              TensorSpec("v.pre_ln.weight", (vd,), f32, "ones"),
              TensorSpec("v.pre_ln.bias", (vd,), f32, "zeros")]
    for i in range(cfg.vision_layers):
        for n in ("attn_q", "attn_k", "attn_v", "attn_out"):
            vision += [TensorSpec(f"v.blk.{i}.{n}.weight", (vd, vd), f16, std=vd**-0.5),
                       TensorSpec(f"v.blk.{i}.{n}.bias", (vd,), f32, "zeros")]
        for n in ("ln1", "ln2"):
            vision += [TensorSpec(f"v.blk.{i}.{n}.weight", (vd,), f32, "ones"),
                       TensorSpec(f"v.blk.{i}.{n}.bias", (vd,), f32, "zeros")]
        vision += [TensorSpec(f"v.blk.{i}.ffn_up.weight", (vf, vd), f16),
                   TensorSpec(f"v.blk.{i}.ffn_up.bias", (vf,), f32, "zeros"),
                   TensorSpec(f"v.blk.{i}.ffn_down.weight", (vd, vf), f16),
                   TensorSpec(f"v.blk.{i}.ffn_down.bias", (vd,), f32, "zeros")]
    vision += [TensorSpec("mm.0.weight", (T, vd), f16, std=vd**-0.5),
               TensorSpec("mm.0.bias", (T,), f32, "zeros"),
               TensorSpec("mm.2.weight", (T, T), f16, std=2 * T**-0.5),
               TensorSpec("mm.2.bias", (T,), f32, "zeros")]
    return {"model": text, "mmproj": vision}


def plan_nbytes(specs: list[TensorSpec]) -> int:
    """Tensor bytes of a plan (the file adds KV data, tensor infos and 32-byte padding)."""
    return sum(spec.nbytes for spec in specs)


_CHUNK = 1 << 24  # values per RNG call: 64 MB of float32 scratch
FILLS = ("normal", "tiled")


def _fill(spec: TensorSpec, rng: np.random.Generator, scratch: np.ndarray,
          pools: dict[tuple[str, float], np.ndarray] | None = None) -> np.ndarray:
    """The tensor's values, drawn in float32 chunks and cast into its storage dtype.

    With ``pools`` (the ``tiled`` fill) each ``(dtype, std)`` draws one pool of ``_CHUNK`` values
    once, already scaled and cast; a tensor is that pool repeated from a random offset: the same
    distribution per value, at memory-copy speed instead of an RNG call and a cast per value.
    """
    if spec.init == "ones":
        return np.ones(spec.shape, spec.dtype)
    if spec.init == "zeros":
        return np.zeros(spec.shape, spec.dtype)
    out = np.empty(spec.shape, spec.dtype)
    flat = out.reshape(-1)
    if pools is not None:
        key = (np.dtype(spec.dtype).str, float(spec.std))
        if key not in pools:  # sized by the first tensor of its kind (tiny models draw little)
            draws = scratch[: min(_CHUNK, max(flat.size, 1 << 16))]
            rng.standard_normal(dtype=np.float32, out=draws)
            pools[key] = (draws * np.float32(spec.std)).astype(spec.dtype)
        pool = pools[key]
        start = int(rng.integers(pool.size))
        done = 0
        while done < flat.size:
            take = min(pool.size - start, flat.size - done)
            flat[done : done + take] = pool[start : start + take]
            done, start = done + take, 0
        return out
    for start in range(0, flat.size, _CHUNK):
        buf = scratch[: min(_CHUNK, flat.size - start)]
        rng.standard_normal(dtype=np.float32, out=buf)
        buf *= spec.std
        flat[start : start + buf.size] = buf
    return out


def _stream(writer, specs: list[TensorSpec], rng: np.random.Generator, masked_rows: dict[str, np.ndarray] | None = None,
            fill: str = "normal") -> None:
    """Write the header, KV data and tensor infos, then each tensor in turn (one in memory)."""
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    for spec in specs:
        writer.add_tensor_info(spec.name, spec.shape, np.dtype(spec.dtype), spec.nbytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    scratch = np.empty(_CHUNK, np.float32)
    pools: dict[tuple[str, float], np.ndarray] | None = {} if fill == "tiled" else None
    for spec in specs:
        values = _fill(spec, rng, scratch, pools)
        if masked_rows and spec.name in masked_rows:
            values[masked_rows[spec.name]] = 0
        writer.write_tensor_data(values)
        del values
    writer.close()


def _text_kv(writer, cfg: TinyLlavaConfig, fields: dict, n_vocab: int) -> None:
    import gguf

    d = cfg.text_embd
    writer.add_context_length(cfg.context_length)
    writer.add_embedding_length(d)
    writer.add_block_count(cfg.text_layers)
    writer.add_feed_forward_length(cfg.text_ff)
    writer.add_head_count(cfg.text_heads)
    writer.add_head_count_kv(cfg.text_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(d // cfg.text_heads)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if cfg.text_dtype == "f16" else gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(writer, fields)


def _mmproj_kv(writer, cfg: TinyLlavaConfig) -> None:
    import gguf

    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_audio_encoder", False)
    writer.add_bool("clip.use_gelu", False)  # LLaVA-1.5's CLIP uses quick-gelu
    writer.add_string("clip.projector_type", "mlp")
    writer.add_uint32("clip.vision.image_size", cfg.image_px)
    writer.add_uint32("clip.vision.patch_size", cfg.patch_px)
    writer.add_uint32("clip.vision.embedding_length", cfg.vision_embd)
    writer.add_uint32("clip.vision.feed_forward_length", cfg.vision_ff)
    writer.add_uint32("clip.vision.projection_dim", cfg.text_embd)
    writer.add_uint32("clip.vision.attention.head_count", cfg.vision_heads)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_uint32("clip.vision.block_count", cfg.vision_layers)
    writer.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    writer.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])


def write_llava_shape(out_dir: Path | str, vocab_path: Path | str, config: TinyLlavaConfig,
                      fill: str = "normal") -> tuple[Path, Path]:
    """Write ``model.gguf`` and ``mmproj.gguf`` of any shape, streaming one tensor at a time.

    For production-size shapes (``TinyLlavaConfig.llava_7b_shape()``: 14.1 GB, 118 s
    on 2 cores, peak memory 0.43 GB: measured). The same layout and KV fields as ``write_tiny_llava``
    (not the same bytes: values come from float32 draws). Temporary names, then renames.
    ``fill="tiled"`` repeats one pool of draws per (dtype, scale) from a random offset in each
    tensor (see ``_fill``): the same file layout and value distribution, written at disk speed
    (drawing 7 billion normal values is most of the ``normal`` fill's time). For cost
    measurements, where values do not matter.
    """
    import gguf

    fields = _vocab_fields(vocab_path)
    n_vocab = len(fields["tokenizer.ggml.tokens"][0])
    plan = tensor_plan(config, n_vocab)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    model_path, mmproj_path = out / "model.gguf", out / "mmproj.gguf"
    tmp_model, tmp_mmproj = out / f".model.{os.getpid()}.tmp", out / f".mmproj.{os.getpid()}.tmp"
    try:
        writer = gguf.GGUFWriter(str(tmp_mmproj), "clip")
        writer.add_name("text3d llava-shape mmproj (random)")
        _mmproj_kv(writer, config)
        _stream(writer, plan["mmproj"], rng, fill=fill)
        writer = gguf.GGUFWriter(str(tmp_model), "llama")
        writer.add_name("text3d llava-shape (random)")
        _text_kv(writer, config, fields, n_vocab)
        # EOS/control/byte/space never win greedy decoding: every caption is max_tokens long
        _stream(writer, plan["model"], rng, masked_rows={"output.weight": ~_visible_token_mask(fields)}, fill=fill)
    except BaseException:
        for tmp in (tmp_model, tmp_mmproj):
            tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp_mmproj, mmproj_path)
    os.replace(tmp_model, model_path)
    return model_path, mmproj_path


def ensure_llava_7b_shape(cache_dir: Path | str | None = None, vocab_path: Path | str | None = None,
                          fill: str = "normal") -> tuple[Path, Path]:
    """The cached LLaVA-1.5-7B-shaped random pair, written on first use (14.1 GB on disk).

    Cached under ``$TEXT3D_CACHE/models/llava-7b-shape/``; delete that folder to reclaim the space.
    ``fill``: see ``write_llava_shape``.
    """
    out = Path(cache_dir) if cache_dir else text3d_cache_dir() / "models" / "llava-7b-shape"
    model_path, mmproj_path = out / "model.gguf", out / "mmproj.gguf"
    if model_path.is_file() and mmproj_path.is_file():
        return model_path, mmproj_path
    return write_llava_shape(out, vocab_path or default_vocab_path(), TinyLlavaConfig.llava_7b_shape(), fill=fill)


def ensure_tiny_llava(cache_dir: Path | str | None = None, vocab_path: Path | str | None = None) -> tuple[Path, Path]:
    """The cached tiny pair ``(model_path, mmproj_path)``, written on first use.

    Cached under ``$TEXT3D_CACHE/models/tiny-llava/`` (default ``~/.cache/text3d``);
    the vocabulary defaults to the one ``text3d/ops/llava/build_llama_server.sh`` caches.
    """
    out = Path(cache_dir) if cache_dir else text3d_cache_dir() / "models" / "tiny-llava"
    model_path, mmproj_path = out / "model.gguf", out / "mmproj.gguf"
    if model_path.is_file() and mmproj_path.is_file():
        return model_path, mmproj_path
    return write_tiny_llava(out, vocab_path or default_vocab_path())
