"""Asset libraries on Ray Data (``text3d index --ray-address``). Rule pinned here: a local Ray
cluster the test starts (2 CPUs, as on this machine) and stops runs the same per-asset work
as one process and produces the same index -- the same rows, statuses, reasons, hashes,
dependencies, colours and notes, the same fingerprints and embeddings (to 1e-6: Ray gives
each actor its own BLAS thread count, and sums in another order differ in the last bits),
and the same search ranking -- with an actor pool sized so Ray Data's read tasks are not
starved (two actors reserving both CPUs hang).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from text3d.common.paths import source_root
from tests.asset_corpus import write_corpus
from tests.library_fixtures import TINY

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

COLUMNS = ("name", "status", "reason", "file", "member", "size_bytes", "sha256", "file_sha256", "deps", "colours",
           "notes", "n_vertices", "n_faces", "captions", "thickness", "clip", "clip_mean", "fingerprint")


@pytest.fixture
def private_tmp(monkeypatch):
    """A short temporary folder of this test's own as TMPDIR (Ray's sockets live under it: short
    paths), so what the index runs leave behind there can be counted."""
    folder = Path(tempfile.mkdtemp(prefix="t3r", dir="/tmp"))
    monkeypatch.setenv("TMPDIR", str(folder))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ray_cluster(private_tmp):
    """A local Ray cluster for this test only (2 CPUs; its workers inherit TMPDIR); its GCS
    address. Shut down afterwards."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _text3d(*argv) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("RAY_AUTH_MODE", None)  # as in an operator's shell: the index command finds the cluster's token
    return subprocess.run([sys.executable, "-m", "text3d.cli.main", *map(str, argv)], cwd=source_root(), env=env,
                          capture_output=True, text=True, timeout=600)


def test_ray_data_produces_the_index_one_process_produces(tmp_path, ray_cluster, private_tmp):
    from text3d.library.schema import load_fingerprint
    from text3d.library.store import AssetStore

    folder = tmp_path / "library"
    write_corpus(folder)
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    done = _text3d("index", folder, "--index", local, *TINY)
    assert done.returncode == 0, done.stderr[-2000:]
    done = _text3d("index", folder, "--index", on_ray, *TINY, "--ray-address", ray_cluster, "--batch-size", "4")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "on Ray (1 workers)" in done.stdout  # 2 CPUs: one actor, half a CPU kept for the read tasks

    assert AssetStore.open(local).meta.same_settings(AssetStore.open(on_ray).meta) == []
    a, b = _rows(local), _rows(on_ray)
    assert sorted(a) == sorted(b)
    for name in a:
        for column in COLUMNS:
            x, y = a[name][column], b[name][column]
            if column in ("clip", "clip_mean") and x is not None:
                assert np.allclose(x, y, atol=1e-6, rtol=0), (name, column)
            elif column == "fingerprint" and x is not None:
                fx, fy = load_fingerprint(x), load_fingerprint(y)
                assert np.allclose(fx.cloud.points, fy.cloud.points, atol=1e-3), name  # stored as float16
                assert np.allclose(fx.cloud.weights, fy.cloud.weights, atol=1e-6) and np.array_equal(fx.views, fy.views)
            elif column == "thickness" and x is not None:
                assert x == pytest.approx(y, abs=1e-9), name
            else:
                assert x == y, (name, column)

    rankings = []
    for index in (local, on_ray):
        done = _text3d("search", index, "a red cube", "--top", "100", "--format", "csv")
        assert done.returncode == 0, done.stderr[-2000:]
        rankings.append([line.split(",")[1] for line in done.stdout.splitlines()[1:]])
    assert rankings[0] == rankings[1] and len(rankings[0]) == sum(r["status"] == "indexed" for r in a.values())

    again = _text3d("index", folder, "--index", on_ray, *TINY, "--ray-address", ray_cluster)
    assert again.returncode == 0 and " 0 new, 0 changed," in again.stdout  # incremental on Ray too
    # the corpus's archives were unpacked by the actors and the local run: no copy is left behind
    assert sorted(p.name for p in private_tmp.glob("text3d-archive-*")) == []


def _rows(index):
    from text3d.library.store import AssetStore

    return {r["name"]: r for r in AssetStore.open(index).scan(list(COLUMNS)).drop_columns(["_offset"]).to_pylist()}
