"""Validator step: one step against 16, 64 and 256 simulated miners over signed HTTP, and where the time goes.

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
metagraph at the chain edge (``HandChain``: a whole ``ChainAdapter``, no chain I/O), and
``InstantScorer``, a ``StepScorer`` that draws the production secret rig and scores in no
time: the step's cost is the network, the decode (codec + validation, in the executor) and
the rest of the step (sync, seeds, state, weights) -- the non-model overhead. The canary is
off (``canary_every_steps=0``: it renders and runs CLIP) and the copycat phase has no
fingerprints to compare; rendering, scoring, fingerprints and the canary are measured by
``bench/render.py``, ``bench/score.py`` and ``bench/score_defences.py``.

Every measured step must score: no validator fault, averages updated, every queried miner
``ok`` with the scorer's score, weights set. Anything else fails the bench.

The mesh: an icosphere (``--subdivisions``, default 6: 81,920 faces, about a Shap-E grid-128
mesh) with smooth per-vertex colours, encoded as the miner encodes it. Bytes per answer:
"before" is the body bittensor 10.5's synapse carried, the payload base64-encoded inside JSON
(``len(json.dumps({"mesh_b64": b64}))``); "after" is the raw answer body.

Reported per miner count (medians over ``--repeats`` steps after one warm-up step):
network_s (sign, send, last byte of the last answer), decode_s, overhead_s (the step minus
score), their per-miner costs, and the answers that came back ok.

    python bench/validator.py [--miners 16,64,256] [--servers 4] [--repeats 3] [--timeout-s 12] [--smoke]
"""

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench._harness import Bench, duration, median, run  # noqa: E402
from text3d.ops.net import free_port  # noqa: E402

PROMPTS = ["a red wooden chair", "a blue ceramic teapot", "a yellow toy car", "a green glass bottle"]
INSTANT_SCORE = 0.5
SMOKE = {"miners": "2,4", "servers": 1, "repeats": 1, "subdivisions": 2, "timeout_s": 30.0}
PACKAGES = ("bittensor", "httpx", "uvicorn", "h11", "numpy", "trimesh", "DracoPy")


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
    """The chain edge as a whole ``ChainAdapter``: a fixed metagraph, a block that moves with each
    weight setting, ``set_weights`` accepted and counted. No chain I/O, so sync costs what the
    validator's own bookkeeping costs."""

    def __init__(self, metagraph) -> None:
        self.graph = metagraph
        self.netuid = metagraph.netuid
        self.weight_calls = 0
        self._weights: dict[int, dict[int, float]] = {}

    def block(self) -> int:
        return 1000 + 100 * self.weight_calls

    def neurons(self) -> list:
        return list(self.graph.neurons)

    def uid_of(self, hotkey: str) -> int | None:
        return self.graph.uid_of(hotkey)

    def metagraph(self):
        return self.graph

    def serve_axon(self, wallet: Any, ip: str, port: int) -> None:
        from text3d.chain.base import HotkeyNotRegistered, check_axon_address

        check_axon_address(ip, port)
        if self.graph.uid_of(wallet.hotkey.ss58_address) is None:
            raise HotkeyNotRegistered(f"{wallet.hotkey.ss58_address} is not registered on netuid {self.netuid}")

    def set_weights(self, wallet: Any, uids: Sequence[int], weights: Sequence[float], version_key: int) -> tuple[bool, str]:
        own = self.graph.uid_of(wallet.hotkey.ss58_address)
        if own is None:
            return False, "not registered"
        total = float(sum(weights))
        self._weights[own] = {int(u): float(w) / total for u, w in zip(uids, weights) if w > 0} if total > 0 else {}
        self.weight_calls += 1
        return True, "ok"

    def weights_rate_limit(self) -> int:
        return 1

    def min_allowed_weights(self) -> int:
        return 1

    def max_weight_limit(self) -> float:
        return 1.0

    def weights(self) -> dict[int, dict[int, float]]:
        return {uid: dict(row) for uid, row in self._weights.items()}

    def close(self) -> None:
        pass


