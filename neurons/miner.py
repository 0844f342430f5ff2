"""The miner: serves ``TextTo3D`` on an Axon, turning prompts into encoded meshes.

Composition (built in ``main()``, passed in everywhere else): a chain adapter, a
generator (``generate(prompts, seeds) -> list[Trimesh]``), one 1-worker executor for
all GPU/CPU-heavy work, and clocks. Requests arriving within ``batch_window_s`` of each
other are generated together (up to ``max_batch_size``). An answer that cannot reach
the caller before its timeout is dropped, not sent late: requests whose remaining
budget is shorter than a typical batch are never started, and results that finish
past the deadline are not encoded or returned.

Run as ``python neurons/miner.py ...`` or ``python -m neurons.miner ...``.
"""

import asyncio
import signal
import sys
import time
import typing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

if __package__ in (None, ""):  # `python neurons/miner.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bittensor as bt

from neurons.blacklist import BlacklistPolicy, caller_stake, check_caller
from neurons.registration import open_registered
from neurons.config import (
    ConfigError,
    GenerationSettings,
    MinerConfig,
    NeuronConfig,
    axon_config,
    generation_settings,
    miner_config,
    neuron_config,
    parse_bt_config,
)
from protocol import TextTo3D

__all__ = ["Batcher", "Miner", "build_generator", "main"]

Clock = Callable[[], float]
_DEFAULT_TIMEOUT_S = 12.0  # bittensor's dendrite default, for synapses that carry none


