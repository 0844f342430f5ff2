"""``bench/library.py --smoke`` runs every stage at toy sizes -- indexing in one process and on
Ray Data with 1 and 2 workers, re-scoring with ``text3d score``, search latency on the real
index and a synthetic one, bytes per asset -- and ends with one JSON line holding each
figure; a fault anywhere makes it exit non-zero with the reason on its last line."""

import json
import os
import subprocess
import sys

import pytest

from text3d.common.paths import source_root

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]


def test_the_smoke_run_reports_every_figure():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "bench/library.py", "--smoke"], cwd=source_root(), env=env,
                          capture_output=True, text=True, timeout=1100)
    last = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, last + done.stderr[-2000:]
    result = json.loads(last)
    assert result["bench"] == "library" and result["ok"] is True and result["smoke"] is True
    assert [t["title"].split(" (")[0] for t in result["tables"]] == [
        "Indexing", "Search latency against re-scoring with text3d score",
        "Search: what a query costs besides its latency", "Index size"]
    summary = result["figures"]
    index = summary["index"]
    assert index["assets_per_s_one_process"] > 0 and set(index["assets_per_s_ray"]) == {"1", "2"}
    assert index["ray_2_vs_1_workers"] > 0 and index["ray_1_vs_one_process"] > 0
    assert summary["real_index"]["p95_ms"] > 0 and summary["real_index"]["rescore_vs_search"] > 1
    assert summary["real_index"]["bytes_per_asset"] > 0 and summary["bytes_per_asset_real_shape"] > 0
    (size,) = summary["search"]
    assert summary["search"][size]["judged"] > 0 and summary["search"][size]["candidate_recall_vs_exact"] == 1.0


def test_a_fault_is_a_non_zero_exit_with_the_reason_last():
    """An empty library: ``text3d score`` refuses it (exit 78), so the bench must fail loudly."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "bench/library.py", "--smoke", "--no-ray", "--assets", "0"],
                          cwd=source_root(), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert done.stdout.strip().splitlines()[-1].startswith("FAILED library: ")