class InstantScorer:
    """A ``StepScorer`` (``text3d.validator.step``) that costs nothing: the step's time is the
    network and the validator's own. The rig is the production one (``RewardModel.rig_for``:
    the secret rig of the step seed); every mesh gets a valid report scoring ``INSTANT_SCORE``."""

    def __init__(self) -> None:
        from text3d.reward.model import RewardModel

        self._rigs = RewardModel(None, None)  # rig_for only: no model is loaded or called

    def rig_for(self, step_seed: int | None = None, rig: Any = None) -> Any:
        return self._rigs.rig_for(step_seed, rig)

    def score_batch(self, meshes: Sequence[Any], prompts: Sequence[str], references: Any = None, *,
                    rig: Any = None, step_seed: int | None = None, distractors: Any = None) -> list:
        from text3d.reward.reporting.evidence import RewardReport

        if len(meshes) != len(prompts):
            raise ValueError(f"{len(meshes)} meshes but {len(prompts)} prompts")
        rig = self.rig_for(step_seed, rig)
        return [RewardReport(score=INSTANT_SCORE, prompt=p, metric="cosine", aggregation="mean", rig=rig.to_dict(),
                             distractors=list(d) if d is not None else [])
                for p, d in zip(prompts, distractors if distractors is not None else [None] * len(prompts))]


def check_step(bench: Bench, step, count: int) -> None:
    """A measured step must score: no fault, averages updated, every miner ok with the scorer's score, weights set."""
    bench.check(step.fault is None, f"{count} miners, step {step.step}: validator fault: {step.fault}")
    bench.check(step.updated, f"{count} miners, step {step.step}: the averages were not updated")
    bench.check(len(step.outcomes) == count, f"{count} miners, step {step.step}: {len(step.outcomes)} outcomes")
    bad = {o.uid: f"{o.status}: {o.detail}" for o in step.outcomes if o.status != "ok" or o.score != INSTANT_SCORE}
    bench.check(not bad, f"{count} miners, step {step.step}: {len(bad)} miners not scored ok, e.g. "
                         f"{dict(list(bad.items())[:3])}")
    bench.check((step.weights or "").startswith("set"), f"{count} miners, step {step.step}: weights {step.weights!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--miners", default="16,64,256")
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=12.0)
    parser.add_argument("--subdivisions", type=int, default=6, help="icosphere subdivisions (6: 81,920 faces)")


