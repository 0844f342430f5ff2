"""One validator step against 16, 64 and 256 simulated miners over signed HTTP: where the time goes.

Simulated miners: a few stub servers (``--servers``, separate processes), each a raw ASGI
app under uvicorn hosting many miner hotkeys. A stub checks every request like a real miner
does -- the full btauth/1 ``bt.http_auth.verify``: the receiver must be one of the hotkeys
it hosts, the signature must verify, the nonce must be fresh and unseen -- reads the body
under ``MAX_REQUEST_BYTES``, and answers ``POST /v1/text3d`` with one pre-encoded Draco mesh
(raw bytes, ``X-Text3d-Format: draco``) and no generation time. So the network path is the
production one (``bt.http_auth.sign``, one ``httpx.AsyncClient``, streamed capped answers,
uvicorn + h11 on the other side) without 256 Python processes on a laptop.

The validator is the production ``Validator.step`` with ``MinerClient(max_concurrency=256)``
(every miner of the largest step in flight at once; ``max_connections`` the same), a fixed
metagraph at the chain edge (no chain I/O), and a reward model that scores in no time: the
step's cost is the network, the decode (codec + validation, in the executor) and the rest
of the step (sync, seeds, state, weights) -- the non-model overhead. Rendering and scoring
are measured by ``bench/render.py`` and ``bench/score.py``.

The mesh: an icosphere (``--subdivisions``, default 6: 81,920 faces, about a Shap-E grid-128
mesh) with smooth per-vertex colours, encoded as the miner encodes it. Bytes per answer:
"before" is the body bittensor 10.5's synapse carried, the payload base64-encoded inside JSON
(``len(json.dumps({"mesh_b64": b64}))``); "after" is the raw answer body.

Reported per miner count (medians over ``--repeats`` steps after one warm-up step):
network_s (sign, send, last byte of the last answer), decode_s, overhead_s (the step minus
render+score), their per-miner costs, and the answers that came back ok. Last line: one JSON object.

    python bench/validator.py [--miners 16,64,256] [--servers 4] [--repeats 3] [--timeout-s 12]
"""

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from text3d.ops.net import free_port  # noqa: E402

PROMPTS = ["a red wooden chair", "a blue ceramic teapot", "a yellow toy car", "a green glass bottle"]


# -- stub miner server (runs in its own process) ---------------------------------------------


def serve(args: argparse.Namespace) -> None:
    import bittensor as bt
    import uvicorn

    from text3d.protocol.wire import HEADER_FORMAT, HEADER_GENERATION_TIME, MAX_REQUEST_BYTES, ROUTE

    payload = Path(args.payload).read_bytes()
    hosted = set(json.loads(Path(args.hotkeys).read_text()))
    store = bt.http_auth.InMemoryNonceStore()
    answer_headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(len(payload)).encode()),
        (HEADER_FORMAT.lower().encode(), b"draco"),
        (HEADER_GENERATION_TIME.lower().encode(), b"0.0000"),
    ]

    async def refuse(send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        if scope["method"] != "POST" or scope["path"] != ROUTE:
            return await refuse(send, 404, "not found")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        receiver = headers.get("x-bittensor-receiver", "")
        if receiver not in hosted:  # before the body, like the real miner's pre-check
            return await refuse(send, 401, "request was signed for a hotkey this server does not host")
        body = bytearray()
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_REQUEST_BYTES:
                return await refuse(send, 413, "request body over the cap")
        try:
            bt.http_auth.verify(headers, bytes(body), method="POST", path=ROUTE, self_hotkey_ss58=receiver,
                                nonce_store=store)  # fmt: skip
        except bt.http_auth.AuthError as exc:
            return await refuse(send, 401, str(exc))
        await send({"type": "http.response.start", "status": 200, "headers": answer_headers})
        await send({"type": "http.response.body", "body": payload})

    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False,
                            lifespan="off", backlog=4096, timeout_keep_alive=5)  # fmt: skip
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        print("ready", flush=True)
        await task

    asyncio.run(run())


# -- bench -------------------------------------------------------------------------------------


def bench_mesh(subdivisions: int):
    import numpy as np
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    unit = (mesh.vertices - mesh.vertices.min(0)) / np.ptp(mesh.vertices, axis=0)
    rgb = (60 + 180 * unit).astype(np.uint8)  # a smooth colour field, as Shap-E's are
    mesh.visual.vertex_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    return mesh


