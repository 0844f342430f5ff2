"""Asset libraries: indexing throughput (one process, Ray Data with 1 and 2 workers), search
latency at 1,000 / 10,000 / 100,000 assets against re-scoring with ``text3d score``, bytes
per asset, and peak memory against the library size.

What is measured, and how:

* **indexing** -- ``text3d index`` in a fresh child process (its peak RSS from ``wait4``) over
  a folder of generated assets (a quarter each: textured GLB, vertex-coloured PLY, OBJ + MTL,
  plain STL; every one different), with the tiny random models: one process, then a local
  Ray cluster this script starts (``ray.init(num_cpus=<this machine's CPUs>)``) with 1 and 2
  actors. Two library sizes give the marginal assets/s and the RSS growth per 1,000 assets
  (memory flat in the library size means that growth is small). On a 2-core machine a
  second actor can only share the same two cores, so the Ray ratios measure the engine's
  overhead here, not a cluster's speed-up (that needs more cores or GPUs).
* **re-scoring** -- ``text3d score`` on the same folder for one prompt (child process): the
  cost a library saves on every question.
* **search** -- ``Library.search`` (the engine of ``text3d search``) on a loaded index, many
  different prompts after one warm-up each, p50 / p95 of the query (the prompt's CLIP text
  embedding is cached by the warm-up and reported separately: ``text_embed_ms``). The real
  index from the indexing runs, plus synthetic stores with embeddings of the real shape (8
  views x 768, ViT-L-14's width, unit vectors around a per-asset direction) at 1,000,
  10,000 and 100,000 assets, judged by a ViT-L-14-shaped CLIP with random weights (its
  text tower embeds the prompts; the cost of a real one). Re-scoring those sizes is
  extrapolated from the measured per-asset rate (tiny models: the real CLIP would make
  re-scoring ~50x slower on this CPU, so the ratio is a lower bound).
* **bytes per asset** -- the index folder's size over its rows, for the real index and for
  a synthetic store whose rows carry real-shape fingerprints and thumbnails.

    python bench/library.py [--assets 40,160] [--sizes 1000,10000,100000] [--queries 20]
    python bench/library.py --smoke          # seconds-sized: every stage, tiny sizes

Runs under ``bench/_harness.py``: exits non-zero with ``FAILED library: <reason>`` last when
any stage faults; otherwise the tables, then one JSON line.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench._harness import Bench, duration, run  # noqa: E402

SMOKE = {"assets": "4,8", "sizes": "300", "queries": 3, "views": 2, "resolution": 64}
SMOKE_TEST = "tests/test_bench_library.py::test_the_smoke_run_reports_every_figure"
PACKAGES = ("lancedb", "pyarrow", "ray", "open_clip_torch", "torch", "trimesh")

PROMPTS = ("a red wooden chair", "a blue ceramic vase", "a green sports car", "a yellow rubber duck", "an old lamp",
           "a stone tower", "a leather boot", "a silver robot", "a wooden boat", "a round table", "a pine tree",
           "a brass trumpet", "a glass bottle", "a grand piano", "a toy rocket", "a white teapot", "a black cat",
           "a cupcake", "a backpack", "a golden crown")


def write_assets(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` distinct assets, four kinds in turn (see the module docstring)."""
    import numpy as np
    import trimesh
    from PIL import Image

    from text3d.protocol.mesh_codec import MeshFormat, encode_mesh
    from tests.asset_corpus import quadrant_texture, textured_cube

    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=2)
    base = np.asarray(quadrant_texture(64))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        kind = i % 4
        bumps = 1.0 + 0.2 * np.sin(sphere.vertices @ rng.normal(size=3) * 3.0)
        vertices = sphere.vertices * bumps[:, None]
        name = folder / f"{i:05d}"
        if kind == 0:
            texture = Image.fromarray(np.roll(base, int(rng.integers(64)), axis=1))
            name.with_suffix(".glb").write_bytes(encode_mesh(textured_cube(texture), MeshFormat.GLB))
        elif kind == 1:
            colours = np.concatenate([np.tile(rng.integers(0, 256, 3), (len(vertices), 1)),
                                      np.full((len(vertices), 1), 255)], axis=1).astype(np.uint8)
            mesh = trimesh.Trimesh(vertices, sphere.faces, vertex_colors=colours, process=False)
            name.with_suffix(".ply").write_bytes(encode_mesh(mesh, MeshFormat.PLY))
        elif kind == 2:
            rgb = rng.uniform(0, 1, 3)
            name.with_suffix(".mtl").write_text(f"newmtl m\nKd {rgb[0]:.3f} {rgb[1]:.3f} {rgb[2]:.3f}\n")
            lines = [f"mtllib {name.name}.mtl"] + [f"v {x:.5f} {y:.5f} {z:.5f}" for x, y, z in vertices]
            lines += ["usemtl m"] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in sphere.faces]
            name.with_suffix(".obj").write_text("\n".join(lines) + "\n")
        else:
            trimesh.Trimesh(vertices, sphere.faces, process=False).export(name.with_suffix(".stl"))