def measure(bench: Bench, args: argparse.Namespace) -> dict:
    import bittensor as bt

    from text3d.chain.base import Metagraph, NeuronInfo
    from text3d.protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh
    from text3d.settings import ValidatorSettings
    from text3d.validator.client import MinerClient
    from text3d.validator.engine import Validator
    from text3d.validator.prompts import PromptSampler
    from text3d.validator.state import ValidatorState

    logging_quiet()
    counts = [int(c) for c in args.miners.split(",")]
    largest = max(counts)
    with tempfile.TemporaryDirectory(prefix="text3d-bench-validator-") as tmp:
        root = Path(tmp)
        mesh = bench_mesh(args.subdivisions)
        payload = encode_mesh(mesh, MeshFormat.DRACO)
        payload_path = root / "payload.drc"
        payload_path.write_bytes(payload)
        bytes_before = len(json.dumps({"mesh_b64": base64.b64encode(payload).decode()}))
        bytes_after = len(payload)
        decode_one_s = bench.time(lambda: decode_mesh(payload), 3).median_s

        wallet = bt.Wallet(name="validator", hotkey="default", path=str(root / "wallets"))
        wallet.create_new_coldkey(use_password=False, suppress=True, overwrite=True)
        wallet.create_new_hotkey(use_password=False, suppress=True, overwrite=True)
        miners = [bt.wallets.Keypair.create_from_uri(f"//bench-miner-{i}").ss58_address for i in range(largest)]
        concurrency = largest
        bench.log(f"mesh: {len(mesh.faces)} faces, Draco {bytes_after / 1024:.1f} KiB; bytes per answer before (base64 "
                  f"in JSON) {bytes_before}, after (raw) {bytes_after}; decode one {1000 * decode_one_s:.1f} ms")
        servers = Servers(root, args.servers, payload_path, miners)
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
                                           canary_every_steps=0, state_path=root / f"state_{count}.json")  # fmt: skip

                async def run_steps() -> list:
                    client = MinerClient(wallet, max_concurrency=concurrency, max_connections=concurrency)
                    validator = Validator(
                        config, wallet=wallet, chain=chain, client=client, reward_model=InstantScorer(),
                        state=ValidatorState(), sampler=PromptSampler(PROMPTS, rng), rng=rng,
                    )  # fmt: skip
                    try:
                        return [await validator.step() for _ in range(args.repeats + 1)]
                    finally:
                        await client.aclose()

                steps = asyncio.run(run_steps())
                for step in steps:  # the warm-up step too: a fault there is as much a fault
                    check_step(bench, step, count)
                steps = steps[1:]  # the first step warms imports, the executor and the servers
                network_s, decode_s, total_s = (median([s.timing_s[k] for s in steps]) for k in ("query_s", "decode_s", "total_s"))
                overhead_s = median([s.timing_s["total_s"] - s.timing_s["score_s"] for s in steps])
                score_phase_s = median([s.timing_s["score_s"] for s in steps])
                results[count] = {
                    "step_s": round(total_s, 3), "network_s": round(network_s, 3),
                    "network_ms_per_miner": round(1000 * network_s / count, 2),
                    "decode_s": round(decode_s, 3), "decode_ms_per_miner": round(1000 * decode_s / count, 2),
                    "overhead_s": round(overhead_s, 3), "overhead_ms_per_miner": round(1000 * overhead_s / count, 2),
                    "score_phase_s": round(score_phase_s, 3),
                    "non_decode_overhead_ms_per_miner": round(1000 * (overhead_s - network_s - decode_s) / count, 3),
                    "answers_ok_min": min(sum(o.status == "ok" for o in s.outcomes) for s in steps),
                    "steps_scored": len(steps),
                }
                bench.log(f"{count:4d} miners: " + ", ".join(f"{k} {v}" for k, v in results[count].items()))
        finally:
            servers.close()

    rows = [[f"{count:,}", duration(r["network_s"]), duration(r["decode_s"]), duration(r["overhead_s"]),
             f"{r['overhead_ms_per_miner']:.1f} ms", duration(r["score_phase_s"]), duration(r["step_s"]),
             f"{r['answers_ok_min']}/{count}"] for count, r in results.items()]
    big, small = results[largest], results[min(counts)]
    linear = big["overhead_ms_per_miner"] <= 1.5 * small["overhead_ms_per_miner"]
    bench.table(f"Validator step, network and decoding ({args.servers} stub miner servers with the full btauth/1 verify, "
                f"a pre-encoded {len(mesh.faces):,}-face Draco mesh; the production Validator.step and MinerClient, "
                f"max_concurrency {concurrency}; a scorer that costs nothing; median of {args.repeats} steps)",
                ["miners", "network", "decode", "non-model overhead", "per miner", "score phase", "whole step",
                 "scored ok"], rows,
                note=f"Every step scored every miner (no fault, weights set). The non-model overhead is the whole step "
                     f"less its score phase; with this scorer the score phase is the executor hand-off and the "
                     f"garbage collection that frees the step's decoded meshes. Bytes per answer: {bytes_before:,} as "
                     f"bittensor 10.5 carried it (base64 inside JSON), {bytes_after:,} now (raw Draco): "
                     f"{100 * (1 - bytes_after / bytes_before):.0f}% less. Overhead per miner at {largest} miners is "
                     f"{'within' if linear else 'OVER'} 1.5x that at {min(counts)} (linear). Decoding one answer: "
                     f"{duration(decode_one_s)}. Peak RSS of the bench "
                     f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB.")
    bench.headline(f"Validator: a step over {largest} miners (signed HTTP, capped streamed answers, decoding and "
                   f"validating {len(mesh.faces):,}-face meshes) costs {duration(big['overhead_s'])} before scoring, "
                   f"{big['overhead_ms_per_miner']:.1f} ms a miner; all {largest} answers in after "
                   f"{duration(big['network_s'])}.")
    return {
        "transport": "btauth/1 signed HTTP (httpx -> uvicorn/h11), raw mesh bytes", "servers": args.servers,
        "stub": "raw ASGI under uvicorn, full bt.http_auth.verify (receiver hosted, signature, fresh, unseen)",
        "scorer": "InstantScorer (production rig, no model)", "canary": "off", "max_concurrency": concurrency,
        "mesh_faces": len(mesh.faces), "bytes_per_answer_before_base64_json": bytes_before,
        "bytes_per_answer_after_raw": bytes_after, "bytes_saved_pct": round(100 * (1 - bytes_after / bytes_before), 1),
        "decode_one_ms": round(1000 * decode_one_s, 2), "timeout_s": args.timeout_s, "repeats": args.repeats,
        "results": {str(k): v for k, v in results.items()}, "overhead_linear": linear,
        "network_within_timeout": big["network_s"] <= args.timeout_s,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def logging_quiet() -> None:
    import logging

    logging.getLogger("text3d").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve"]:  # a stub miner server process (started by ``Servers``), not the bench
        parser = argparse.ArgumentParser()
        for flag in ("--port", "--payload", "--hotkeys"):
            parser.add_argument(flag, required=True, type=int if flag == "--port" else str)
        serve(parser.parse_args(argv[1:]))
        return 0
    return run("validator", __doc__, add_arguments, measure, smoke=SMOKE, packages=PACKAGES, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