class Servers:
    def __init__(self, root: Path, n_servers: int, payload_path: Path, hotkeys: list[str]) -> None:
        self.ports = [free_port() for _ in range(n_servers)]
        self.assignment = {hotkey: self.ports[i % n_servers] for i, hotkey in enumerate(hotkeys)}
        self.procs = []
        for port in self.ports:
            hotkeys_path = root / f"hotkeys_{port}.json"
            hotkeys_path.write_text(json.dumps([h for h, p in self.assignment.items() if p == port]))
            self.procs.append(subprocess.Popen(
                [sys.executable, __file__, "--serve", "--port", str(port), "--payload", str(payload_path),
                 "--hotkeys", str(hotkeys_path)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            ))  # fmt: skip
        for proc in self.procs:
            if proc.stdout.readline().strip() != "ready":
                self.close()
                raise RuntimeError("a stub server failed to start")

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)


class HandChain:
    """The chain edge: a fixed metagraph, a block, set_weights accepted and counted."""

    def __init__(self, metagraph) -> None:
        self.graph = metagraph
        self.weight_calls = 0

    def metagraph(self):
        return self.graph

    def block(self) -> int:
        return 1000 + 100 * self.weight_calls

    def weights_rate_limit(self) -> int:
        return 1

    def set_weights(self, wallet, uids, weights, version_key):
        self.weight_calls += 1
        return True, "ok"