def child(argv: list[str]) -> dict:
    """Run ``text3d ARGV`` in a fresh process; wall seconds, its peak RSS (``wait4``), stdout.
    A failure raises with the end of its stderr."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "text3d.cli.main", *argv], cwd=REPO, env=env, stdout=out,
                                   stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"text3d {argv[0]} failed (rc {process.returncode}): {stderr[-800:]}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "out": stdout}


def observed_rate(out: str) -> float:
    """assets/s of the observing phase, from ``text3d index``'s "observed N assets ... (R assets/s)"."""
    for line in out.splitlines():
        if line.startswith("observed ") and "assets/s" in line:
            return float(line.rsplit("(", 1)[1].split()[0])
    raise RuntimeError("text3d index printed no throughput line")


def bench_indexing(tmp: Path, sizes: list[int], flags: list[str], ray_address: str | None) -> dict:
    """One process at each size (peak RSS), then Ray with 1 and 2 workers at the largest."""
    out: dict = {"local": {}, "ray": {}}
    for n in sizes:
        folder = tmp / f"assets_{n}"
        write_assets(folder, n)
        index = tmp / f"index_{n}"
        run = child(["index", str(folder), "--index", str(index), *flags])
        out["local"][n] = {"wall_s": round(run["wall_s"], 2), "assets_per_s": observed_rate(run["out"]),
                           "peak_rss_mb": round(run["peak_rss_mb"], 1)}
        print(f"index {n} assets, one process: {out['local'][n]}", file=sys.stderr)
    largest = sizes[-1]
    if ray_address is not None:
        for workers in (1, 2):
            index = tmp / f"index_ray{workers}"
            run = child(["index", str(tmp / f"assets_{largest}"), "--index", str(index), *flags, "--ray-address",
                         ray_address, "--ray-workers", str(workers)])
            out["ray"][workers] = {"wall_s": round(run["wall_s"], 2), "assets_per_s": observed_rate(run["out"])}
            print(f"index {largest} assets, Ray {workers} workers: {out['ray'][workers]}", file=sys.stderr)
    return out


