"""A real miner process on the devnet and a validator's signed requests to it, for scale-out tests.

- ``child_env()``: the environment of child processes (repo importable, hub offline, one torch thread).
- ``generation_server_argv(port, *flags)``: ``text3d generation-server`` on 127.0.0.1 with tiny Shap-E.
- ``wait_ready(port, group, timeout_s)``: until ``GET /ready`` says 200 (children checked alive).
- ``ask(subnet, port, prompts, ...)``: signed ``TextTo3DRequest``s from the subnet's validator wallet
  through the real ``MinerClient``, a few at a time; one ``MinerAnswer`` per prompt, in order.
- ``validator_argv(subnet, **options)``: ``LocalSubnet.validator_argv`` (the demo's fast tiny settings).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Callable, Sequence

import httpx

from text3d.demo import LocalSubnet, ProcessGroup, wait_until
from text3d.demo.subnet import TinySettings
from text3d.validator.client import MinerAnswer, MinerClient, Target
from text3d.protocol.wire import TextTo3DRequest
from text3d.common.paths import source_root

__all__ = ["TINY", "child_env", "generation_server_argv", "wait_ready", "ask", "validator_argv"]

TINY = TinySettings()


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source_root()), env.get("PYTHONPATH", "")) if p)
    return {**env, **extra}


def generation_server_argv(port: int, *flags: str) -> list[str]:
    return [sys.executable, "-m", "text3d.cli.main", "generation-server", "--models", "tiny", "--device", "cpu",
            "--generation.steps", str(TINY.generation_steps), "--generation.guidance", str(TINY.generation_guidance),
            "--generation.grid_size", str(TINY.grid_size), "--server.port", str(port), *flags]  # fmt: skip


def wait_ready(port: int, group: ProcessGroup, timeout_s: float = 180.0) -> None:
    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout_s=timeout_s, what=f"the generation server on port {port} to be ready",
               check=group.check_alive)  # fmt: skip


def ask(
    subnet: LocalSubnet,
    miner: str,
    port: int,
    prompts: Sequence[str],
    *,
    timeout_s: float = 30.0,
    concurrency: int = 4,
    on_answer: Callable[[int, MinerAnswer], None] | None = None,
) -> list[MinerAnswer]:
    """Each prompt once (seed = its index), ``concurrency`` in flight; ``on_answer(i, answer)`` as they come."""
    target = Target(uid=subnet.uids[miner], hotkey=subnet.hotkey_of(miner), ip="127.0.0.1", port=port)

    async def go() -> list[MinerAnswer]:
        client = MinerClient(subnet.wallet("validator"), max_concurrency=concurrency)
        try:
            async def one(i: int, prompt: str) -> MinerAnswer:
                answer = await client.query(target, TextTo3DRequest(prompt=prompt, seed=i, timeout_s=timeout_s),
                                            timeout_s)  # fmt: skip
                if on_answer is not None:
                    on_answer(i, answer)
                return answer

            return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))
        finally:
            await client.aclose()

    return asyncio.run(go())


def validator_argv(subnet: LocalSubnet, **options: object) -> list[str]:
    """The devnet validator's command line, with the demo's fast tiny-model settings."""
    return subnet.validator_argv(**options)  # type: ignore[arg-type]
