"""Miner scale-out: answered requests per second against one miner with 1, 2 and 4 generation workers.

A worker is a ``text3d generation-server`` process (``--pool servers``, the default: the
miner's ``--generation.endpoints``) or a Ray Serve replica on a local Ray cluster started
here (``--pool ray``: ``--generation.ray_address``), each with the TINY random-weight Shap-E
pipeline on the CPU and one torch thread. ``in-process`` is the default miner (one generator
inside the miner process, one torch thread) for comparison. Figures from the tiny pipeline
on a CPU measure the serving path (queue, routing, HTTP, encoding) with generation cheap but
not free; the production model needs a GPU per worker.

Everything is the production path: the miner is ``python -m neurons.miner`` on a local
devnet, the load is signed ``TextTo3DRequest``s from a registered validator wallet through
``MinerClient``, ``--concurrency`` requests in flight (a closed loop) for ``--duration-s``
after a warm-up of ``2 x workers`` requests. Reported per configuration, over the answers
that finished inside the window: answered/s (200 answers whose mesh decodes), p50 and p95
answer time (sent to last byte), and the other outcomes. ``ok`` and ``503`` (the miner
refused what it could not finish in time: its admission control) are expected; any other
outcome (a timeout, a malformed or undecodable answer, an auth refusal) or a configuration
with nothing answered fails the bench.

    python bench/miner.py [--workers 1,2,4] [--pool servers|ray] [--no-in-process] [--duration-s 20]
                          [--concurrency 16] [--steps 16] [--grid-size 64] [--smoke]
"""

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench._harness import Bench, duration, percentile, run  # noqa: E402

PROMPTS = ["a red wooden chair", "a blue ceramic teapot", "a yellow toy car", "a green glass bottle", "a shark"]
EXPECTED_STATUSES = {"ok", "503"}
SMOKE = {"workers": "1", "duration_s": 3.0, "concurrency": 2, "steps": 2, "grid_size": 16}
SUITE_RUNS = [[], ["--pool", "ray", "--no-in-process"]]
PACKAGES = ("torch", "diffusers", "bittensor", "httpx", "uvicorn", "fastapi", "ray")


def child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def tiny_flags(args: argparse.Namespace) -> list[str]:
    return ["--generation.steps", str(args.steps), "--generation.guidance", "3.0",
            "--generation.grid_size", str(args.grid_size)]  # fmt: skip


async def load(subnet, port: int, *, duration_s: float, concurrency: int, warmup: int, timeout_s: float) -> dict:
    from text3d.validator.client import MinerClient, Target
    from text3d.protocol.mesh_codec import decode_mesh
    from text3d.protocol.wire import MAX_SEED, TextTo3DRequest

    target = Target(uid=subnet.uids["miner"], hotkey=subnet.hotkey_of("miner"), ip="127.0.0.1", port=port)
    client = MinerClient(subnet.wallet("validator"), max_concurrency=concurrency)
    rng = random.Random(7)

    async def one() -> tuple[str, float, float]:
        request = TextTo3DRequest(prompt=rng.choice(PROMPTS), seed=rng.randint(0, MAX_SEED), timeout_s=timeout_s)
        answer = await client.query(target, request, timeout_s)
        status = answer.status if answer.http_status != 503 else "503"
        if answer.status == "ok":
            try:
                decode_mesh(answer.body)  # an answer counts when its mesh decodes
            except Exception as exc:  # noqa: BLE001 -- the miner's bug, reported as this outcome
                status = f"undecodable ({type(exc).__name__})"
        elif status not in EXPECTED_STATUSES:
            status = f"{status} ({answer.detail or answer.http_status})"[:160]
        return status, answer.elapsed_s or 0.0, time.monotonic()

    try:
        await asyncio.gather(*(one() for _ in range(warmup)))
        outcomes: list[tuple[str, float, float]] = []
        started = time.monotonic()
        stop_at = started + duration_s

        async def loop() -> None:
            while time.monotonic() < stop_at:
                outcomes.append(await one())

        await asyncio.gather(*(loop() for _ in range(concurrency)))  # the last round finishes after stop_at
    finally:
        await client.aclose()
    window = [(status, seconds) for status, seconds, done in outcomes if done <= stop_at]  # finished in the window
    ok = [seconds for status, seconds in window if status == "ok"]
    statuses: dict[str, int] = {}
    for status, _ in window:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "answered_per_s": round(len(ok) / duration_s, 2),
        "p50_s": round(percentile(ok, 50), 3) if ok else None,
        "p95_s": round(percentile(ok, 95), 3) if ok else None,
        "answered": len(ok),
        "requests": len(window),
        "statuses": statuses,
    }


def wait_ready(port: int, group, timeout_s: float) -> None:
    import httpx

    from text3d.demo import wait_until

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout_s=timeout_s, what=f"the generation server on port {port}", check=group.check_alive)


