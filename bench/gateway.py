"""Gateway: organic requests' post-to-mesh time and throughput, beside the miners' own answer time.

Real processes on a SQLite devnet, as ``text3d demo`` runs them: tiny miners (``--miners 2,4``:
random-weight Shap-E on the CPU, grid 16), one ``text3d gateway`` (SQLite store) and one validator
(tiny CLIP, no captioner, 2 views at 64 px) working for it with ``--gateway.jobs 4``. For each miner
count, and each number of concurrent clients (``--clients 1,4,16``):

- **direct** (the baseline, measured in the same run): the validator's wallet asks the miners itself
  through the production ``MinerClient`` (signed, same timeout), as many prompts as the gateway gets,
  at the same concurrency: the miners' own answer time, which any organic job waits for at least;
- **gateway**: that many prompts posted by that many concurrent ``GatewayClient``s (polling every
  0.2 s), each timed from the post until its mesh is downloaded: p50/p95, and jobs per second over
  the wall time;
- **overhead**: gateway p50 / direct p50. An organic job asks k = min(4, miners) miners, waits up to
  ``--gateway.wait_s`` after the first answer, decodes and scores every answer (render, CLIP) in the
  validator's one executor, uploads, and the client polls: the ratio says what all that costs on top
  of the miners' own time. The job's own timestamps split it: queued (post -> a worker claims it),
  worker (claim -> result stored: the miners, the scoring, the upload) and the rest (the post, the
  client's polling every 0.2 s, the download): the gateway's own share is the queue wait it adds
  and the rest.

Peak memory: VmHWM of the gateway and the validator processes. The bench fails (exit 1, the reason
on the last line) when a job fails, a direct request is not answered ok or a process dies.

    python bench/gateway.py [--miners 2,4] [--clients 1,4,16] [--jobs-per-client 2] [--min-jobs 8]
    python bench/gateway.py --smoke          # 2 miners, 1 and 2 clients, 2 jobs each (tests/test_bench_gateway.py)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._harness import Bench, BenchFailure, duration, median, percentile, run  # noqa: E402
from text3d.ops.net import free_port  # noqa: E402

PROMPTS = ["a red wooden chair", "a blue ceramic teapot", "a yellow toy car", "a green glass bottle",
           "a white marble bust", "a brown leather boot", "an orange traffic cone", "a silver spoon"]
SMOKE = {"miners": "2", "clients": "1,2", "jobs_per_client": 1, "min_jobs": 2}
SMOKE_TEST = "tests/test_bench_gateway.py::test_the_gateway_bench_smoke_run_ends_with_its_figures"
PACKAGES = ("httpx", "uvicorn", "fastapi", "bittensor", "torch")


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def direct(subnet, miners: list[str], prompts: list[str], clients: int, timeout_s: float) -> list[float]:
    """Seconds of each miner answer, asked by the validator's wallet at ``clients`` at once (round-robin)."""
    from text3d.protocol.wire import TextTo3DRequest
    from text3d.validator.client import MinerClient, Target

    graph = subnet.chain.metagraph()
    targets = []
    for name in miners:
        neuron = graph.neuron(subnet.uids[name])
        targets.append(Target(uid=neuron.uid, hotkey=neuron.hotkey, ip=neuron.axon_ip, port=neuron.axon_port))

    async def run() -> list[float]:
        client = MinerClient(subnet.wallet("validator"), max_concurrency=clients)
        try:
            answers = await asyncio.gather(*(
                client.query(targets[i % len(targets)], TextTo3DRequest(prompt=p, seed=i, timeout_s=timeout_s), timeout_s)
                for i, p in enumerate(prompts)))
        finally:
            await client.aclose()
        bad = [a for a in answers if a.status != "ok"]
        if bad:
            raise BenchFailure(f"a miner failed a direct request: uid {bad[0].uid} {bad[0].status} {bad[0].detail}")
        return [float(a.elapsed_s) for a in answers]

    return asyncio.run(run())


