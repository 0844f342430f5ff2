"""The per-asset work of indexing: file -> load -> observe -> one row. Same code in one
process and in a Ray Data actor.

``IndexSpec`` says what to build (model set, ``RewardConfig``, captioner, OCR, device,
limits): plain data, so a Ray actor on another machine builds the same scoring model.
``AssetWorker(spec, root)`` holds that model and turns a batch of ``Job``s into rows of the
``assets`` table (``text3d.library.schema``):

1. every file of the batch is loaded (``text3d.reward.assets.loader``: the same hostile-file
   rules as ``text3d score``; an archive member from the worker's own unpacked copy);
2. the loaded meshes are observed together (``RewardModel.observe_batch``: views under the
   canonical rig, defences, CLIP embeddings, captions); when that raises something
   unexpected, they are observed one by one and only an asset that still fails is invalid,
   with the exception in its reason -- the rule of ``RewardModel.score_batch``;
3. each asset becomes a row: its observation, fingerprint, a thumbnail, its metadata and the
   files it read (size, mtime, SHA-256), so a later run can tell whether it changed.

A captioner that is down, a missing model, a renderer that fails (``ValidatorFault``) is the
indexer's fault: it propagates and stops the run, and no asset is marked invalid for it.
Workers never open the LanceDB store: rows go back to the one writer (LanceDB's runtime
does not survive a fork, and one writer keeps the table consistent).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["IndexSpec", "Job", "AssetWorker", "file_digest", "encode_rows", "decode_rows", "THUMBNAIL_PX"]

THUMBNAIL_PX = 128


@dataclass(frozen=True)
class IndexSpec:
    """Everything a worker needs to build the scoring model of an index (picklable)."""

    models: str  # "real" | "tiny"
    config: dict[str, Any]  # RewardConfig.model_dump(mode="json")
    captioner: dict[str, Any] | None = None  # CaptionerConfig.model_dump(mode="json") (api_key left out)
    ocr: bool = False
    device: str = "cpu"
    max_file_bytes: int = 64 << 20

    def reward_config(self):
        from text3d.reward.config import RewardConfig

        return RewardConfig.model_validate(self.config)

    def limits(self):
        from text3d.reward.assets.loader import AssetLimits

        return AssetLimits(max_file_bytes=self.max_file_bytes)

    def caption_spec(self) -> dict[str, Any] | None:
        """The caption settings that change captions (what the index's rows were asked with)."""
        if self.captioner is None:
            return None
        keys = ("model", "instruction", "include_prompt", "max_tokens", "temperature", "seed")
        return {k: self.captioner.get(k) for k in keys}


@dataclass(frozen=True)
class Job:
    """One asset to index: its entry (``name``, ``file`` relative to the root, ``member``),
    and the file's stat and digest taken when the run was planned."""

    name: str
    file: str
    member: str | None = None
    size_bytes: int = 0
    mtime_ns: int = 0
    file_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_digest(path: str | Path, max_bytes: int) -> str | None:
    """SHA-256 hex of a file's bytes (None when it cannot be read or is over ``max_bytes``)."""
    digest = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        import stat

        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


class AssetWorker:
    """Builds the spec's scoring model once; ``__call__(jobs) -> rows`` (see the module docstring).

    Also a Ray Data callable class: ``map_batches(AssetWorker, fn_constructor_args=(spec, root))``
    hands it batches as ``{"job": [json, ...]}`` and gets ``encode_rows(rows)`` back.
    """

    def __init__(self, spec: IndexSpec, root: str) -> None:
        from text3d.reward.assets.archives import ArchiveCache
        from text3d.reward.factory import build_reward_model

        self.spec = spec
        self.root = Path(root)
        self.root_real = os.path.realpath(root)
        self.limits = spec.limits()
        self.archives = ArchiveCache(self.limits.archives)
        weakref.finalize(self, self.archives.close)  # also at interpreter exit, whoever forgets close()
        captioner = None
        if spec.captioner is not None:
            from text3d.reward.caption_client import CaptionerConfig, OpenAICaptioner

            captioner = OpenAICaptioner(CaptionerConfig.model_validate(spec.captioner))
        ocr = None
        if spec.ocr:
            from text3d.reward.defences.ocr import RapidOcrEngine

            ocr = RapidOcrEngine()
        self.model = build_reward_model(spec.models, captioner, device=spec.device, config=spec.reward_config(),
                                        ocr=ocr)
        self.rig = self.model.rig_for(None)

    def close(self) -> None:
        self.archives.close()
        if self.model.captioner is not None and hasattr(self.model.captioner, "close"):
            self.model.captioner.close()

    # -- Ray Data's calling convention ---------------------------------------------------

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        """One Ray Data batch. The archives unpacked for it are removed before returning: Ray
        ends an actor's process without running its clean-up, and a pool must not leave
        unpacked copies in /tmp (a batch holds consecutive jobs, so an archive's members
        mostly share one unpacking)."""
        jobs = [Job(**json.loads(text)) for text in batch["job"]]
        try:
            return encode_rows(self.rows(jobs))
        finally:
            self.archives.close()

    # -- the work --------------------------------------------------------------------------

    def rows(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """One row per job, in order."""
        from text3d.reward.assets.loader import Entry, load_asset
        from text3d.reward.errors import InvalidAssetError

        loaded: list[Any] = []
        for job in jobs:
            entry = Entry(job.name, self.root / job.file, "mesh", member=job.member)
            try:
                loaded.append(load_asset(entry, self.root, self.limits, self.archives))
            except InvalidAssetError as exc:
                loaded.append(str(exc) or "cannot be loaded")
        assets = [a for a in loaded if not isinstance(a, str)]
        observations = iter(self._observe([a.mesh for a in assets]))
        out = []
        for job, item in zip(jobs, loaded):
            if isinstance(item, str):
                out.append(self._row(job, None, None, item))
                continue
            observation = next(observations)
            out.append(self._row(job, item, observation, observation.reason))
        return out

    def _observe(self, meshes: list) -> list:
        from text3d.reward.errors import ResourceExhausted, ValidatorFault
        from text3d.reward.observation import Observation

        if not meshes:
            return []
        try:
            return self.model.observe_batch(meshes, rig=self.rig)
        except (ValidatorFault, ResourceExhausted, ValueError) as exc:
            if isinstance(exc, (ValidatorFault, ResourceExhausted)) or "include_prompt" in str(exc):
                raise
        except Exception:  # noqa: BLE001 - blamed below, one asset at a time
            pass
        out = []
        for mesh in meshes:
            try:
                out.extend(self.model.observe_batch([mesh], rig=self.rig))
            except (ValidatorFault, ResourceExhausted):
                raise
            except Exception as exc:  # noqa: BLE001 - this asset, not the run
                out.append(Observation(reason=f"observing this asset raised {type(exc).__name__}: {str(exc)[:200]}"))
        return out

    def _row(self, job: Job, asset: Any, observation: Any, reason: str | None) -> dict[str, Any]:
        file_path = self.root / job.file
        row: dict[str, Any] = {
            "name": job.name, "status": "invalid" if reason is not None else "indexed", "reason": reason,
            "file": job.file, "member": job.member, "size_bytes": job.size_bytes, "mtime_ns": job.mtime_ns,
            "file_sha256": job.file_sha256, "sha256": job.file_sha256, "indexed_at": time.time(),
        }
        if job.member is not None:
            row["sha256"] = self._member_digest(job)
        if asset is not None:
            row.update(colours=asset.colours, notes=json.dumps(asset.notes), n_vertices=len(asset.mesh.vertices),
                       n_faces=asset.n_faces, deps=json.dumps(self._deps(asset, file_path)))
        if observation is not None:
            row["defences"] = json.dumps(observation.defences)
            row["timings"] = json.dumps({k: round(v, 6) for k, v in observation.timings.items()})
            row["thickness"] = observation.thickness
        if reason is None and observation is not None:
            row.update(self._observed(observation))
        return row

    def _observed(self, observation: Any) -> dict[str, Any]:
        import numpy as np

        clip = np.asarray(observation.image_embeddings, dtype=np.float32)
        out: dict[str, Any] = {"clip": clip.reshape(-1), "clip_mean": _unit_mean(clip)}
        if observation.captions is not None:
            out["captions"] = json.dumps(list(observation.captions))
            if observation.caption_embeddings is not None:
                text = np.asarray(observation.caption_embeddings, dtype=np.float32)
                out["text"], out["text_mean"] = text.reshape(-1), _unit_mean(text)
        if observation.ocr is not None:
            out["ocr"] = json.dumps([{"text": v.text, "chars": v.chars, "rejected": v.rejected}
                                     for v in observation.ocr])
        if observation.fingerprint is not None:
            from text3d.library.schema import store_fingerprint

            out["fingerprint"] = store_fingerprint(observation.fingerprint)
        if observation.images:
            out["thumbnail"] = _thumbnail(observation.images[0])
        return out

    def _deps(self, asset: Any, file_path: Path) -> dict[str, Any]:
        """The files an asset read besides itself (stat + digest) and the references it missed,
        relative to the library root: what tells a later run that the asset changed."""
        own = os.path.realpath(file_path)
        deps = []
        for source in asset.sources:
            if source == own or not source.startswith(self.root_real + os.sep):
                continue  # the file itself, or an archive member's private copy
            try:
                info = os.stat(source)
            except OSError:
                continue
            deps.append({"path": os.path.relpath(source, self.root_real), "size": info.st_size,
                         "mtime_ns": info.st_mtime_ns, "sha256": file_digest(source, self.limits.max_file_bytes)})
        missing = sorted({os.path.relpath(os.path.realpath(m), self.root_real) for m in asset.missing
                          if os.path.realpath(m).startswith(self.root_real + os.sep)})
        return {"files": deps, "missing": missing}

    def _member_digest(self, job: Job) -> str | None:
        from text3d.reward.errors import InvalidAssetError

        try:
            _, path = self.archives.member(self.root / job.file, job.member)
        except InvalidAssetError:
            return None
        return file_digest(path, self.limits.max_file_bytes)


def _unit_mean(vectors: Any) -> Any:
    import numpy as np

    mean = np.asarray(vectors, dtype=np.float64).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return (mean / norm if norm > 0 else mean).astype(np.float32)


def _thumbnail(image: Any) -> bytes:
    from PIL import Image

    small = image.convert("RGB").resize((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.BOX)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


_VECTORS = ("clip", "clip_mean", "text", "text_mean")
_BLOBS = ("fingerprint", "thumbnail")


def encode_rows(rows: list[dict[str, Any]]) -> dict[str, list]:
    """Rows -> columns for Ray's object store: scalars as one JSON text per row, vectors as
    raw little-endian float32 bytes and blobs as bytes (Arrow binary columns, no copies
    through JSON)."""
    import numpy as np

    columns: dict[str, list] = {"row": []}
    for key in _VECTORS + _BLOBS:
        columns[key] = []
    for row in rows:
        columns["row"].append(json.dumps({k: v for k, v in row.items() if k not in _VECTORS + _BLOBS}))
        for key in _VECTORS:
            value = row.get(key)
            columns[key].append(None if value is None else np.asarray(value, dtype="<f4").tobytes())
        for key in _BLOBS:
            columns[key].append(row.get(key))
    return columns


def decode_rows(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """The inverse of ``encode_rows`` (vectors come back as float32 arrays)."""
    import numpy as np

    rows = []
    for i, text in enumerate(columns["row"]):
        row = json.loads(text)
        for key in _VECTORS:
            value = columns[key][i]
            row[key] = None if value is None else np.frombuffer(value, dtype="<f4").copy()
        for key in _BLOBS:
            value = columns[key][i]
            row[key] = None if value is None else bytes(value)
        rows.append(row)
    return rows