def run_config(args, workers: int | None, root: Path) -> dict:
    """``workers`` None: the in-process miner. A fresh devnet; starts the workers and the miner, loads it, stops all."""
    from text3d.demo import LocalSubnet, ProcessGroup, wait_until
    from text3d.ops.net import free_port

    label = "inprocess" if workers is None else f"{args.pool}-{workers}"
    subnet = LocalSubnet.create(root / label, miners=("miner",))
    logs = subnet.logs_dir
    extra = ["--miner.max_in_flight_per_caller", "256", "--miner.max_queue", "256", *tiny_flags(args)]
    ray_cluster = None
    with ProcessGroup(logs, cwd=REPO, env=child_env()) as group:
        if workers is not None and args.pool == "servers":
            ports = [free_port() for _ in range(workers)]
            for i, port in enumerate(ports):
                argv = [sys.executable, "-m", "text3d.cli.main", "generation-server", "--models", "tiny", "--device", "cpu",
                        "--server.port", str(port), *tiny_flags(args)]  # fmt: skip
                group.start(f"server{i}", argv)
            for port in ports:
                wait_ready(port, group, timeout_s=300)
            extra += ["--generation.endpoints", ",".join(f"http://127.0.0.1:{p}" for p in ports)]
        elif workers is not None:
            import ray

            ray.init(num_cpus=workers, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}})  # fmt: skip
            ray_cluster = ray
            extra += ["--generation.ray_address", ray.get_runtime_context().gcs_address, "--generation.ray_replicas",
                      str(workers), "--generation.ray_num_gpus", "0", "--generation.ray_num_cpus", "1"]  # fmt: skip
        port = free_port()
        try:
            group.start("miner", subnet.miner_argv("miner", port, extra=extra))
            wait_until(lambda: subnet.serving(["miner"]), timeout_s=600, what="the miner serving",
                       check=group.check_alive)  # fmt: skip
            result = asyncio.run(load(subnet, port, duration_s=args.duration_s, concurrency=args.concurrency,
                                      warmup=2 * (workers or 1), timeout_s=args.timeout_s))  # fmt: skip
        finally:
            group.stop_all()
            if ray_cluster is not None:
                from ray import serve

                serve.shutdown()
                ray_cluster.shutdown()
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--pool", choices=("servers", "ray"), default="servers")
    parser.add_argument("--in-process", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout-s", type=float, default=30.0)
    parser.add_argument("--steps", type=int, default=16, help="prior steps of the tiny pipeline")
    parser.add_argument("--grid-size", type=int, default=64, help="marching-cubes grid of the tiny pipeline")


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    import logging

    logging.getLogger("text3d").setLevel(logging.WARNING)
    configs: list[int | None] = ([None] if args.in_process else []) + [int(w) for w in args.workers.split(",")]
    kind = "server" if args.pool == "servers" else "replica"
    bench.log(f"tiny Shap-E pipeline on the CPU ({os.cpu_count()} cores), {args.steps} prior steps, grid "
              f"{args.grid_size}; {args.concurrency} requests in flight for {args.duration_s:g}s per configuration; "
              f"pool: {args.pool}")
    results = {}
    for workers in configs:
        label = "in-process" if workers is None else f"{workers} {kind}{'s' if workers > 1 else ''}"
        with tempfile.TemporaryDirectory(prefix="text3d-bench-miner-") as root:
            result = run_config(args, workers, Path(root))
        bench.log(f"{label:>12}: " + ", ".join(f"{k} {v}" for k, v in result.items()))
        unexpected = {s: n for s, n in result["statuses"].items() if s not in EXPECTED_STATUSES}
        bench.check(not unexpected, f"{label}: unexpected outcomes {unexpected}")
        bench.check(result["answered"] > 0, f"{label}: nothing was answered in {args.duration_s:g} s "
                                            f"(outcomes {result['statuses']})")
        results[label] = result
    pool = "generation servers" if args.pool == "servers" else "Ray Serve replicas"
    bench.table(f"Miner scale-out, {pool}: one miner on the devnet, signed requests, {args.concurrency} in flight for "
                f"{args.duration_s:g} s per row; each worker the tiny random-weight Shap-E ({args.steps} prior steps, "
                f"grid {args.grid_size}) on the CPU with one torch thread",
                ["workers", "answered/s", "p50 / p95 answer", "answered / requests", "refused (503)"],
                [[label, f"{r['answered_per_s']:.2f}", f"{duration(r['p50_s'])} / {duration(r['p95_s'])}",
                  f"{r['answered']} / {r['requests']}", r["statuses"].get("503", 0)] for label, r in results.items()],
                note="On a GPU machine each worker has its own GPU; here the workers share this machine's cores, so "
                     "more workers than cores cannot help. Answer times are mostly queueing (requests in flight over "
                     "the throughput).")
    if args.pool == "servers" and len(results) > 1:
        best = max(results, key=lambda k: results[k]["answered_per_s"])
        bench.headline(f"Miner: one miner over {best} answers {results[best]['answered_per_s']:.2f} signed requests/s "
                       f"with the tiny pipeline on this CPU (in process: "
                       f"{results.get('in-process', results[best])['answered_per_s']:.2f}/s).")
    return {"pool": args.pool, "model": f"tiny Shap-E (random weights), {args.steps} steps, grid {args.grid_size}",
            "device": "cpu", "concurrency": args.concurrency, "duration_s": args.duration_s, "timeout_s": args.timeout_s,
            "results": results}


if __name__ == "__main__":
    sys.exit(run("miner", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES))
