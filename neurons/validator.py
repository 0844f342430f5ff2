"""The validator: ask miners for meshes, score them, keep moving averages, set weights.

One step:

1. resync the metagraph; a uid whose hotkey changed loses its history;
2. draw a task (prompt from the shipped set + a fresh seed) and query a random sample
   of serving miners (registered, axon served, not ourselves) concurrently through the
   Dendrite, with ``timeout_s``;
3. decode every answer under the codec's limits (in the executor, one at a time);
4. score the decoded meshes with the RewardModel (in the executor);
5. fold each queried miner's score into its moving average -- missing, late, empty or
   invalid answers score 0 -- unless the step hit a ``ValidatorFault`` (our captioner or
   models failed): then nobody's average changes;
6. set weights when ``weights_rate_limit`` blocks have passed, save the state
   atomically, write the step's report folder.

Run as ``python neurons/validator.py ...`` or ``python -m neurons.validator ...``.
"""

import asyncio
import random
import signal
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

if __package__ in (None, ""):  # `python neurons/validator.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bittensor as bt

from neurons.registration import open_registered
from neurons.config import ConfigError, NeuronConfig, ValidatorConfig, neuron_config, parse_bt_config, validator_config
from neurons.prompts import PromptSampler, Task, load_prompts
from neurons.reports import StepReports
from neurons.state import ValidatorState
from neurons.weights import limits_of, weights_for_chain
from protocol import TextTo3D
from protocol.limits import DEFAULT_LIMITS, MeshDecodeError, MeshLimits
from protocol.mesh_codec import decode_mesh
from protocol.version import SPEC_VERSION
from reward.errors import ValidatorFault

__all__ = ["MinerOutcome", "StepResult", "Validator", "build_dendrite", "main"]

Clock = Callable[[], float]


@dataclass
class MinerOutcome:
    """What one queried miner did this step. ``status``: ok | no_response | late | empty | invalid."""

    uid: int
    hotkey: str
    status: str
    score: float = 0.0
    detail: str = ""
    response_s: float | None = None
    payload_bytes: int = 0
    mesh_format: str | None = None
    generation_time_s: float | None = None
    report: Any = field(default=None, repr=False)

    def to_json(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k != "report"}
        data["report"] = self.report.to_dict() if self.report is not None else None
        return data


@dataclass
class StepResult:
    step: int
    task: Task | None
    outcomes: list[MinerOutcome]
    timing_s: dict[str, float]
    updated: bool  # False when a ValidatorFault (or a chain failure) kept every average unchanged
    fault: str | None = None
    weights: str | None = None  # what happened to weights this step, for the logs

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "task": asdict(self.task) if self.task else None,
            "updated": self.updated,
            "fault": self.fault,
            "weights": self.weights,
            "timing_s": self.timing_s,
            "miners": [outcome.to_json() for outcome in self.outcomes],
        }


