"""What an asset library stores per file, and the index's own description of itself.

One LanceDB table, ``assets``, one row per file found (archive members included), so every
file is accounted for as in ``text3d score``: ``status`` is ``indexed`` (observed: views
embedded), ``invalid`` (an asset that cannot be scored: score 0, with the reason) or
``not_scored`` (not an asset: a texture, a text file; with the reason).

Per indexed row, the prompt-free half of scoring (``text3d.reward.observation.Observation``)
under the index's canonical rig: CLIP image embeddings per view (``clip``: V x D float32,
flattened) and their normalised mean (``clip_mean``, for candidate retrieval); captions
(JSON) and their text embeddings (``text``, V x T) with their mean (``text_mean``) when
indexed with a captioner; the OCR of each view when indexed with OCR; the thickness and the
other defence evidence; the geometry (+ view) fingerprint
(``text3d.reward.defences.fingerprint.Fingerprint.to_bytes``); a thumbnail (PNG of the
first view); and the file's metadata: size, mtime, SHA-256 of its bytes, the files it read
(``deps``: MTL, textures, buffers; what the incremental re-index checks), colours, notes,
vertex and face counts.

``IndexMeta`` (``library.json`` beside the table) pins what the rows mean: the model set and
names, the full ``RewardConfig`` (rig, formula constants), the captioner and its caption
settings, the dimensions. A search rebuilds exactly that scoring model; an index run with
other settings is refused instead of mixing two kinds of rows.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FORMAT_VERSION", "IndexMeta", "STATUSES", "arrow_schema", "vectors", "observations_of", "name_key",
           "store_fingerprint", "load_fingerprint"]

FORMAT_VERSION = 1
STATUSES = ("indexed", "invalid", "not_scored")
TABLE = "assets"
META_FILE = "library.json"


class IndexMeta(BaseModel):
    """The settings an index was built with (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT_VERSION
    models: str  # "real" | "tiny"
    clip: str  # ClipScorer.name
    text_model: str | None = None  # set when captions were indexed
    captioner: str | None = None
    caption: dict[str, Any] | None = None  # the caption spec the captions were asked with
    ocr: bool = False
    config: dict[str, Any]  # RewardConfig.model_dump(mode="json")
    rig: dict[str, Any]  # the canonical rig's to_dict()
    views: int = Field(ge=1)
    clip_dim: int = Field(ge=1)
    text_dim: int = Field(0, ge=0)
    root: str  # the library folder's real path when it was indexed
    protocol_digest: str

    def same_settings(self, other: "IndexMeta") -> list[str]:
        """The settings that differ from ``other``, in words (``["n_views 2, asked 3"]``);
        empty when rows of both may share one table."""
        out = []
        for key in ("format", "models", "clip", "text_model", "captioner", "caption", "ocr"):
            if getattr(self, key) != getattr(other, key):
                out.append(f"{key} {getattr(self, key)!r}, asked {getattr(other, key)!r}")
        for key in sorted(set(self.config) | set(other.config)):
            if self.config.get(key) != other.config.get(key):
                out.append(f"{key} {self.config.get(key)!r}, asked {other.config.get(key)!r}")
        if not out and (self.rig, self.views, self.clip_dim, self.text_dim) != (other.rig, other.views, other.clip_dim,
                                                                                 other.text_dim):
            out.append("the rig or the embedding sizes")
        return out


def arrow_schema(views: int, clip_dim: int, text_dim: int) -> pa.Schema:
    """The ``assets`` table of an index with ``views`` views of ``clip_dim``-d CLIP embeddings
    and ``text_dim``-d caption embeddings (0: no captions)."""
    text = [pa.field("text", pa.list_(pa.float32(), views * max(text_dim, 1))),
            pa.field("text_mean", pa.list_(pa.float32(), max(text_dim, 1)))]
    return pa.schema([
        pa.field("key", pa.int64(), nullable=False),  # name_key(name): deletes and upserts by number, no SQL text
        pa.field("name", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("file", pa.string()),  # the file (or archive) relative to the library root, for people
        pa.field("path_bytes", pa.binary()),  # the same path's exact bytes (os.fsencode), for reopening it
        pa.field("member", pa.string()),  # the member's name inside an archive
        pa.field("size_bytes", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("sha256", pa.string()),  # of the asset's own bytes (the member's, for a member)
        pa.field("file_sha256", pa.string()),  # of the file (the archive, for a member): change detection
        pa.field("deps", pa.string()),  # JSON: [{"path", "size", "mtime_ns", "sha256"}] and {"missing": [...]}
        pa.field("colours", pa.string()),
        pa.field("notes", pa.string()),  # JSON list
        pa.field("n_vertices", pa.int64()),
        pa.field("n_faces", pa.int64()),
        pa.field("clip", pa.list_(pa.float32(), views * clip_dim)),
        pa.field("clip_mean", pa.list_(pa.float32(), clip_dim)),
        pa.field("captions", pa.string()),  # JSON list, one per view
        *text,
        pa.field("ocr", pa.string()),  # JSON list of {"text", "chars", "rejected"} per view
        pa.field("thickness", pa.float64()),
        pa.field("defences", pa.string()),  # JSON
        pa.field("fingerprint", pa.binary()),  # zstd of Fingerprint.to_bytes() (views are mostly background)
        pa.field("thumbnail", pa.binary()),  # PNG
        pa.field("timings", pa.string()),  # JSON seconds per stage
        pa.field("indexed_at", pa.float64()),  # unix seconds
    ])


def name_key(name: str) -> int:
    """A row's key: the first 8 bytes of SHA-256(name) as a signed int64. Rows are deleted and
    replaced by key (``key IN (1, 2)``), so no file name -- a stranger's text -- is ever
    written into a SQL filter."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()[:8], "big", signed=True)


def vectors(column: pa.ChunkedArray | pa.Array, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed-size-list column -> (float32 [N, dim] with zero rows for nulls, bool [N] valid)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    out = np.zeros((len(array), dim), dtype=np.float32)
    if valid.any():
        out[valid] = array.filter(pa.array(valid)).flatten().to_numpy().reshape(-1, dim)
    return out, valid


_MAX_FINGERPRINT_BYTES = 4 << 20  # decompressed; a real one (8 views at 32 px) is ~51 KB


def store_fingerprint(fingerprint: Any) -> bytes:
    """``Fingerprint.to_bytes()`` compressed with zstd for the ``fingerprint`` column: its view
    block is float16 renders at 32 px, mostly flat background, which compresses several-fold."""
    import zstandard

    return zstandard.ZstdCompressor(level=3).compress(fingerprint.to_bytes())


def load_fingerprint(data: bytes) -> Any:
    """The inverse of ``store_fingerprint``; ``ValueError`` for anything else, including
    data that would decompress past 4 MiB (an index is a file someone could have edited)."""
    import zstandard

    from text3d.reward.defences.fingerprint import Fingerprint

    try:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            raw = reader.read(_MAX_FINGERPRINT_BYTES + 1)
    except zstandard.ZstdError as exc:
        raise ValueError(f"not a stored fingerprint: {exc}") from None
    if len(raw) > _MAX_FINGERPRINT_BYTES:
        raise ValueError("a stored fingerprint decompresses past 4 MiB")
    return Fingerprint.from_bytes(raw)


def observations_of(table: pa.Table, meta: IndexMeta) -> list[Any]:
    """Indexed rows (an Arrow table with the judged columns) -> their ``Observation``s, the
    vectors sliced from one array per column (not a Python float per number)."""
    from text3d.reward.defences.ocr import OcrView
    from text3d.reward.observation import Observation

    n, views = table.num_rows, meta.views
    if n == 0:
        return []
    clip = vectors(table.column("clip"), views * meta.clip_dim)[0].reshape(n, views, meta.clip_dim)
    text = text_valid = None
    if meta.text_dim and "text" in table.column_names:
        text, text_valid = vectors(table.column("text"), views * meta.text_dim)
        text = text.reshape(n, views, meta.text_dim)
    columns = {name: table.column(name).to_pylist() for name in ("captions", "ocr", "thickness", "defences",
                                                                    "timings") if name in table.column_names}
    out = []
    for i in range(n):
        captions = json.loads(columns["captions"][i]) if columns.get("captions") and columns["captions"][i] else None
        ocr = columns.get("ocr", [None] * n)[i]
        defences, timings = columns.get("defences", [None] * n)[i], columns.get("timings", [None] * n)[i]
        out.append(Observation(
            image_embeddings=clip[i], captions=captions,
            caption_embeddings=text[i] if captions is not None and text is not None and text_valid[i] else None,
            captioner=meta.captioner if captions is not None else None,
            ocr=[OcrView(**v) for v in json.loads(ocr)] if ocr else None,
            thickness=columns.get("thickness", [None] * n)[i],
            defences=json.loads(defences) if defences else {}, timings=json.loads(timings) if timings else {}))
    return out
