"""``Library``: ask an indexed collection a question without rendering anything.

A query has up to three parts, each a number in [0, 1] per asset; the ranking key is their
product (every part must hold):

* a **description** ("a red wooden chair"): the score ``text3d score`` gives for that prompt,
  with the index's models and rig -- the same ``RewardModel`` judging the stored
  observations (``RewardModel.score_observations``): contrastive CLIP against the pinned
  contrast set (or ``contrast``), the captions when the index has them, references,
  flatness (``no_flatness`` turns it off, as in ``text3d score --no-flatness``);
* **like** a file: how much its views look like the file's (cosine of the mean CLIP image
  embeddings, clipped to [0, 1]); a file inside the library uses its stored embedding, any
  other file is loaded and observed once (the only rendering a search may do);
* a free-text **filter** ("low-poly, cartoon style"; "a clean, detailed model"): the same
  formula with the filter as the prompt and a contrast set of other styles and qualities
  (``STYLE_CONTRAST``) plus the junk texts, so it says whether CLIP prefers this style over
  the others for the asset.

Speed: the mean CLIP embedding of every indexed asset is held in memory (n x D float32,
``text3d.library.retrieval.Candidates``) and the candidates are the ``candidates`` best by
it (and by the mean caption embedding, when captioned); only those rows are read from the
store and judged with the exact formula (``evidence=False``), and the ``top`` shown are
judged again with their per-view evidence (the same numbers). ``exhaustive`` judges every
asset; a library no larger than ``candidates`` is always judged whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from text3d.library.retrieval import Candidates
from text3d.library.schema import IndexMeta, observations_of, vectors
from text3d.library.store import AssetStore, LibraryError

__all__ = ["Library", "Query", "Result", "SearchResults", "STYLE_CONTRAST"]

STYLE_CONTRAST = (
    "a realistic 3D model", "a cartoon-style 3D model", "a low-poly 3D model", "a detailed high-poly 3D model",
    "an untextured grey 3D model", "a brightly coloured 3D model", "a dark, muted 3D model",
    "a rough, noisy 3D scan", "a clean CAD model", "a voxel-art 3D model", "a toy-like 3D model",
    "a sketchy, unfinished 3D model",
)
"""Styles and qualities a filter is contrasted with (those equal to the filter left out)."""

_JUDGED = ("name", "clip", "captions", "text", "ocr", "thickness", "defences", "timings", "notes", "colours", "file",
           "path_bytes", "member", "sha256", "n_faces", "n_vertices")
"""What a candidate's row is read with: what judging needs and the few bytes a result shows (one
read per search; no fingerprint, and no thumbnail: ``Library.thumbnails`` reads those for a page)."""
_META = ("name", "colours", "notes", "file", "path_bytes", "member", "sha256", "n_faces", "n_vertices")


@dataclass(frozen=True)
class Query:
    """What to look for; at least one of ``description``, ``like``, ``filter``."""

    description: str | None = None
    references: tuple[str, ...] = ()
    like: Path | None = None
    filter: str | None = None
    top: int = 10
    candidates: int = 128
    exhaustive: bool = False
    contrast: tuple[str, ...] | None = None  # own contrast prompts (off-protocol)
    no_flatness: bool = False  # off-protocol

    def __post_init__(self) -> None:
        if not (self.description or self.like or self.filter):
            raise ValueError("a query needs a description, a file to look like, or a filter")
        if self.top < 1 or self.candidates < 1:
            raise ValueError("top and candidates must be at least 1")


@dataclass
class Result:
    """One asset found: ``key`` ranks (the product of the parts present)."""

    name: str
    key: float
    report: Any = None  # the description's RewardReport (with per-view evidence)
    likeness: float | None = None
    filter_score: float | None = None
    filter_report: Any = None
    row: dict[str, Any] = field(default_factory=dict)  # stored metadata: file, colours, notes, sha256, ...


@dataclass
class SearchResults:
    query: Query
    results: list[Result]
    counts: dict[str, int]  # the library: indexed, invalid, not_scored
    judged: int  # assets judged with the exact formula
    off_protocol: list[str]
    seconds: float = 0.0


class Library:
    """An opened index, ready for many queries (models loaded once, embeddings in memory)."""

    def __init__(self, store: AssetStore, meta: IndexMeta, device: str = "cpu") -> None:
        self.store = store
        self.meta = meta
        self.device = device
        self._model = None
        self._text = None
        table = store.scan(["name", "clip_mean", "text_mean"] if meta.text_dim else ["name", "clip_mean"],
                           status="indexed")
        self.names: list[str] = table.column("name").to_pylist()
        self.offsets = np.asarray(table.column("_offset").to_numpy(), dtype=np.int64)
        self.looks = Candidates(vectors(table.column("clip_mean"), meta.clip_dim)[0])
        self.captions = Candidates(vectors(table.column("text_mean"), meta.text_dim)[0]) if meta.text_dim else None
        self._row_of = {name: i for i, name in enumerate(self.names)}
        self._counts = {status: store.count(status) for status in ("indexed", "invalid", "not_scored")}

    @classmethod
    def open(cls, path: str | Path, device: str = "cpu") -> "Library":
        store = AssetStore.open(path)
        if store.meta is None:
            raise LibraryError(f"{path} holds no index yet; run `text3d index DIR --index {path}`")
        return cls(store, store.meta, device)

    def __len__(self) -> int:
        return len(self.names)

    def counts(self) -> dict[str, int]:
        """Rows per status when the library was opened."""
        return dict(self._counts)

    # -- models ------------------------------------------------------------------------------

    @property
    def model(self) -> Any:
        """The index's scoring model (no captioner: captions are stored), built on first use."""
        if self._model is None:
            from text3d.reward.config import RewardConfig
            from text3d.reward.factory import build_reward_model

            text = None
            if self.meta.text_model:
                from text3d.reward.text import TextEmbedder

                text = TextEmbedder.from_pretrained(self.meta.text_model, device=self.device)
            self._model = build_reward_model(self.meta.models, None, device=self.device,
                                             config=RewardConfig.model_validate(self.meta.config), text=text)
        return self._model

    def _judge_model(self, no_flatness: bool) -> Any:
        """The scoring model, or a copy judging without the flatness factor (shares the weights)."""
        if not no_flatness:
            return self.model
        from text3d.reward.model import RewardModel

        base = self.model
        return RewardModel(base.clip, base.text, None, config=base.config.model_copy(update={"min_thickness": 0.0}),
                           in_memory=base.in_memory, renderer=base._renderer, fingerprints=base.fingerprints)

    # -- searching ---------------------------------------------------------------------------

    def search(self, query: Query) -> SearchResults:
        import time

        from text3d.reward.config import off_protocol

        started = time.perf_counter()
        model = self._judge_model(query.no_flatness)
        flags = off_protocol(model.config)
        if query.contrast is not None:
            flags = ["own contrast prompts (--contrast)", *flags]
        if not self.names:
            return SearchResults(query, [], self.counts(), 0, flags, time.perf_counter() - started)
        like, itself = self._embedding_of(Path(query.like)) if query.like is not None else (None, None)
        picked = [i for i in self._candidates(query, like) if self.names[i] != itself]
        table = self.store.take(self.offsets[picked].tolist(), _JUDGED)
        observations = observations_of(table, self.meta)
        rows = table.select(list(_META)).to_pylist()
        n = len(observations)
        keys = np.ones(n)
        description = filtered = None
        if query.description:
            description = self._judge(model, observations, query.description, query.references, query.contrast)
            keys *= [r.score for r in description]
        if query.filter:
            filtered = self._judge(model, observations, query.filter, (), self._style_contrast(query.filter))
            keys *= [r.score for r in filtered]
        likeness = None
        if like is not None:
            likeness = np.clip(self.looks.similarity(like, np.asarray(picked, dtype=np.int64)), 0.0, 1.0)
            keys *= likeness
        order = sorted(range(n), key=lambda i: (-keys[i], rows[i]["name"]))[:query.top]
        shown = [rows[i] for i in order]
        results = self._results(model, query, order, keys, shown, observations, description, filtered, likeness)
        return SearchResults(query, results, self.counts(), n, flags, time.perf_counter() - started)

    def thumbnails(self, names: Sequence[str]) -> dict[str, bytes | None]:
        """The stored thumbnails (PNG) of ``names`` (indexed assets), for a results page."""
        known = [n for n in names if n in self._row_of]
        table = self.store.take([int(self.offsets[self._row_of[n]]) for n in known], ["name", "thumbnail"])
        return dict(zip(table.column("name").to_pylist(), table.column("thumbnail").to_pylist()))

    def _judge(self, model: Any, observations: list, prompt: str, references: Sequence[str],
               contrast: Sequence[str] | None, evidence: bool = False) -> list:
        n = len(observations)
        return model.score_observations(observations, [prompt] * n, [list(references)] * n,
                                        rig=self._rig(), evidence=evidence,
                                        distractors=None if contrast is None else [list(contrast)] * n)

    def _rig(self) -> Any:
        from text3d.reward.render.camera import canonical_rig

        return canonical_rig(self.model.config.rig)

    @staticmethod
    def _style_contrast(text: str) -> tuple[str, ...]:
        key = text.strip().lower()
        return tuple(s for s in STYLE_CONTRAST if s.lower() != key)

    def _results(self, model, query, order, keys, shown_rows, observations, description, filtered,
                 likeness) -> list[Result]:
        shown = [observations[i] for i in order]
        full = self._judge(model, shown, query.description, query.references, query.contrast,
                           evidence=True) if description is not None else [None] * len(order)
        full_filter = self._judge(model, shown, query.filter, (), self._style_contrast(query.filter),
                                  evidence=True) if filtered is not None else [None] * len(order)
        results = []
        for j, i in enumerate(order):
            row = shown_rows[j]
            if full[j] is not None:
                full[j].notes.extend(json.loads(row["notes"]) if row.get("notes") else [])
            results.append(Result(name=row["name"], key=float(keys[i]), report=full[j],
                                  likeness=None if likeness is None else float(likeness[i]),
                                  filter_score=None if filtered is None else float(filtered[i].score),
                                  filter_report=full_filter[j], row=row))
        return results

    def _candidates(self, query: Query, like: np.ndarray | None) -> list[int]:
        """Indices (into ``names``) of the assets judged exactly: all of a small library (or
        ``exhaustive``), else the best ``candidates`` by each part's mean-embedding proxy."""
        n = len(self.names)
        if query.exhaustive or n <= query.candidates:
            return list(range(n))
        k = max(query.candidates, query.top)
        picked = []
        for text, contrast in ((query.description, query.contrast), (query.filter, self._style_contrast(
                query.filter or ""))):
            if not text:
                continue
            # encoded in the batch judging will use, so the cached embedding is the judge's own
            q = self.model.clip.encode_texts(self.model.judged_texts(text, distractors=contrast)).numpy()[0]
            picked.append(self.looks.top(q, k))
            if self.captions is not None and self.model.text is not None:
                picked.append(self.captions.top(self.model.text.embed([text], cache=False)[0], k))
        if like is not None:
            picked.append(self.looks.top(like, k))
        return sorted(set(np.concatenate(picked).tolist()))

    def _embedding_of(self, path: Path) -> tuple[np.ndarray, str | None]:
        """The file's mean CLIP view embedding: stored when the file is in the library
        (same bytes), else observed now under the index's rig; and its name in the library."""
        from text3d.library.work import _unit_mean, file_digest
        from text3d.reward.assets.loader import AssetLimits, discover, load_asset
        from text3d.reward.errors import InvalidAssetError

        limits = AssetLimits()
        digest = file_digest(path, limits.max_file_bytes)
        real = os.path.realpath(path)
        if real.startswith(self.meta.root + os.sep) and digest is not None:
            name = Path(os.path.relpath(real, self.meta.root)).as_posix()
            if name in self._row_of:
                stored = self.store.take([int(self.offsets[self._row_of[name]])], ["sha256"]).to_pylist()[0]
                if stored["sha256"] == digest:
                    return self.looks.vectors[self._row_of[name]], name
        root, entries = discover(path, limits)
        meshes = [e for e in entries if e.kind == "mesh"]
        if not meshes:
            reason = entries[0].reason if entries else "not found"
            raise LibraryError(f"--like {path}: not a mesh file ({reason})")
        try:
            asset = load_asset(meshes[0], root, limits)
        except InvalidAssetError as exc:
            raise LibraryError(f"--like {path}: cannot be loaded ({exc})") from None
        (observation,) = self.model.observe_batch([asset.mesh], rig=self._rig())
        if observation.reason is not None:
            raise LibraryError(f"--like {path}: cannot be rendered ({observation.reason})")
        return _unit_mean(observation.image_embeddings), None