class Validator:
    def __init__(
        self,
        config: ValidatorConfig,
        *,
        wallet: Any,
        chain: Any,
        dendrite: Any,
        reward_model: Any,
        state: ValidatorState,
        sampler: PromptSampler,
        rng: random.Random,
        reports: StepReports | None = None,
        executor: ThreadPoolExecutor | None = None,
        limits: MeshLimits = DEFAULT_LIMITS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.wallet = wallet
        self.hotkey = wallet.hotkey.ss58_address
        self.chain = chain
        self.dendrite = dendrite
        self.reward_model = reward_model
        self.state = state
        self.sampler = sampler
        self.rng = rng
        self.reports = reports
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="text3d-score")
        self.limits = limits
        self._clock = clock
        self.metagraph: Any = None

    # -- chain --------------------------------------------------------------------

    def resync(self) -> list[int]:
        """Refresh the metagraph and reset the history of uids whose hotkey changed."""
        self.metagraph = self.chain.metagraph()
        reset = self.state.sync_hotkeys(list(self.metagraph.hotkeys))
        if reset:
            bt.logging.info(f"hotkeys changed behind uids {reset}: their history starts again")
        return reset

    def serving_uids(self) -> list[int]:
        """Registered miners with a served axon, never ourselves."""
        uids = []
        for uid, axon in enumerate(self.metagraph.axons):
            if axon.hotkey == self.hotkey or not axon.is_serving or not axon.port:
                continue
            uids.append(uid)
        return uids

    def select_miners(self) -> list[int]:
        candidates = self.serving_uids()
        return sorted(self.rng.sample(candidates, min(self.config.sample_size, len(candidates))))

    # -- one step -----------------------------------------------------------------

    async def query(self, uids: Sequence[int], task: Task) -> list[Any]:
        """One synapse per uid (same order), answered or carrying the dendrite's error status."""
        if not uids:
            return []
        axons = [self.metagraph.axons[uid] for uid in uids]
        responses = await self.dendrite.forward(
            axons, TextTo3D(prompt=task.prompt, seed=task.seed), timeout=self.config.timeout_s, deserialize=False
        )
        history = getattr(self.dendrite, "synapse_history", None)
        if isinstance(history, list):  # bittensor keeps every call forever: a slow leak in a validator
            history.clear()
        close = getattr(self.dendrite, "aclose_session", None)
        if close is not None:
            # Fresh connections every step: pooled keep-alive connections opened together also
            # expire together at the axons, and reusing them in that instant fails every miner
            # of a step with ServerDisconnectedError (seen in bench/validator.py).
            await close()
        return list(responses) if isinstance(responses, list) else [responses]

    def _judge_response(self, uid: int, response: Any) -> tuple[MinerOutcome, Any]:
        """Executor job: the outcome of one answer and its decoded mesh (None unless status ok)."""
        outcome = MinerOutcome(uid=uid, hotkey=self.metagraph.hotkeys[uid], status="no_response")
        dendrite = response.dendrite
        status_code = int(dendrite.status_code) if dendrite is not None and dendrite.status_code is not None else None
        try:
            outcome.response_s = float(dendrite.process_time) if dendrite is not None and dendrite.process_time else None
        except (TypeError, ValueError):
            outcome.response_s = None
        if status_code != 200:
            outcome.detail = f"status {status_code}: {dendrite.status_message if dendrite is not None else ''}"
            return outcome, None
        if outcome.response_s is not None and outcome.response_s > self.config.timeout_s:
            outcome.status, outcome.detail = "late", f"answered after {outcome.response_s:.2f}s"
            return outcome, None
        outcome.mesh_format = response.mesh_format
        outcome.generation_time_s = response.generation_time_s
        if not response.mesh_b64:
            outcome.status, outcome.detail = "empty", "no mesh in the answer"
            return outcome, None
        try:
            payload = response.mesh_bytes()
            outcome.payload_bytes = len(payload)
            mesh = decode_mesh(payload, self.limits)
        except MeshDecodeError as exc:
            outcome.status, outcome.detail = "invalid", str(exc)
            return outcome, None
        outcome.status = "ok"
        return outcome, mesh

    def _decode_all(self, uids: Sequence[int], responses: Sequence[Any]) -> list[tuple[MinerOutcome, Any]]:
        return [self._judge_response(uid, response) for uid, response in zip(uids, responses)]

    async def step(self) -> StepResult:
        """Run one step; never raises for a miner's or the validator's service failure."""
        loop = asyncio.get_running_loop()
        started = self._clock()
        step_no = self.state.step + 1
        timing = {"sync_s": 0.0, "network_s": 0.0, "decode_s": 0.0, "render_score_s": 0.0}
        try:
            await asyncio.to_thread(self.resync)
        except ValidatorFault as exc:
            bt.logging.warning(f"step {step_no}: chain unavailable, skipping the step: {exc}")
            timing["total_s"] = self._clock() - started
            return StepResult(step_no, None, [], timing, updated=False, fault=f"{type(exc).__name__}: {exc}")
        timing["sync_s"] = self._clock() - started

        uids, task = self.select_miners(), self.sampler.draw()
        mark = self._clock()
        responses = await self.query(uids, task)
        timing["network_s"] = self._clock() - mark

        mark = self._clock()
        judged = await loop.run_in_executor(self.executor, self._decode_all, uids, responses)
        timing["decode_s"] = self._clock() - mark
        outcomes = [outcome for outcome, _ in judged]
        to_score = [(outcome, mesh) for outcome, mesh in judged if mesh is not None]

        fault = None
        mark = self._clock()
        if to_score:
            try:
                # score_batch reports a mesh it cannot render as invalid (score 0, with the reason)
                reports = await loop.run_in_executor(
                    self.executor, self.reward_model.score_batch, [m for _, m in to_score], [task.prompt] * len(to_score)
                )
            except ValidatorFault as exc:
                fault = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug on our side is our fault too: no miner pays for it
                fault = f"{type(exc).__name__}: {exc}"
                bt.logging.error(f"step {step_no}: scoring crashed:\n{traceback.format_exc()}")
            else:
                for (outcome, _), report in zip(to_score, reports):
                    outcome.report = report
                    if not report.is_valid:
                        outcome.status, outcome.detail = "invalid", str(report.invalid_reason)
                        continue
                    outcome.score = float(report.score)
        timing["render_score_s"] = self._clock() - mark

        if fault is None:
            for outcome in outcomes:
                self.state.update(outcome.uid, outcome.score if outcome.status == "ok" else 0.0, self.config.alpha)
        else:
            bt.logging.warning(f"step {step_no}: validator fault, no miner's score changes: {fault}")
        self.state.step = step_no
        result = StepResult(step_no, task, outcomes, timing, updated=fault is None, fault=fault)
        result.weights = await self.maybe_set_weights()
        await asyncio.to_thread(self.state.save, self.config.state_path)
        timing["total_s"] = self._clock() - started
        if self.reports is not None:
            await asyncio.to_thread(self._write_report, result)
        bt.logging.info(
            f"step {step_no}: {len(uids)} miners, prompt {task.prompt!r}, "
            + ", ".join(f"{k} {v:.2f}" for k, v in timing.items())
            + (f", weights: {result.weights}" if result.weights else "")
        )
        return result

    def _write_report(self, result: StepResult) -> None:
        scored = [
            (f"uid {o.uid} ({o.hotkey[:8]}) score {o.score:.3f}", o.report) for o in result.outcomes if o.report is not None
        ]
        try:
            self.reports.write(result.step, result.to_json(), scored, title=f"step {result.step}: {result.task.prompt}")
        except Exception as exc:  # evidence is best-effort; never stop scoring for it
            bt.logging.warning(f"step {result.step}: could not write the report: {type(exc).__name__}: {exc}")

    # -- weights ------------------------------------------------------------------

    async def maybe_set_weights(self) -> str | None:
        """Set weights when ``weights_rate_limit`` blocks have passed since the last time.

        With no evidence yet (every average 0) nothing is set: bittensor's ``process_weights``
        would spread the weight uniformly, rewarding garbage miners and this validator itself.
        """
        if not any(value > 0 for value in self.state.averages.values()):
            return "skipped: no miner has scored above 0 yet"
        try:
            block, rate_limit = await asyncio.to_thread(lambda: (self.chain.block(), self.chain.weights_rate_limit()))
            last = self.state.last_weight_block
            if last is not None and block - last < rate_limit:
                return None
            uids, weights = weights_for_chain(
                self.state.averages, int(self.metagraph.n), self.chain.netuid, limits_of(self.chain), self.metagraph
            )
            ok, message = await asyncio.to_thread(
                self.chain.set_weights, self.wallet, uids.tolist(), weights.tolist(), SPEC_VERSION
            )
        except ValidatorFault as exc:
            return f"failed: {exc}"
        if ok:
            self.state.last_weight_block = block
            return f"set at block {block} for {int((weights > 0).sum())} uids"
        return f"refused: {message}"

    # -- loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Step every ``step_interval_s`` until ``stop`` or ``max_steps``; returns steps run."""
        stop = stop or asyncio.Event()
        done = 0
        while not stop.is_set() and (self.config.max_steps == 0 or done < self.config.max_steps):
            started = self._clock()
            try:
                await self.step()
            except Exception:  # one broken step must not end the validator
                bt.logging.error(f"validator step failed:\n{traceback.format_exc()}")
            done += 1
            if self.config.max_steps and done >= self.config.max_steps:
                break
            wait_s = self.config.step_interval_s - (self._clock() - started)
            if wait_s > 0:
                try:
                    await asyncio.wait_for(stop.wait(), wait_s)
                except asyncio.TimeoutError:
                    pass
        return done


