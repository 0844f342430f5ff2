"""One validator step against 16, 64 and 256 simulated miners: wall time and where it goes.

Simulated miners: a few stub servers (separate processes), each a real ``bt.Axon``
hosting many miner hotkeys registered on a devnet chain. A stub checks the dendrite's
signature against the hotkey it was addressed to and answers with a pre-encoded
Draco mesh (tiny Shap-E output), so the network path is the production one (real
Dendrite, signed requests, aiohttp, FastAPI) without 256 Python processes on 2 cores.

The validator is the production ``Validator`` with tiny models: the tiny random-weight
CLIP, the genuine all-mpnet-base-v2 and a ``StaticCaptioner``. Rendering uses fewer,
smaller views than production (``--views``/``--resolution``); say so when quoting.

Reported per miner count (medians over ``--repeats`` steps after one warm-up step):
network (dendrite round trips), decode (codec + validation), render and score (render
measured separately on a sample of the meshes and extrapolated; score = the rest of
``render_score_s``), non-model overhead (everything but render+score) and its per-miner
cost. Last line: one JSON object.

    python bench/validator.py [--miners 16,64,256] [--servers 4] [--timeout-s 12]
"""

import argparse
import asyncio
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

PROMPTS = ["a red wooden chair", "a blue ceramic teapot", "a yellow toy car", "a green glass bottle"]


# -- stub miner server (runs in its own process) ---------------------------------------------


def serve(args: argparse.Namespace) -> None:
    import bittensor as bt
    from bittensor_wallet import Keypair

    from protocol import TextTo3D

    payloads = json.loads(Path(args.payloads).read_text())
    hosted = set(json.loads(Path(args.hotkeys).read_text()))
    wallet = bt.Wallet(name=f"stub{args.port}", hotkey="default", path=args.wallet_path)
    wallet.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=False, suppress=True)

    def forward(synapse: TextTo3D) -> TextTo3D:
        synapse.mesh_b64 = payloads[synapse.seed % len(payloads)]
        synapse.mesh_format = "draco"
        synapse.generation_time_s = 0.0
        return synapse

    def verify(synapse: TextTo3D) -> None:
        d = synapse.dendrite
        if synapse.axon.hotkey not in hosted:
            raise ValueError("hotkey not hosted here")
        message = f"{d.nonce}.{d.hotkey}.{synapse.axon.hotkey}.{d.uuid}.{synapse.computed_body_hash}"
        if not Keypair(ss58_address=d.hotkey).verify(message, d.signature):
            raise ValueError("bad signature")

    axon = bt.Axon(wallet=wallet, ip="127.0.0.1", port=args.port, external_ip="127.0.0.1", max_workers=16)
    axon.attach(forward_fn=forward, verify_fn=verify)
    axon.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        axon.stop()


# -- bench -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_payloads(grid_size: int) -> tuple[list[str], int]:
    """Base64 Draco payloads of tiny Shap-E meshes, and their mean face count."""
    from generation import GenerationConfig, ShapEGenerator
    from protocol import TextTo3D

    generator = ShapEGenerator.from_pretrained("tiny", GenerationConfig(grid_size=grid_size, device="cpu", num_inference_steps=4))
    meshes = generator.generate(PROMPTS, list(range(len(PROMPTS))))
    return [TextTo3D().attach_mesh(m).mesh_b64 for m in meshes], int(statistics.mean(len(m.faces) for m in meshes))


class Servers:
    def __init__(self, root: Path, n_servers: int, payloads_path: Path, hotkeys: list[str]) -> None:
        self.ports = [free_port() for _ in range(n_servers)]
        self.assignment = {hotkey: self.ports[i % n_servers] for i, hotkey in enumerate(hotkeys)}
        self.procs = []
        for port in self.ports:
            hotkeys_path = root / f"hotkeys_{port}.json"
            hotkeys_path.write_text(json.dumps([h for h, p in self.assignment.items() if p == port]))
            self.procs.append(subprocess.Popen(
                [sys.executable, __file__, "--serve", "--port", str(port), "--payloads", str(payloads_path),
                 "--hotkeys", str(hotkeys_path), "--wallet-path", str(root / "wallets")],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            ))  # fmt: skip
        for proc in self.procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a stub server failed to start")

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)


