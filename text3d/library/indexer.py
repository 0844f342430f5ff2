"""Index a folder of assets once; re-index only what changed.

``index_library(source, index, spec)``:

1. **discover** every file under ``source`` (archive members included) with the rules of
   ``text3d score`` (``text3d.reward.assets.loader.discover``): nothing is skipped silently;
2. **plan** against what the index remembers (``plan_run``): a file whose size and mtime are
   unchanged, and whose referenced files (MTL, textures, buffers) are unchanged, is kept; a
   changed stat with the same SHA-256 only updates the stat (a copy, a touch); anything else
   is (re-)indexed; names no longer found are deleted; files that are not assets are stored
   as ``not_scored`` with their reason;
3. **work** (``text3d.library.work.AssetWorker``): in this process, or on a Ray cluster with
   Ray Data (``RayOptions``): the jobs become a dataset and ``map_batches`` runs an actor pool
   of workers, each with its own models (GPU actors with ``num_gpus``);
4. **write**: rows stream back to this process, the one writer, in chunks (upserts by key),
   so an interrupted run keeps what it wrote and the next run resumes from there.

On a 2-core machine a Ray actor pool that reserves both CPUs starves Ray Data's read tasks
and hangs (``ray.init(num_cpus=2)`` with two actors waited past 300 s): ``RayOptions.resolve`` sizes the pool below the cluster's CPUs or
gives each actor a fraction of one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from text3d.library.store import AssetStore, LibraryError, StoredFile
from text3d.library.work import AssetWorker, IndexSpec, Job, decode_rows, file_digest

__all__ = ["IndexStats", "Plan", "RayOptions", "index_library", "plan_run", "index_meta", "display_name"]

_WRITE_EVERY = 64  # rows per write: the most an interruption can lose


def display_name(name: str) -> str:
    """A name as stored (valid UTF-8): bytes a file system allows but UTF-8 does not (a
    stranger's ``b'\\xff.ply'``) are kept visible as ``\\xff`` escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass
class RayOptions:
    """Where and how wide to run (``text3d index --ray-address``). ``workers`` 0: one per GPU
    with ``num_gpus`` > 0, else the cluster's CPUs minus one (at least one)."""

    address: str
    workers: int = 0
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 8

    def resolve(self, cluster_cpus: float, cluster_gpus: float) -> "RayOptions":
        """Concrete sizes for a cluster: never an actor pool that reserves every CPU (the
        read tasks would starve and Ray Data would wait forever)."""
        workers = self.workers
        if workers <= 0:
            workers = int(cluster_gpus // self.num_gpus) if self.num_gpus > 0 else max(1, int(cluster_cpus) - 1)
        if self.num_gpus > 0 and workers * self.num_gpus > cluster_gpus:
            raise LibraryError(f"{workers} workers x {self.num_gpus:g} GPUs do not fit the cluster's "
                               f"{cluster_gpus:g} GPUs; lower --ray-workers or --ray-gpus")
        spare = max(cluster_cpus - 0.5, 0.1)  # half a CPU stays free for the read tasks
        num_cpus = min(self.num_cpus, spare / max(workers, 1))
        return RayOptions(self.address, workers, round(num_cpus, 3), self.num_gpus, self.batch_size)


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    not_scored: list[dict[str, Any]] = field(default_factory=list)  # rows to write as they are
    deleted: list[str] = field(default_factory=list)
    touched: list[tuple[str, int, int]] = field(default_factory=list)
    unchanged: int = 0
    new: int = 0
    changed: int = 0


@dataclass
class IndexStats:
    """What a run did, and the index afterwards."""

    files: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    touched: int = 0
    indexed: int = 0  # rows of status indexed, after the run
    invalid: int = 0
    not_scored: int = 0
    worked: int = 0  # assets loaded and observed in this run
    seconds: float = 0.0
    work_seconds: float = 0.0
    mode: str = "local"
    workers: int = 1
    interrupted: bool = False

    @property
    def assets_per_s(self) -> float:
        return self.worked / self.work_seconds if self.work_seconds > 0 else 0.0


def index_meta(spec: IndexSpec, root: Path, views: int, clip_dim: int, text_dim: int, clip_name: str,
               text_model: str | None, captioner: str | None, protocol_digest: str, rig: dict) -> Any:
    from text3d.library.schema import IndexMeta

    return IndexMeta(models=spec.models, clip=clip_name, text_model=text_model, captioner=captioner,
                     caption=spec.caption_spec(), ocr=spec.ocr, config=spec.config, rig=rig, views=views,
                     clip_dim=clip_dim, text_dim=text_dim, root=os.path.realpath(root),
                     protocol_digest=protocol_digest)


def plan_run(root: Path, entries: list, stored: dict[str, StoredFile], max_file_bytes: int) -> Plan:
    """What a run must do (see the module docstring); reads only what changed."""
    plan = Plan()
    root_real = os.path.realpath(root)
    found: set[str] = set()
    digests: dict[str, str | None] = {}  # one hash per file (an archive's members share it)

    def digest(path: Path) -> str | None:
        key = os.path.realpath(path)
        if key not in digests:
            digests[key] = file_digest(key, max_file_bytes)
        return digests[key]

    for entry in entries:
        name = display_name(entry.name)
        found.add(name)
        before = stored.get(name)
        if entry.kind != "mesh":
            reason = str(entry.reason)
            if before is None or before.status != "not_scored" or before.reason != reason:
                plan.new += before is None
                plan.changed += before is not None
                plan.not_scored.append(_stored_row({"name": name, "status": "not_scored", "reason": reason,
                                                    "file": _relative(entry.path, root), "member": entry.member,
                                                    "indexed_at": time.time()}))
            else:
                plan.unchanged += 1
            continue
        try:
            info = os.stat(entry.path)
            size, mtime = int(info.st_size), int(info.st_mtime_ns)
        except OSError:
            size, mtime = 0, 0
        fresh = before is not None and before.status in ("indexed", "invalid")
        if fresh and before.size_bytes == size and before.mtime_ns == mtime and _deps_same(before.deps, root_real):
            plan.unchanged += 1
            continue
        sha = digest(entry.path)
        if fresh and sha is not None and sha == before.file_sha256 and _deps_same(before.deps, root_real):
            plan.touched.append((name, size, mtime))
            continue
        plan.changed += before is not None
        plan.new += before is None
        plan.jobs.append(Job(name=name, file=_relative(entry.path, root), member=entry.member, size_bytes=size,
                             mtime_ns=mtime, file_sha256=sha))
    plan.deleted = sorted(set(stored) - found)
    return plan


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name


def _deps_same(deps: dict[str, Any], root_real: str) -> bool:
    """Whether the files an asset read are as they were, and the ones it missed still missing."""
    for dep in deps.get("files", ()):
        path = os.path.join(root_real, dep["path"])
        try:
            info = os.stat(path)
        except OSError:
            return False
        if (info.st_size, info.st_mtime_ns) != (dep["size"], dep["mtime_ns"]):
            if file_digest(path, max(info.st_size, 1)) != dep["sha256"]:
                return False
    return not any(os.path.lexists(os.path.join(root_real, missing)) for missing in deps.get("missing", ()))


def index_library(
    source: str | Path,
    index: str | Path,
    spec: IndexSpec,
    *,
    batch_size: int = 8,
    ray: RayOptions | None = None,
    rebuild: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> IndexStats:
    """Index ``source`` into the store at ``index`` (created if needed); see the module docstring.

    Raises ``LibraryError`` (an index with other settings, a store that cannot be used),
    ``ConfigError`` (a Ray address that does not answer), ``ModelUnavailable`` /
    ``ValidatorFault`` (models, captioner, renderer: our side). ``KeyboardInterrupt`` stops
    after the rows written so far (``stats.interrupted``)."""
    from text3d.reward.assets.loader import discover

    started = time.perf_counter()
    source = Path(source)
    store = AssetStore.open(index, create=True)
    limits = spec.limits()
    root, entries = discover(source, limits)
    stats = IndexStats(files=len(entries), mode="ray" if ray else "local")
    worker = None
    try:
        if ray is None:
            worker = AssetWorker(spec, str(root))
            meta = _meta_from_worker(worker, spec, root)
        else:
            ray = _join(ray)
            stats.workers = ray.workers
            meta = _describe_on_ray(spec, root, ray)
        store.adopt(meta, rebuild=rebuild)
        stored = store.stored_files()
        plan = plan_run(root, entries, stored, limits.max_file_bytes)
        stats.new, stats.changed, stats.unchanged = plan.new, plan.changed, plan.unchanged
        stats.deleted = len(plan.deleted)
        store.delete(plan.deleted + [j.name for j in plan.jobs if j.name in stored])
        for name, size, mtime in plan.touched:
            store.touch(name, size, mtime)
        stats.touched = len(plan.touched)
        store.upsert(plan.not_scored)
        work_started = time.perf_counter()
        rows = _run_local(worker, plan.jobs, batch_size) if worker is not None else _run_ray(plan.jobs, spec, root, ray)
        try:
            _write(store, rows, len(plan.jobs), stats, progress)
        except KeyboardInterrupt:
            stats.interrupted = True
        stats.work_seconds = time.perf_counter() - work_started
        if not stats.interrupted:
            store.optimize()
    finally:
        if worker is not None:
            worker.close()
    stats.indexed, stats.invalid = store.count("indexed"), store.count("invalid")
    stats.not_scored = store.count("not_scored")
    stats.seconds = time.perf_counter() - started
    return stats


def _meta_from_worker(worker: AssetWorker, spec: IndexSpec, root: Path) -> Any:
    model = worker.model
    rig = model.rig_for(None)
    text_dim = model.text.dim if (model.text is not None and spec.captioner is not None) else 0
    return index_meta(spec, root, views=rig.n_views or model.config.n_views, clip_dim=_clip_dim(model),
                      text_dim=text_dim, clip_name=model.clip.name,
                      text_model=model.text.model_id if text_dim else None, captioner=model.captioner_name,
                      protocol_digest=model.protocol_digest(), rig=rig.to_dict())


def _clip_dim(model: Any) -> int:
    dim = model.clip.embed_dim
    if dim > 0:
        return dim
    return int(model.clip.encode_texts(["a probe"]).shape[1])


def _describe(spec: IndexSpec, root: str) -> str:
    """The index's settings as a worker on the cluster sees them (JSON of ``IndexMeta``)."""
    worker = AssetWorker(spec, root)
    try:
        return _meta_from_worker(worker, spec, Path(root)).model_dump_json()
    finally:
        worker.close()


def _join(options: RayOptions) -> RayOptions:
    """Connect to the cluster and size the pool for it."""
    from text3d.ops.ray_cluster import connect

    forwarded = {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "TEXT3D_CACHE", "HF_HOME", "HF_HUB_CACHE")
                 if k in os.environ}
    connect(options.address, flag="--ray-address", modules=("ray.data",),
            install="pip install 'text3d[library]' (ray[data]==2.60.0)", env_vars=forwarded)
    import ray

    resources = ray.cluster_resources()
    return options.resolve(float(resources.get("CPU", 1)), float(resources.get("GPU", 0)))


def _describe_on_ray(spec: IndexSpec, root: Path, options: RayOptions) -> Any:
    """Build the scoring model once on the cluster (where the workers' models live) to learn
    the index's settings; the driver stays light (no GPU, no 1.7 GB CLIP here)."""
    import ray

    from text3d.library.schema import IndexMeta

    remote = ray.remote(num_cpus=options.num_cpus, num_gpus=options.num_gpus)(_describe)
    return IndexMeta.model_validate_json(ray.get(remote.remote(spec, str(root))))


def _run_local(worker: AssetWorker, jobs: list[Job], batch_size: int) -> Iterable[dict[str, Any]]:
    for start in range(0, len(jobs), batch_size):
        yield from worker.rows(jobs[start:start + batch_size])


def _run_ray(jobs: list[Job], spec: IndexSpec, root: Path, options: RayOptions) -> Iterable[dict[str, Any]]:
    """The same ``AssetWorker`` as an actor pool on Ray Data; rows stream back to this process."""
    if not jobs:
        return
    import ray

    import logging

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = sys.stderr.isatty()
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    items = [{"job": json.dumps(job.to_dict())} for job in jobs]
    blocks = max(1, min(len(items) // max(options.batch_size, 1), 256))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    dataset = dataset.map_batches(AssetWorker, fn_constructor_args=(spec, str(root)), batch_size=options.batch_size,
                                  compute=ray.data.ActorPoolStrategy(size=options.workers), num_cpus=options.num_cpus,
                                  num_gpus=options.num_gpus, batch_format="numpy")
    for batch in dataset.iter_batches(batch_size=_WRITE_EVERY, batch_format="pyarrow"):
        yield from decode_rows(batch.to_pydict())


def _write(store: AssetStore, rows: Iterable[dict[str, Any]], total: int, stats: IndexStats,
           progress: Callable[[int, int], None] | None) -> None:
    """Append rows in chunks as they come (an interruption loses at most one chunk); their
    names are new to the table (changed files' rows were deleted when the run was planned)."""
    pending: list[dict[str, Any]] = []
    try:
        for row in rows:
            pending.append(_stored_row(row))
            stats.worked += 1
            if len(pending) >= _WRITE_EVERY:
                store.append(pending)
                pending = []
            if progress is not None:
                progress(stats.worked, total)
    finally:
        if pending:
            store.append(pending)


def _stored_row(row: dict[str, Any]) -> dict[str, Any]:
    """File names as stored: valid UTF-8 text for people, the exact bytes for reopening."""
    file = row.get("file")
    if isinstance(file, str):
        row["path_bytes"] = os.fsencode(file)
        row["file"] = display_name(file)
    return row