def synthetic_store(path: Path, n: int, views: int, dim: int, rng, *, full_rows: bool = False,
                    real_rows: list[dict] | None = None) -> object:
    """An index of ``n`` rows with unit CLIP view embeddings of the real shape, clustered as a
    real collection is (``n / 100`` kinds of object; an asset near its kind, a view near its
    asset); ``full_rows`` adds a real fingerprint and thumbnail to each (cycled from
    ``real_rows``). Returns the kinds' centres (for in-distribution queries)."""
    import numpy as np

    from text3d.library.schema import IndexMeta
    from text3d.library.store import AssetStore
    from text3d.reward.config import RewardConfig
    from text3d.reward.render.camera import canonical_rig

    config = RewardConfig(n_views=views)
    store = AssetStore.open(path, create=True)
    store.adopt(IndexMeta(models="synthetic", clip=f"random-{dim}", config=config.model_dump(mode="json"),
                          rig=canonical_rig(config.rig).to_dict(), views=views, clip_dim=dim, root=str(path),
                          protocol_digest="synthetic"))
    kinds = rng.standard_normal((max(10, n // 100), dim)).astype(np.float32)
    kinds /= np.linalg.norm(kinds, axis=1, keepdims=True)
    chunk = 5000
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        asset = kinds[rng.integers(len(kinds), size=count)] + 0.04 * rng.standard_normal((count, dim)).astype(np.float32)
        clip = asset[:, None, :] + 0.02 * rng.standard_normal((count, views, dim)).astype(np.float32)
        clip /= np.linalg.norm(clip, axis=2, keepdims=True)
        mean = clip.mean(axis=1)
        mean /= np.linalg.norm(mean, axis=1, keepdims=True)
        rows = []
        for i in range(count):
            row = {"name": f"synthetic/{start + i:06d}.glb", "status": "indexed", "file": f"{start + i:06d}.glb",
                   "clip": clip[i].reshape(-1), "clip_mean": mean[i], "thickness": 0.5,
                   "defences": json.dumps({"thickness": 0.5}), "colours": "vertex colours", "notes": "[]",
                   "size_bytes": 50_000, "sha256": f"{start + i:064x}"}
            if full_rows and real_rows:
                real = real_rows[(start + i) % len(real_rows)]
                row.update(fingerprint=real["fingerprint"], thumbnail=real["thumbnail"])
            rows.append(row)
        store.append(rows)
    store.optimize()
    return kinds


def open_synthetic(path: Path, clip) -> object:
    """A ``Library`` over a synthetic store, judging with ``clip`` (no captions)."""
    from text3d.library.search import Library
    from text3d.reward.config import RewardConfig
    from text3d.reward.model import RewardModel

    library = Library.open(path)
    library._model = RewardModel(clip, None, None, config=RewardConfig.model_validate(library.meta.config))
    return library


def time_queries(library, prompts: list[str], top: int = 10) -> dict:
    """Warm up each prompt once (its text embedding cached), then time one query per prompt
    twice over; p50 / p95 in ms, and the text-embedding time of a new prompt."""
    from text3d.common.timing import median, percentile
    from text3d.library.search import Query

    text_ms = []
    library.model.clip.clear_cache()  # a new library, new prompts: nothing embedded yet
    for prompt in prompts:
        started = time.perf_counter()
        library.model.clip.encode_texts(library.model.judged_texts(prompt))
        text_ms.append(1000 * (time.perf_counter() - started))
        library.search(Query(description=prompt, top=top))
    latencies = []
    for _ in range(2):
        for prompt in prompts:
            started = time.perf_counter()
            results = library.search(Query(description=prompt, top=top))
            latencies.append(1000 * (time.perf_counter() - started))
            if len(results.results) != min(top, len(library)):
                raise RuntimeError(f"a search for {prompt!r} returned {len(results.results)} results of "
                                   f"{min(top, len(library))}")
    return {"p50_ms": round(median(latencies), 2), "p95_ms": round(percentile(latencies, 95), 2),
            "queries": len(latencies), "judged": results.judged,
            "text_embed_ms": round(median(text_ms[1:] or text_ms), 1)}


def candidate_recall(library, kinds, rng, queries: int = 20, k: int = 128) -> float:
    """Share of the exact first pass's top ``k`` that the library's first pass also returns,
    for queries near a kind of object (as a text embedding of one is): 1.0 without the
    coarse pass."""
    import numpy as np

    looks, hits = library.looks, []
    for _ in range(queries):
        q = kinds[rng.integers(len(kinds))] + 0.05 * rng.standard_normal(kinds.shape[1]).astype(np.float32)
        q /= np.linalg.norm(q)
        hits.append(len(set(looks.top(q, k).tolist()) & set(looks.exact_top(q, k).tolist())) / min(k, len(looks)))
    return round(float(np.mean(hits)), 4)


def production_shaped_clip(smoke: bool):
    """ViT-L-14 with random weights (the production width and cost), or the tiny CLIP in smoke runs."""
    from text3d.reward.clip import ClipScorer

    if smoke:
        from text3d.reward.tiny_clip import ensure_tiny_clip

        name, weights = ensure_tiny_clip()
        return ClipScorer.from_pretrained(name, weights, device="cpu")
    import open_clip
    import torch

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-L-14", pretrained=None, device="cpu")
    model.eval()
    return ClipScorer(model, preprocess, open_clip.get_tokenizer("ViT-L-14"), model_name="ViT-L-14",
                      pretrained="random", device="cpu")


def rss_mb() -> float:
    """This process's resident memory now (not its peak: several libraries live here in turn)."""
    import psutil

    return psutil.Process().memory_info().rss / (1 << 20)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--assets", default="40,160", help="real library sizes indexed (comma-separated)")
    parser.add_argument("--sizes", default="1000,10000,100000", help="synthetic library sizes searched")
    parser.add_argument("--queries", type=int, default=20, help="different prompts per size")
    parser.add_argument("--views", type=int, default=8, help="views per asset")
    parser.add_argument("--resolution", type=int, default=128, help="view size in pixels")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Data runs")


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    sizes = sorted({int(a) for a in args.assets.split(",")})
    searched = sorted({int(s) for s in args.sizes.split(",")})
    flags = ["--models", "tiny", "--views", str(args.views), "--resolution", str(args.resolution), "--device", "cpu"]
    summary: dict = {"views": args.views, "resolution_px": args.resolution}
    tmp = Path(tempfile.mkdtemp(prefix="text3d-bench-library-"))
    ray = None
    try:
        address = None
        if not args.no_ray:
            import ray

            ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, logging_level="ERROR",
                     log_to_driver=False)
            address = ray.get_runtime_context().gcs_address
        indexing = bench_indexing(tmp, sizes, flags, address)
        if ray is not None:
            ray.shutdown()  # its processes idle on the same two cores: not part of a search
            ray = None
        small, large = sizes[0], sizes[-1]
        local = indexing["local"]
        summary["index"] = {
            "assets_per_s_one_process": local[large]["assets_per_s"],
            "assets_per_s_ray": {w: r["assets_per_s"] for w, r in indexing["ray"].items()},
            "ray_1_vs_one_process": round(indexing["ray"][1]["assets_per_s"] / local[large]["assets_per_s"], 3)
            if indexing["ray"] else None,
            "ray_2_vs_1_workers": round(indexing["ray"][2]["assets_per_s"] / indexing["ray"][1]["assets_per_s"], 3)
            if indexing["ray"] else None,
            "peak_rss_mb": {n: r["peak_rss_mb"] for n, r in local.items()},
            "rss_growth_per_1000_assets_mb": round(1000 * (local[large]["peak_rss_mb"] - local[small]["peak_rss_mb"])
                                                   / max(large - small, 1), 1),
        }
        rescore = child(["score", str(tmp / f"assets_{large}"), "--prompt", PROMPTS[0], "--format", "none", *flags])
        rescore_per_asset_s = rescore["wall_s"] / large

        from text3d.library.search import Library
        from text3d.library.store import AssetStore

        real = Library.open(tmp / f"index_{large}")
        bench.check(len(real) == large, f"the index of {large} assets holds {len(real)} rows")
        real.model  # models loaded before the clock runs
        real_latency = time_queries(real, list(PROMPTS[: args.queries]))
        store = AssetStore.open(tmp / f"index_{large}")
        summary["real_index"] = {"assets": len(real), **real_latency,
                                 "rescore_s": round(rescore["wall_s"], 2),
                                 "rescore_vs_search": round(1000 * rescore["wall_s"] / real_latency["p50_ms"], 1),
                                 "bytes_per_asset": round(store.disk_bytes() / max(store.count(), 1))}
        bench.log(f"real index: {summary['real_index']}")

        import numpy as np

        rng = np.random.default_rng(0)
        clip = production_shaped_clip(bench.smoke)
        dim = int(clip.encode_texts(["probe"]).shape[1])
        rows = store.scan(["fingerprint", "thumbnail"], status="indexed").to_pylist()
        full = tmp / "synthetic_full"
        synthetic_store(full, min(searched[0], 1000), args.views, dim, rng, full_rows=True, real_rows=rows)
        full_store = AssetStore.open(full)
        summary["bytes_per_asset_real_shape"] = round(full_store.disk_bytes() / full_store.count())
        shutil.rmtree(full)
        summary["search"] = {}
        for n in searched:
            path = tmp / f"synthetic_{n}"
            before = time.perf_counter()
            kinds = synthetic_store(path, n, args.views, dim, rng)
            write_s = time.perf_counter() - before
            before = time.perf_counter()
            library = open_synthetic(path, clip)
            open_s = time.perf_counter() - before
            latency = time_queries(library, list(PROMPTS[: args.queries]))
            latency["open_s"] = round(open_s, 2)
            held = library.looks.vectors.nbytes + (library.looks.projected.nbytes if library.looks.coarse else 0)
            latency["held_in_memory_mb"] = round(held / (1 << 20), 1)
            latency["coarse_pass"] = library.looks.coarse
            latency["candidate_recall_vs_exact"] = candidate_recall(library, kinds, rng)
            latency.update(write_s=round(write_s, 1), rss_mb=round(rss_mb(), 1),
                           rescore_s_extrapolated=round(rescore_per_asset_s * n, 1),
                           rescore_vs_search=round(1000 * rescore_per_asset_s * n / latency["p50_ms"], 1))
            summary["search"][n] = latency
            bench.log(f"synthetic {n}: {latency}")
            del library
            shutil.rmtree(path)
        largest = summary["search"][searched[-1]]
        summary["target_p95_ms"] = 100.0
        summary["target_met"] = largest["p95_ms"] < 100.0 if searched[-1] >= 100_000 else None
        summary["embedding_dim"] = dim
    finally:
        if ray is not None:
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    index = summary["index"]
    rows = [[f"{n:,} assets, one process", r["assets_per_s"], r["peak_rss_mb"]] for n, r in local.items()]
    rows += [[f"{large:,} assets, Ray Data, {w} worker{'s' if w > 1 else ''}", r["assets_per_s"], "-"]
             for w, r in indexing["ray"].items()]
    bench.table(f"Indexing ({args.views} views of {args.resolution} px, tiny models)",
                ["run", "assets/s", "peak RSS (MB)"], rows,
                note=f"RSS growth per 1,000 assets: {index['rss_growth_per_1000_assets_mb']} MB. A Ray actor "
                     f"pool shares this machine's {os.cpu_count()} cores with the read tasks: the Ray ratios "
                     "(1 worker vs one process, 2 vs 1) measure the engine's overhead here, not a cluster's "
                     "speed-up.")
    real_index = summary["real_index"]
    search_rows = [[f"{real_index['assets']:,} real assets (tiny CLIP)", real_index["p50_ms"], real_index["p95_ms"],
                    duration(real_index["rescore_s"]), f"{real_index['rescore_vs_search']:,}x"]]
    search_rows += [[f"{n:,} assets, {dim}-wide embeddings", r["p50_ms"], r["p95_ms"],
                     f"~{duration(r['rescore_s_extrapolated'])} (extrapolated)", f"{r['rescore_vs_search']:,}x"]
                    for n, r in summary["search"].items()]
    bench.table("Search latency against re-scoring with text3d score",
                ["library", "p50 (ms)", "p95 (ms)", "re-scoring", "re-scoring / search p50"], search_rows,
                note=f"{args.queries} different prompts per size, each timed twice after a warm-up. Synthetic "
                     "libraries are judged by a CLIP of the production width with random weights; their "
                     "re-scoring is extrapolated from the measured per-asset rate with the tiny models (a "
                     "lower bound: the production CLIP is slower still).")
    detail_rows = [[f"{real_index['assets']:,} real assets (tiny CLIP)", real_index["judged"], "1.0 (exact)", "-",
                    "-", real_index["text_embed_ms"]]]
    detail_rows += [[f"{n:,} assets, {dim}-wide embeddings", r["judged"],
                     f"{r['candidate_recall_vs_exact']}{' (coarse pass)' if r['coarse_pass'] else ' (exact)'}",
                     r["held_in_memory_mb"], r["open_s"], r["text_embed_ms"]] for n, r in summary["search"].items()]
    bench.table("Search: what a query costs besides its latency",
                ["library", "assets judged exactly", "first pass agrees with exact", "held in memory (MB)",
                 "opening the index (s)", "a new prompt's text embedding (ms)"], detail_rows,
                note="The first pass ranks every asset by its mean view embedding and hands the best to the "
                     "exact judgement (the formula of text3d score); its agreement is the share of the exact "
                     "pass's best it keeps, for queries near a kind of object (--exhaustive judges everything). "
                     "Opening the index reads the mean embeddings once per text3d search process; a new "
                     "prompt is embedded once by CLIP's text tower, then cached.")
    bench.table("Index size", ["index", "bytes per asset"],
                [["real assets (thumbnails, fingerprints, every view's embedding)", real_index["bytes_per_asset"]],
                 [f"real-shape rows ({args.views} x {dim} embeddings)", summary["bytes_per_asset_real_shape"]]])
    bench.headline(f"Library search: {largest['p95_ms']} ms p95 over {searched[-1]:,} assets "
                   f"(re-scoring them: ~{duration(largest['rescore_s_extrapolated'])}).")
    return summary


if __name__ == "__main__":
    sys.exit(run("library", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES))
