"""Answered requests per second against one miner with 1, 2 and 4 generation workers, and its answer times.

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
answer time (sent to last byte), and the other outcomes (503: refused, it could not finish
in time).

    python bench/miner.py [--workers 1,2,4] [--pool servers|ray] [--no-in-process] [--duration-s 20]
                          [--concurrency 16] [--steps 16] [--grid-size 64]

Last line: one JSON object.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

PROMPTS = ["a red wooden chair", "a blue ceramic teapot", "a yellow toy car", "a green glass bottle", "a shark"]


def child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def tiny_flags(args: argparse.Namespace) -> list[str]:
    return ["--generation.steps", str(args.steps), "--generation.guidance", "3.0",
            "--generation.grid_size", str(args.grid_size)]  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


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
        if answer.status == "ok":
            decode_mesh(answer.body)  # an answer counts when its mesh decodes
        return answer.status if answer.http_status != 503 else "503", answer.elapsed_s or 0.0, time.monotonic()

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
        "p50_s": round(percentile(ok, 0.50), 3),
        "p95_s": round(percentile(ok, 0.95), 3),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--pool", choices=("servers", "ray"), default="servers")
    parser.add_argument("--in-process", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout-s", type=float, default=30.0)
    parser.add_argument("--steps", type=int, default=16, help="prior steps of the tiny pipeline")
    parser.add_argument("--grid-size", type=int, default=64, help="marching-cubes grid of the tiny pipeline")
    args = parser.parse_args()

    import logging

    import torch

    logging.getLogger("text3d").setLevel(logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="text3d-bench-miner-"))
    load_before = os.getloadavg()[0]
    configs: list[int | None] = ([None] if args.in_process else []) + [int(w) for w in args.workers.split(",")]
    print(f"tiny Shap-E pipeline on the CPU ({os.cpu_count()} cores, load average {load_before:.1f}), "
          f"{args.steps} prior steps, grid {args.grid_size}; {args.concurrency} requests in flight for "
          f"{args.duration_s:g}s per configuration; pool: {args.pool}", flush=True)  # fmt: skip
    results = {}
    for workers in configs:
        label = "in-process" if workers is None else f"{workers} {'servers' if args.pool == 'servers' else 'replicas'}"
        results[label] = run_config(args, workers, root)
        print(f"{label:>12}: " + ", ".join(f"{k} {v}" for k, v in results[label].items()), flush=True)

    print()
    print("| workers | answered/s | p50 answer | p95 answer | answered / requests |")
    print("|---|---:|---:|---:|---:|")
    for label, r in results.items():
        print(f"| {label} | {r['answered_per_s']:.2f} | {r['p50_s']:.2f} s | {r['p95_s']:.2f} s | "
              f"{r['answered']} / {r['requests']} |")  # fmt: skip
    print()
    summary = {
        "bench": "miner_scaleout",
        "pool": args.pool,
        "model": f"tiny Shap-E (random weights), {args.steps} steps, grid {args.grid_size}",
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_before": round(load_before, 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "concurrency": args.concurrency,
        "duration_s": args.duration_s,
        "timeout_s": args.timeout_s,
        "results": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