def build_dendrite(wallet: Any, external_ip: str | None) -> "bt.Dendrite":
    """A Dendrite; with ``external_ip`` (local networks) it never looks the address up online.

    bittensor 10.5's ``Dendrite.__init__`` always calls ``get_external_ip()``, which
    fails or hangs offline; we answer that one call with the configured address.
    """
    if external_ip is None:
        return bt.Dendrite(wallet=wallet)
    from unittest import mock

    from bittensor.core import dendrite as dendrite_module

    with mock.patch.object(dendrite_module.networking, "get_external_ip", return_value=external_ip):
        return bt.Dendrite(wallet=wallet)


def build_reward_model(neuron: NeuronConfig, config: ValidatorConfig) -> Any:
    from reward.caption import CaptionerConfig, OpenAICaptioner
    from reward.config import RewardConfig
    from reward.factory import build_reward_model as build

    captioner = OpenAICaptioner(CaptionerConfig(base_url=config.captioner)) if config.captioner else None
    reward_config = RewardConfig(n_views=config.views, resolution_px=config.resolution)
    return build(neuron.models, captioner, device=neuron.resolved_device(), config=reward_config)


def main(argv: Sequence[str] | None = None) -> int:
    bt_config = parse_bt_config("validator", argv)
    try:
        from bittensor_wallet.errors import KeyFileError

        neuron = neuron_config(bt_config)
        config = validator_config(bt_config, neuron)
        bt.logging(config=bt_config)
        wallet, chain = open_registered(bt_config, neuron)
        state = ValidatorState.load(config.state_path)
        reward_model = build_reward_model(neuron, config)
        dendrite = build_dendrite(wallet, "127.0.0.1" if neuron.is_local else None)
    except (ConfigError, ValidatorFault, KeyFileError, ValueError, OSError) as exc:
        print(f"text3d validator: {exc}", file=sys.stderr)
        return 2
    rng = random.Random()  # OS-seeded: miners must not predict tasks
    validator = Validator(
        config,
        wallet=wallet,
        chain=chain,
        dendrite=dendrite,
        reward_model=reward_model,
        state=state,
        sampler=PromptSampler(load_prompts(), rng),
        rng=rng,
        reports=StepReports(config.reports_dir, config.reports_max_mb) if config.reports_dir else None,
    )
    async def serve() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):  # finish the step in flight, keep the saved state
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await validator.run(stop)
        await validator.dendrite.aclose_session()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