def _unix(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def through_gateway(url: str, key: str, prompts: list[str], clients: int,
                    timeout_s: float) -> tuple[list[tuple[float, float, float]], float]:
    """Per prompt, with ``clients`` concurrent callers: (post-to-mesh s, queued s, worker s); and the wall time.

    queued: created -> claimed by the worker; worker: claimed -> result stored (the job's own timestamps);
    the rest of post-to-mesh is the post, the client's polling (every 0.2 s) and the download.
    """
    from text3d.gateway.client import GatewayClient, JobFailed

    def one(prompt: str) -> tuple[float, float, float]:
        with GatewayClient(url, key) as client:
            started = time.perf_counter()
            job = client.submit(prompt)
            try:
                done = client.wait(job["id"], timeout_s=timeout_s, poll_s=0.2)
            except JobFailed as exc:
                raise BenchFailure(str(exc)) from None
            mesh = client.mesh(job["id"])
            elapsed = time.perf_counter() - started
        if not mesh.startswith(b"glTF"):
            raise BenchFailure("the gateway returned something that is not a GLB")
        created, claimed, finished = (_unix(done[k]) for k in ("created_at", "started_at", "finished_at"))
        return elapsed, claimed - created, finished - claimed

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        timings = list(pool.map(one, prompts))
    return timings, time.perf_counter() - started


def measure_rows(args: argparse.Namespace, root: Path) -> dict:
    from text3d.demo import LocalSubnet, ProcessGroup, TinySettings, wait_until
    from text3d.gateway.quotas import Limits
    from text3d.gateway.store import open_store

    miner_counts = [int(x) for x in args.miners.split(",")]
    client_counts = [int(x) for x in args.clients.split(",")]
    names = [f"miner{i}" for i in range(1, max(miner_counts) + 1)]
    subnet = LocalSubnet.create(root / "subnet", validators=("validator",), miners=names)
    rows, peaks = [], {"gateway_mb": 0.0, "worker_mb": 0.0}
    with ProcessGroup(subnet.logs_dir, cwd=REPO, env=_env()) as group:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        gateway = group.start("gateway", subnet.gateway_argv(port, extra=["--gateway.min_free_mb", "0",
                                                                            "--gateway.max_queued", "100000"]))
        wait_until(lambda: _healthy(url), timeout_s=120, what="the gateway", check=group.check_alive)
        store = open_store(subnet.gateway_store)
        key = store.create_key("bench", Limits(per_minute=100_000, per_day=1_000_000, concurrency=10_000))[1]
        store.close()
        running: list[str] = []
        for count in miner_counts:
            for name in names[len(running):count]:
                # the direct baseline asks up to 16 at once: lift the per-caller cap (4) so it measures answers
                group.start(name, subnet.miner_argv(name, free_port(), extra=["--miner.max_in_flight_per_caller", "64",
                                                                                  "--miner.max_queue", "256"]))
                running.append(name)
            wait_until(lambda: subnet.serving(running), timeout_s=300, what=f"{count} miners serving",
                       check=group.check_alive)
            # a fresh worker per miner count: its metagraph lists exactly these miners
            worker = group.start(f"validator-{count}", subnet.validator_argv(
                max_steps=0, step_interval_s=3600, extra=[
                    "--gateway.url", url, "--gateway.jobs", "4", "--gateway.wait_s", str(args.wait_s),
                    "--gateway.poll_s", "1", "--validator.state_path", str(root / f"state-{count}.json")]))
            wait_until(lambda count=count: (root / f"state-{count}.json").is_file(), timeout_s=300,
                       what="the worker's first synthetic step", check=group.check_alive)
            through_gateway(url, key, PROMPTS[:1], 1, args.timeout_s)  # warm-up: the worker's first organic job
            for clients in client_counts:
                n = max(args.min_jobs, args.jobs_per_client * clients)
                prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
                base = direct(subnet, running, prompts, clients, TinySettings().timeout_s)  # the worker's own timeout
                timings, wall = through_gateway(url, key, prompts, clients, args.timeout_s)
                group.check_alive()
                seconds = [t[0] for t in timings]
                queued, worked = [t[1] for t in timings], [t[2] for t in timings]
                rest = [t[0] - t[1] - t[2] for t in timings]
                row = {"miners": count, "clients": clients, "jobs": n,
                       "direct_p50_s": round(median(base), 4), "direct_p95_s": round(percentile(base, 95), 4),
                       "gateway_p50_s": round(median(seconds), 4), "gateway_p95_s": round(percentile(seconds, 95), 4),
                       "jobs_per_s": round(n / wall, 4), "overhead_p50": round(median(seconds) / median(base), 2),
                       "queued_p50_s": round(median(queued), 4), "worker_p50_s": round(median(worked), 4),
                       "post_poll_fetch_p50_s": round(median(rest), 4)}
                rows.append(row)
                Bench.log(f"{count} miners, {clients:>2} clients, {n:>3} jobs: direct p50 {row['direct_p50_s']:.3f} s "
                      f"p95 {row['direct_p95_s']:.3f} s | gateway p50 {row['gateway_p50_s']:.3f} s "
                      f"p95 {row['gateway_p95_s']:.3f} s, {row['jobs_per_s']:.2f} jobs/s | overhead "
                      f"{row['overhead_p50']:.1f}x (p50: queued {row['queued_p50_s']:.3f} s, worker "
                      f"{row['worker_p50_s']:.3f} s, post+poll+fetch {row['post_poll_fetch_p50_s']:.3f} s)")
            peaks["worker_mb"] = max(peaks["worker_mb"], _peak_rss_mb(worker.pid) or 0.0)
            group.stop(worker)
        peaks["gateway_mb"] = _peak_rss_mb(gateway.pid) or 0.0
    return {"rows": rows, "peak_rss_mb": {k: round(v, 1) for k, v in peaks.items()}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--miners", default="2,4", help="tiny miner counts, comma-separated")
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients, comma-separated")
    parser.add_argument("--jobs-per-client", type=int, default=2)
    parser.add_argument("--min-jobs", type=int, default=8, help="at least this many jobs per measurement")
    parser.add_argument("--wait-s", type=float, default=5.0, help="the worker's --gateway.wait_s")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="give up on one job after this long")


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="text3d-bench-gateway-") as root:
        result = measure_rows(args, Path(root))
    bench.table(f"Gateway: organic jobs beside the miners' own answers (tiny miners on the CPU, one validator "
                f"worker with --gateway.jobs 4 and --gateway.wait_s {args.wait_s:g}; p50 / p95)",
                ["miners", "clients", "jobs", "miners direct", "gateway post-to-mesh", "jobs/s", "overhead (p50)",
                 "queued / worker / post+poll+fetch (p50)"],
                [[r["miners"], r["clients"], r["jobs"],
                  f"{duration(r['direct_p50_s'])} / {duration(r['direct_p95_s'])}",
                  f"{duration(r['gateway_p50_s'])} / {duration(r['gateway_p95_s'])}", f"{r['jobs_per_s']:.2f}",
                  f"{r['overhead_p50']:.1f}x", f"{duration(r['queued_p50_s'])} / {duration(r['worker_p50_s'])} / "
                                               f"{duration(r['post_poll_fetch_p50_s'])}"] for r in result["rows"]],
                note=f"An organic job asks up to 4 miners, waits up to {args.wait_s:g} s after the first answer, scores "
                     f"every answer and uploads the best; the client polls every 0.2 s. Peak RSS: gateway "
                     f"{result['peak_rss_mb']['gateway_mb']:,.0f} MB, validator worker "
                     f"{result['peak_rss_mb']['worker_mb']:,.0f} MB.")
    return {"wait_s": args.wait_s, **result}


if __name__ == "__main__":
    sys.exit(run("gateway", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES))