@dataclass
class _Job:
    prompt: str
    seed: int
    deadline: float  # on the batcher's clock
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Runs ``work(prompts, seeds) -> results`` on ``executor`` for batches of requests.

    ``submit`` waits for its own result, or returns None when the request was dropped
    because its deadline could not be met. One batch runs at a time (the executor has
    one worker); the batch loop survives failures of ``work`` (the error goes to the
    requests of that batch only).
    """

    def __init__(
        self,
        work: Callable[[list[str], list[int]], list[Any]],
        executor: ThreadPoolExecutor,
        *,
        max_batch_size: int,
        window_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._work = work
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self._clock = clock
        self.expected_batch_s = 0.0  # moving average of batch durations, the admission estimate
        self.batch_sizes: list[int] = []  # history, for logs and tests
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, prompt: str, seed: int, deadline: float) -> Any | None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._loop())
        job = _Job(prompt, seed, deadline, loop.create_future())
        await self._queue.put(job)
        return await job.future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _collect(self) -> list[_Job]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        window_end = self._clock() + self.window_s
        while len(batch) < self.max_batch_size:
            remaining_s = window_end - self._clock()
            if remaining_s <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining_s))
            except asyncio.TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            now = self._clock()
            live = [j for j in batch if not j.future.done() and j.deadline - now > self.expected_batch_s]
            dropped = [j for j in batch if j not in live and not j.future.done()]
            for job in dropped:
                job.future.set_result(None)  # cannot make it in time: drop, do not start
            if dropped:  # forget a one-off slow batch (warm-up) slowly, or we would never try again
                self.expected_batch_s *= 0.8
            if not live:
                continue
            started = self._clock()
            try:
                results = await loop.run_in_executor(
                    self._executor, self._work, [j.prompt for j in live], [j.seed for j in live]
                )
                if len(results) != len(live):
                    raise RuntimeError(f"generator returned {len(results)} results for {len(live)} prompts")
            except Exception as exc:  # one failed batch fails its requests, never the loop
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            finally:
                elapsed_s = self._clock() - started
                self.expected_batch_s = elapsed_s if not self.batch_sizes else 0.7 * self.expected_batch_s + 0.3 * elapsed_s
                self.batch_sizes.append(len(live))
            for job, result in zip(live, results):
                if not job.future.done():
                    job.future.set_result(result)


class Miner:
    """Answers ``TextTo3D`` requests; attach to an Axon with ``attach(axon)``."""

    def __init__(
        self,
        config: MinerConfig,
        *,
        chain: Any,
        generator: Any,
        executor: ThreadPoolExecutor | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
    ) -> None:
        self.config = config
        self.chain = chain
        self.generator = generator
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="text3d-gen")
        self._clock = clock
        self._wall_clock = wall_clock
        self.policy = BlacklistPolicy(min_validator_stake=config.min_validator_stake)
        self.metagraph: Any = None
        self.batcher = Batcher(
            self._generate_encoded,
            self.executor,
            max_batch_size=config.max_batch_size,
            window_s=config.batch_window_s,
            clock=clock,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0  # answers dropped for lateness

    # -- chain --------------------------------------------------------------------

    def sync(self) -> None:
        """Refresh the metagraph the blacklist and priority read (blocking: call off-loop)."""
        self.metagraph = self.chain.metagraph()

    # -- axon hooks (signatures are checked by bt.Axon.attach) ----------------------

    def blacklist(self, synapse: TextTo3D) -> typing.Tuple[bool, str]:
        if self.metagraph is None:
            return True, "metagraph not synced yet"
        hotkey = synapse.dendrite.hotkey if synapse.dendrite is not None else None
        return check_caller(self.metagraph, hotkey, self.policy)

    def priority(self, synapse: TextTo3D) -> float:
        if self.metagraph is None or synapse.dendrite is None:
            return 0.0
        return caller_stake(self.metagraph, synapse.dendrite.hotkey)

    async def forward(self, synapse: TextTo3D) -> TextTo3D:
        """The Axon handler. Runs on the Axon's event loop; the work runs on the miner's."""
        loop = self._loop
        if loop is not None and loop.is_running() and loop is not asyncio.get_running_loop():
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.answer(synapse), loop))
        return await self.answer(synapse)

    def attach(self, axon: "bt.Axon") -> "bt.Axon":
        return axon.attach(forward_fn=self.forward, blacklist_fn=self.blacklist, priority_fn=self.priority)

    # -- work ---------------------------------------------------------------------

    def deadline_of(self, synapse: TextTo3D) -> float:
        """The last moment (on ``clock``) an answer is still useful to the caller.

        The budget is the synapse's ``timeout`` minus the time already spent in transit
        (from the dendrite's nanosecond nonce, when the clocks plausibly agree) minus
        ``deadline_margin_s`` for the trip back.
        """
        timeout_s = float(synapse.timeout or _DEFAULT_TIMEOUT_S)
        spent_s = 0.0
        nonce = synapse.dendrite.nonce if synapse.dendrite is not None else None
        if nonce:
            age_s = self._wall_clock() - nonce / 1e9
            if 0.0 <= age_s <= timeout_s:
                spent_s = age_s
        return self._clock() + timeout_s - spent_s - self.config.deadline_margin_s

    async def answer(self, synapse: TextTo3D) -> TextTo3D:
        """Fill ``synapse`` with an encoded mesh, or leave it empty when late or failed."""
        deadline = self.deadline_of(synapse)
        started = self._clock()
        try:
            result = await self.batcher.submit(synapse.prompt, int(synapse.seed), deadline)
        except Exception as exc:
            bt.logging.error(f"generation failed for prompt {synapse.prompt!r}: {type(exc).__name__}: {exc}")
            return synapse
        if result is None or self._clock() > deadline:
            self.dropped += 1
            bt.logging.warning(f"dropped an answer that would arrive after the caller's timeout ({synapse.timeout}s)")
            return synapse
        if isinstance(result, Exception):
            bt.logging.error(f"could not encode the mesh for prompt {synapse.prompt!r}: {result}")
            return synapse
        synapse.mesh_b64, synapse.mesh_format = result
        synapse.generation_time_s = self._clock() - started
        return synapse

    def _generate_encoded(self, prompts: list[str], seeds: list[int]) -> list[tuple[str, str] | Exception]:
        """Executor job: generate a batch, encode each mesh (base64 payload, format) or its error."""
        meshes = self.generator.generate(prompts, seeds)
        encoded: list[tuple[str, str] | Exception] = []
        for mesh in meshes:
            try:
                scratch = TextTo3D().attach_mesh(mesh, self.config.format)
                encoded.append((scratch.mesh_b64, scratch.mesh_format))
            except ValueError as exc:  # e.g. a mesh without colours or faces
                encoded.append(exc)
        return encoded

    # -- lifecycle ----------------------------------------------------------------

    async def run(self, axon: "bt.Axon", *, stop: asyncio.Event | None = None, announce: bool = True) -> None:
        """Serve until ``stop`` is set: start the axon, announce it, resync periodically."""
        self._loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        await asyncio.to_thread(self.sync)
        self.attach(axon)
        axon.start()
        if announce:
            await asyncio.to_thread(self.chain.serve_axon, axon.wallet, axon.external_ip, axon.external_port)
        bt.logging.info(f"miner serving on {axon.ip}:{axon.port}, announced {axon.external_ip}:{axon.external_port}")
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), self.config.resync_interval_s)
                except asyncio.TimeoutError:
                    pass
                if stop.is_set():
                    break
                try:
                    await asyncio.to_thread(self.sync)
                except Exception as exc:  # keep serving on the last metagraph
                    bt.logging.warning(f"metagraph resync failed, keeping the previous one: {exc}")
                    continue
                if axon.wallet.hotkey.ss58_address not in list(self.metagraph.hotkeys):
                    bt.logging.error("this miner's hotkey is no longer registered: re-register it to earn again")
        finally:
            axon.stop()
            await self.batcher.close()
            self._loop = None


def build_generator(neuron: NeuronConfig, settings: GenerationSettings) -> Any:
    """The Shap-E generator for ``--models real|tiny`` (tiny: the offline random-weight pipeline)."""
    from generation import GenerationConfig, ShapEGenerator

    model = "tiny" if neuron.models == "tiny" else "openai/shap-e"
    config = GenerationConfig(
        model=model,
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance,
        grid_size=settings.grid_size,
        device=neuron.resolved_device(),
    )
    return ShapEGenerator.from_pretrained(model, config)


def _fatal_errors() -> tuple[type[BaseException], ...]:
    from bittensor_wallet.errors import KeyFileError

    from generation.errors import ModelNotAvailableError
    from neurons.chain.base import HotkeyNotRegistered
    from reward.errors import ValidatorFault

    return (ConfigError, HotkeyNotRegistered, ValidatorFault, ModelNotAvailableError, KeyFileError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    bt_config = parse_bt_config("miner", argv)
    try:
        neuron = neuron_config(bt_config)
        bt.logging(config=bt_config)
        axon_cfg = axon_config(bt_config, neuron)
        settings = miner_config(bt_config)
        wallet, chain = open_registered(bt_config, neuron)
        generator = build_generator(neuron, generation_settings(bt_config))
        axon = bt.Axon(
            wallet=wallet,
            ip=axon_cfg.ip,
            port=axon_cfg.port,
            external_ip=axon_cfg.external_ip,
            external_port=axon_cfg.external_port,
        )
    except _fatal_errors() as exc:
        print(f"text3d miner: {exc}", file=sys.stderr)
        return 2
    miner = Miner(settings, chain=chain, generator=generator)

    async def serve() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):  # pm2/systemd stop: shut the axon down cleanly
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await miner.run(axon, stop=stop)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
