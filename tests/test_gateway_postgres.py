"""Two gateway processes on one PostgreSQL server share keys, quotas and jobs.

A throwaway PostgreSQL 15 server (``tests/postgres_server.py``: initdb + pg_ctl as the
``postgres`` user on a free port), two real ``text3d gateway`` processes pointed at it through
``TEXT3D_GATEWAY__STORE``, and a key made with ``text3d gateway keys create``. Rules pinned:
- 30 posts with that key, spread over both processes at once, admit exactly its per-minute
  limit of 10; the rest are 429 with Retry-After;
- a job posted to one process is seen, with its status, through the other;
- a key revoked with ``text3d gateway keys revoke`` stops working on both at once.
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.devnet_miner import child_env
from tests.postgres_server import PostgresServer
from text3d.common.paths import source_root
from text3d.demo import LocalSubnet, ProcessGroup, wait_until
from text3d.ops.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_gateways_on_one_postgres_share_keys_quotas_and_jobs(tmp_path):
    subnet = LocalSubnet.create(tmp_path / "devnet", validators=("validator",), miners=())
    with PostgresServer() as pg:
        env = child_env(TEXT3D_GATEWAY__STORE=pg.url)
        cli = [sys.executable, "-m", "text3d.cli.main", "gateway"]
        created = subprocess.run([*cli, "keys", "create", "--name", "shared app", "--per-minute", "10",
                                  "--concurrency", "100"], env=env, capture_output=True, text=True, timeout=120)
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        assert key.startswith("t3d_") and "shown once" in created.stderr
        ports = [free_port(), free_port()]
        with ProcessGroup(tmp_path / "logs", cwd=source_root(), env=env) as group:
            for i, port in enumerate(ports):
                group.start(f"gateway{i}", [*cli, "--subtensor.network", "devnet", "--devnet.db",
                                            str(subnet.chain.db_path), "--gateway.port", str(port)])
            for port in ports:
                wait_until(lambda port=port: healthy(port), timeout_s=120, what=f"the gateway on {port}",
                           check=group.check_alive)

            def post(i: int) -> httpx.Response:
                return httpx.post(f"http://127.0.0.1:{ports[i % 2]}/v1/assets", json={"prompt": f"a chair {i}"},
                                  headers={"Authorization": f"Bearer {key}"}, timeout=30.0)

            with ThreadPoolExecutor(max_workers=6) as pool:
                responses = list(pool.map(post, range(30)))
            codes = [r.status_code for r in responses]
            assert codes.count(202) == 10 and codes.count(429) == 20, codes
            assert {i % 2 for i, r in enumerate(responses) if r.status_code == 202} == {0, 1}  # both admitted some
            assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code == 429)

            job = next(r.json() for i, r in enumerate(responses) if r.status_code == 202 and i % 2 == 0)
            seen = httpx.get(f"http://127.0.0.1:{ports[1]}/v1/assets/{job['id']}",
                             headers={"Authorization": f"Bearer {key}"})
            assert seen.status_code == 200 and seen.json()["prompt"] == job["prompt"]

            revoked = subprocess.run([*cli, "keys", "revoke", "shared app"], env=env, capture_output=True, text=True,
                                     timeout=120)
            assert revoked.returncode == 0 and "revoked" in revoked.stdout
            for port in ports:
                refused = httpx.get(f"http://127.0.0.1:{port}/v1/assets/{job['id']}",
                                    headers={"Authorization": f"Bearer {key}"})
                assert refused.status_code == 401
            listing = subprocess.run([*cli, "keys", "list"], env=env, capture_output=True, text=True, timeout=120)
            assert "shared app" in listing.stdout and "revoked" in listing.stdout and key not in listing.stdout
