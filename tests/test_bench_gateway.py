"""``bench/gateway.py --smoke`` runs the real thing small and ends with one JSON line.

Rules pinned: the smoke run (2 tiny miners, a gateway, a validator worker; 1 and 2 clients)
exits 0, every job came back (the bench exits 1 with the reason otherwise), and the JSON line
has, per measurement, the miners' own answer time beside the gateway's post-to-mesh time and
their ratio, and the processes' peak memory.
"""

import json
import subprocess
import sys

import pytest

from tests.devnet_miner import child_env
from text3d.common.paths import source_root

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_gateway_bench_smoke_run_ends_with_its_figures():
    done = subprocess.run([sys.executable, str(source_root() / "bench" / "gateway.py"), "--smoke"], env=child_env(),
                          capture_output=True, text=True, timeout=540)
    last = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result = json.loads(last)
    assert result["bench"] == "gateway" and result["ok"] and result["smoke"]
    assert result["tables"] and result["environment"]["versions"]["python"]  # the harness's JSON line
    result = result["figures"]
    assert [(r["miners"], r["clients"]) for r in result["rows"]] == [(2, 1), (2, 2)]
    for row in result["rows"]:
        assert row["jobs"] >= 2 and 0 < row["direct_p50_s"] <= row["direct_p95_s"]
        assert 0 < row["gateway_p50_s"] <= row["gateway_p95_s"] and row["jobs_per_s"] > 0
        assert row["overhead_p50"] == pytest.approx(row["gateway_p50_s"] / row["direct_p50_s"], rel=0.02)
        assert row["queued_p50_s"] >= 0 and row["worker_p50_s"] > 0 and row["post_poll_fetch_p50_s"] > 0
    assert result["peak_rss_mb"]["gateway_mb"] > 0 and result["peak_rss_mb"]["worker_mb"] > 0