class _Announcer:
    """What ``chain.serve_axon`` reads from a wallet: the hotkey's address."""

    def __init__(self, ss58: str) -> None:
        self.hotkey = type("Hotkey", (), {"ss58_address": ss58})()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int)
    parser.add_argument("--payloads")
    parser.add_argument("--hotkeys")
    parser.add_argument("--wallet-path")
    parser.add_argument("--miners", default="16,64,256")
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--timeout-s", type=float, default=12.0)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--grid-size", type=int, default=32)
    args = parser.parse_args()
    if args.serve:
        return serve(args)

    import bittensor as bt
    import numpy as np
    import torch
    from bittensor_wallet import Keypair

    from neurons.chain.devnet import DevnetChain
    from neurons.config import ValidatorConfig
    from neurons.prompts import PromptSampler
    from neurons.state import ValidatorState
    from neurons.validator import Validator, build_dendrite
    from protocol import decode_mesh
    from reward.caption import StaticCaptioner
    from reward.config import RewardConfig
    from reward.factory import build_reward_model

    bt.logging.set_warning()
    counts = [int(c) for c in args.miners.split(",")]
    root = Path(tempfile.mkdtemp(prefix="text3d-bench-validator-"))
    payloads, faces = tiny_payloads(args.grid_size)
    payloads_path = root / "payloads.json"
    payloads_path.write_text(json.dumps(payloads))
    payload_kb = statistics.mean(len(p) * 3 / 4 for p in payloads) / 1024

    chain = DevnetChain.create(root / "devnet.db", 1, block_time_s=1.0, max_uids=max(counts) + 1, weights_rate_limit=1)
    wallet = bt.Wallet(name="validator", hotkey="default", path=str(root / "wallets"))
    wallet.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=False, suppress=True)
    chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address)
    chain.add_stake(wallet.hotkey.ss58_address, 1000.0)
    miners = [Keypair.create_from_uri(f"//bench-miner-{i}").ss58_address for i in range(max(counts))]
    for hotkey in miners:
        chain.register(hotkey, "5C4hrfjw9DjXZTzV3MwzrrAr9P1MJhSrvWGWqi1eSuyUpnhM")

    servers = Servers(root, args.servers, payloads_path, miners)
    reward_model = build_reward_model(
        "tiny", StaticCaptioner(), device="cpu", config=RewardConfig(n_views=args.views, resolution_px=args.resolution)
    )
    sample_meshes = [decode_mesh(__import__("base64").b64decode(p)) for p in payloads]
    results = {}
    try:
        served = set()
        for count in counts:
            for hotkey in miners[:count]:
                if hotkey not in served:
                    chain.serve_axon(_Announcer(hotkey), "127.0.0.1", servers.assignment[hotkey])
                    served.add(hotkey)
            rng = random.Random(count)
            config = ValidatorConfig(
                sample_size=count, timeout_s=args.timeout_s, step_interval_s=0, alpha=0.1,
                state_path=root / f"state_{count}.json", views=args.views, resolution=args.resolution,
            )  # fmt: skip

            async def run_steps() -> list:
                validator = Validator(
                    config, wallet=wallet, chain=chain, dendrite=build_dendrite(wallet, "127.0.0.1"),
                    reward_model=reward_model, state=ValidatorState(), sampler=PromptSampler(PROMPTS, rng), rng=rng,
                )  # fmt: skip
                steps = [await validator.step() for _ in range(args.repeats + 1)]
                await validator.dendrite.aclose_session()
                return steps[1:]  # the first step warms caches and connections

            steps = asyncio.run(run_steps())
            render_per_mesh_s = []
            for mesh in sample_meshes:
                started = time.perf_counter()
                reward_model.renderer.render(mesh, args.views, args.resolution)
                render_per_mesh_s.append(time.perf_counter() - started)
            render_s = statistics.median(render_per_mesh_s) * count

            def median(key: str) -> float:
                return statistics.median(s.timing_s[key] for s in steps)

            total_s, network_s, decode_s, render_score_s = (
                median("total_s"), median("network_s"), median("decode_s"), median("render_score_s")
            )
            overhead_s = statistics.median(s.timing_s["total_s"] - s.timing_s["render_score_s"] for s in steps)
            ok = min(sum(o.status == "ok" for o in s.outcomes) for s in steps)
            results[count] = {
                "step_s": round(total_s, 3),
                "network_s": round(network_s, 3),
                "decode_s": round(decode_s, 3),
                "render_s_est": round(min(render_s, render_score_s), 3),
                "score_s_est": round(max(0.0, render_score_s - render_s), 3),
                "render_score_s": round(render_score_s, 3),
                "overhead_s": round(overhead_s, 3),
                "overhead_ms_per_miner": round(1000 * overhead_s / count, 2),
                "answers_ok_min": ok,
            }
            print(f"{count:4d} miners: " + ", ".join(f"{k} {v}" for k, v in results[count].items()), flush=True)
    finally:
        servers.close()

    largest = results[max(counts)]
    smallest = results[min(counts)]
    summary = {
        "bench": "validator_step",
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "bittensor": bt.__version__,
        "numpy": np.__version__,
        "servers": args.servers,
        "views": args.views,
        "resolution_px": args.resolution,
        "mesh_faces": faces,
        "payload_kb": round(payload_kb, 1),
        "timeout_s": args.timeout_s,
        "repeats": args.repeats,
        "results": {str(k): v for k, v in results.items()},
        # linear: the per-miner overhead at the largest count is no worse than 1.5x the smallest's
        "overhead_linear": largest["overhead_ms_per_miner"] <= 1.5 * smallest["overhead_ms_per_miner"],
        "network_within_timeout_plus_2s": largest["network_s"] <= args.timeout_s + 2.0,
        "all_answered": all(r["answers_ok_min"] == c for c, r in results.items()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