class InstantScorer:
    """A reward model that costs nothing: the step's time is the network and the validator's own."""

    def score_batch(self, meshes, prompts):
        from text3d.reward.reporting.evidence import RewardReport

        return [RewardReport(score=0.5, prompt=p, metric="cosine", aggregation="mean") for p in prompts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--payload", help=argparse.SUPPRESS)
    parser.add_argument("--hotkeys", help=argparse.SUPPRESS)
    parser.add_argument("--miners", default="16,64,256")
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=12.0)
    parser.add_argument("--subdivisions", type=int, default=6, help="icosphere subdivisions (6: 81,920 faces)")
    args = parser.parse_args()
    if args.serve:
        return serve(args)

    import bittensor as bt
    import httpx
    import numpy as np

    from text3d.chain.base import Metagraph, NeuronInfo
    from text3d.validator.client import MinerClient
    from text3d.validator.prompts import PromptSampler
    from text3d.settings import ValidatorSettings
    from text3d.validator.state import ValidatorState
    from text3d.validator.engine import Validator
    from text3d.protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh

    logging_quiet()
    counts = [int(c) for c in args.miners.split(",")]
    largest = max(counts)
    root = Path(tempfile.mkdtemp(prefix="text3d-bench-validator-"))

    mesh = bench_mesh(args.subdivisions)
    payload = encode_mesh(mesh, MeshFormat.DRACO)
    payload_path = root / "payload.drc"
    payload_path.write_bytes(payload)
    bytes_before = len(json.dumps({"mesh_b64": base64.b64encode(payload).decode()}))
    bytes_after = len(payload)
    started = time.perf_counter()
    decode_mesh(payload)
    decode_one_ms = 1000 * (time.perf_counter() - started)

    wallet = bt.Wallet(name="validator", hotkey="default", path=str(root / "wallets"))
    wallet.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
    wallet.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
    miners = [bt.wallets.Keypair.create_from_uri(f"//bench-miner-{i}").ss58_address for i in range(largest)]
    servers = Servers(root, args.servers, payload_path, miners)
    concurrency = largest
    print(f"mesh: {len(mesh.faces)} faces, Draco {bytes_after / 1024:.1f} KiB; bytes per answer before (base64 in "
          f"JSON) {bytes_before}, after (raw) {bytes_after} ({bytes_before / bytes_after:.3f}x); decode one "
          f"{decode_one_ms:.1f} ms", flush=True)  # fmt: skip
    print(f"{args.servers} stub servers (full btauth/1 verify, receiver hosted), MinerClient(max_concurrency="
          f"{concurrency}, max_connections={concurrency}), timeout {args.timeout_s:g}s", flush=True)  # fmt: skip

    results = {}
    try:
        for count in counts:
            neurons = [NeuronInfo(uid=0, hotkey=wallet.hotkey.ss58_address, coldkey="c0", stake=1000.0,
                                  validator_permit=True, axon_ip="0.0.0.0", axon_port=0, last_update=0)]
            neurons += [
                NeuronInfo(uid=i + 1, hotkey=h, coldkey=f"c{i + 1}", stake=0.0, validator_permit=False,
                           axon_ip="127.0.0.1", axon_port=servers.assignment[h], last_update=0)
                for i, h in enumerate(miners[:count])
            ]  # fmt: skip
            chain = HandChain(Metagraph(netuid=1, block=1, neurons=tuple(neurons)))
            rng = random.Random(count)
            config = ValidatorSettings(sample_size=count, timeout_s=args.timeout_s, step_interval_s=0.0, alpha=0.1,
                                       state_path=root / f"state_{count}.json")  # fmt: skip

            async def run_steps() -> list:
                client = MinerClient(wallet, max_concurrency=concurrency, max_connections=concurrency)
                validator = Validator(
                    config, wallet=wallet, chain=chain, client=client, reward_model=InstantScorer(),
                    state=ValidatorState(), sampler=PromptSampler(PROMPTS, rng), rng=rng,
                )  # fmt: skip
                try:
                    steps = [await validator.step() for _ in range(args.repeats + 1)]
                finally:
                    await client.aclose()
                return steps[1:]  # the first step warms imports, the executor and the servers

            steps = asyncio.run(run_steps())

            def median(key: str) -> float:
                return statistics.median(s.timing_s[key] for s in steps)

            network_s, decode_s, total_s = median("query_s"), median("decode_s"), median("total_s")
            overhead_s = statistics.median(s.timing_s["total_s"] - s.timing_s["score_s"] for s in steps)
            ok = min(sum(o.status == "ok" for o in s.outcomes) for s in steps)
            statuses = sorted({o.status for s in steps for o in s.outcomes})
            results[count] = {
                "step_s": round(total_s, 3),
                "network_s": round(network_s, 3),
                "network_ms_per_miner": round(1000 * network_s / count, 2),
                "decode_s": round(decode_s, 3),
                "decode_ms_per_miner": round(1000 * decode_s / count, 2),
                "overhead_s": round(overhead_s, 3),
                "overhead_ms_per_miner": round(1000 * overhead_s / count, 2),
                "non_decode_overhead_ms_per_miner": round(1000 * (overhead_s - network_s - decode_s) / count, 3),
                "answers_ok_min": ok,
                "statuses": statuses,
            }
            print(f"{count:4d} miners: " + ", ".join(f"{k} {v}" for k, v in results[count].items()), flush=True)
    finally:
        servers.close()

    print()
    print("| miners | network s | decode s | non-model overhead s | overhead ms/miner | ok |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count, r in results.items():
        print(f"| {count} | {r['network_s']:.3f} | {r['decode_s']:.3f} | {r['overhead_s']:.3f} | "
              f"{r['overhead_ms_per_miner']:.2f} | {r['answers_ok_min']}/{count} |")  # fmt: skip
    print()

    big, small = results[largest], results[min(counts)]
    summary = {
        "bench": "validator_network",
        "transport": "btauth/1 signed HTTP (httpx -> uvicorn/h11), raw mesh bytes",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "bittensor": bt.__version__,
        "httpx": httpx.__version__,
        "numpy": np.__version__,
        "servers": args.servers,
        "stub": "raw ASGI under uvicorn, full bt.http_auth.verify (receiver hosted, signature, fresh, unseen)",
        "max_concurrency": concurrency,
        "mesh_faces": int(len(mesh.faces)),
        "bytes_per_answer_before_base64_json": bytes_before,
        "bytes_per_answer_after_raw": bytes_after,
        "bytes_saved_pct": round(100 * (1 - bytes_after / bytes_before), 1),
        "decode_one_ms": round(decode_one_ms, 2),
        "timeout_s": args.timeout_s,
        "repeats": args.repeats,
        "results": {str(k): v for k, v in results.items()},
        # linear: the per-miner overhead at the largest count is no worse than 1.5x the smallest's
        "overhead_linear": big["overhead_ms_per_miner"] <= 1.5 * small["overhead_ms_per_miner"],
        "network_within_timeout": big["network_s"] <= args.timeout_s,
        "all_answered": all(r["answers_ok_min"] == c for c, r in results.items()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(summary))


def logging_quiet() -> None:
    import logging

    logging.getLogger("text3d").setLevel(logging.WARNING)


if __name__ == "__main__":
    main()
