"""The validator's engine: the step loop, one step's phases in order, saves and reports.

One step (each phase a function in ``text3d.validator.step``, timed under its name):

1. ``sync``: resync the metagraph; a uid whose hotkey changed loses its history;
2. ``select``, ``query``: draw a task and query a random sample of serving miners at once
   over signed HTTP (``text3d.validator.client``: capped, deadline-bound, timed at the last
   byte); each miner gets its own seed;
3. ``decode``: parse and decode every answer under the codec's limits, in the executor
   (never on the event loop);
4. ``score``: score the decoded meshes with the RewardModel (in the executor) under the
   step's secret camera rig and contrast prompts, both drawn from a fresh step seed and
   the pinned protocol only (the prompt source never chooses what a score is measured
   against; recorded in the report, so every score can be reproduced);
5. ``copies``: answers in one step that are the same object earn once, for the earliest
   complete answer; a miner that sends the same object it sent for another prompt among
   its last answers scores 0 for the repeat (``text3d.validator.copycats``; the memory is
   saved with the state);
6. ``canary``: a known mesh and prompt, every ``canary_every_steps``: when it fails, our
   renderer, CLIP or captioner is broken and the step is void;
7. ``update``: fold each queried miner's score into its moving average -- missing, late,
   refused, oversize, invalid, duplicate or repeated answers score 0 -- unless the step hit
   a ``ValidatorFault`` (our captioner, models, memory, a failed canary, or our own network
   when *every* miner failed at the transport level): then nobody's average changes;
8. ``weights``: the averages through the incentive curve, when ``weights_rate_limit``
   blocks have passed; then the state is saved atomically and the step's report written.

With ``--gateway.url``, ``run`` also runs an organic worker beside the steps
(``text3d.validator.organic``): jobs from a gateway, through the same phases.

The composition root (settings -> parts) is ``text3d.validator.main``.
"""

import asyncio
import functools
import gc
import logging
import random
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from text3d.common.seeds import draw_step_seed
from text3d.common.timing import Stopwatch
from text3d.protocol.errors import ValidatorFault
from text3d.protocol.limits import DEFAULT_LIMITS, MeshLimits
from text3d.reward.defences.canary import CanaryExpectations
from text3d.settings import ValidatorSettings
from text3d.validator import step as phases
from text3d.validator.client import MinerClient
from text3d.validator.outcomes import MinerOutcome, StepResult
from text3d.validator.prompts import PromptSampler
from text3d.validator.reports import MAX_MESH_BYTES, TOP_MESHES, StepReports, top_meshes
from text3d.validator.state import ValidatorState
from text3d.validator.weights import DEFAULT_CURVE, IncentiveCurve

log = logging.getLogger("text3d.validator")

__all__ = ["MinerOutcome", "StepResult", "Validator"]

Clock = Callable[[], float]


class Validator:
    """Plain composition of the parts a step needs; ``step()`` runs the phases, ``run()`` loops."""

    def __init__(
        self,
        config: ValidatorSettings,
        *,
        wallet: Any,
        chain: Any,
        client: MinerClient,
        reward_model: phases.StepScorer,
        state: ValidatorState,
        sampler: PromptSampler,
        rng: random.Random,
        reports: StepReports | None = None,
        executor: ThreadPoolExecutor | None = None,
        limits: MeshLimits = DEFAULT_LIMITS,
        clock: Clock = time.monotonic,
        incentive: IncentiveCurve = DEFAULT_CURVE,
        canary: CanaryExpectations = CanaryExpectations(),
        organic: Any = None,
        metrics: Any = None,
    ) -> None:
        """``organic``: a ``text3d.validator.organic.OrganicWorker`` run beside the steps, or None;
        ``metrics``: a ``text3d.ops.metrics.ValidatorMetrics`` fed once per step, or None."""
        self.config = config
        self.organic = organic  # text3d.validator.organic.OrganicWorker, or None
        self.incentive = incentive
        self.canary_expectations = canary
        self._canary_failed = False
        self._failed_saves = 0
        self.wallet = wallet
        self.hotkey = wallet.hotkey.ss58_address
        self.chain = chain
        self.client = client
        self.reward_model = reward_model
        self.state = state
        self.sampler = sampler
        self.rng = rng
        self.reports = reports
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="text3d-score")
        self.limits = limits
        self._clock = clock
        self.metagraph: Any = None
        self.metrics = metrics

    async def _in_executor(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def step(self) -> StepResult:
        """Run one step; never raises for a miner's or the validator's service failure."""
        watch = Stopwatch(self._clock)
        started = self._clock()
        step_no = self.state.step + 1
        try:
            with watch.phase("sync"):
                self.metagraph, _ = await asyncio.to_thread(phases.sync_metagraph, self.chain, self.state,
                                                            self.state.answers.forget)
        except ValidatorFault as exc:
            log.warning("step %d: chain unavailable, skipping the step: %s", step_no, exc)
            timing = {f"{k}_s": v for k, v in watch.seconds.items()} | {"total_s": self._clock() - started}
            skipped = StepResult(step_no, None, [], timing, updated=False, fault=f"{type(exc).__name__}: {exc}")
            if self.metrics is not None:
                self.metrics.observe_step(skipped, self.state.averages)
            return skipped
        hotkeys = self.metagraph.hotkeys

        with watch.phase("select"):
            uids = phases.select_miners(self.metagraph, self.hotkey, self.config.sample_size, self.rng)
            task = await asyncio.to_thread(self.sampler.draw)  # an LLM prompt source may take seconds
            seeds = phases.draw_miner_seeds(self.rng, len(uids))
        with watch.phase("query"):
            answers = await phases.query_miners(self.client, self.metagraph, uids, task, seeds, self.config.timeout_s)

        outcomes, fault = phases.transport_outcomes(answers, hotkeys, seeds)
        to_score: list[tuple[MinerOutcome, Any]] = []
        if fault is None:
            with watch.phase("decode"):
                try:
                    judged = await self._in_executor(phases.decode_answers, answers, hotkeys, seeds, self.limits)
                except ValidatorFault as exc:
                    fault, judged = f"{type(exc).__name__}: {exc}", []
            del answers  # the bytes are decoded: let them go before rendering
            outcomes = [outcome for outcome, _ in judged]
            to_score = [(outcome, mesh) for outcome, mesh in judged if mesh is not None]

        step_seed = draw_step_seed(self.rng)  # the secret rig and the contrast prompts of this step
        rig = self.reward_model.rig_for(step_seed)  # drawn once: scoring, the canary and the report share it
        meshes: dict[int, bytes] = {}
        with watch.phase("score"):
            if fault is None:
                fault = await self._in_executor(phases.score_answers, self.reward_model, to_score, task.prompt,
                                                rig=rig, step_seed=step_seed)
            if fault is None and self.reports is not None:  # the best answers' meshes, for the step page's viewer
                meshes = await self._in_executor(top_meshes, to_score, TOP_MESHES, MAX_MESH_BYTES)
            del to_score
            gc.collect()  # decoded meshes sit in reference cycles: free them now, not at some later collection
        if fault is None:
            with watch.phase("copies"):
                # seconds of alignment work for a full step: off the event loop, like scoring
                await self._in_executor(phases.judge_copies, outcomes, task.prompt, step_no, self.state.answers)

        canary = None
        if fault is None and self._canary_due(step_no):
            with watch.phase("canary"):
                canary = await self._in_executor(phases.run_canary, self.reward_model, step_seed, rig,
                                                 self.canary_expectations)
            self._canary_failed = canary != "ok"
            if self._canary_failed:
                fault = f"canary failed ({canary}): our renderer, CLIP or captioner is broken"

        with watch.phase("update"):
            before = {o.uid: self.state.averages.get(o.uid, 0.0) for o in outcomes}
            if fault is None:
                phases.update_averages(self.state, outcomes, self.config.alpha)
            else:
                log.warning("step %d: validator fault, no miner's score changes: %s", step_no, fault)
            self.state.step = step_no
        timing = {f"{k}_s": v for k, v in watch.seconds.items()}
        result = StepResult(step_no, task, outcomes, timing, updated=fault is None, fault=fault,
                            step_seed=step_seed, rig=rig.to_dict() if rig is not None else None, canary=canary,
                            alpha=self.config.alpha,
                            averages={uid: (old, self.state.averages.get(uid, 0.0)) for uid, old in before.items()})
        with watch.phase("weights"):
            result.weights = await self.maybe_set_weights()
        with watch.phase("save"):
            await asyncio.to_thread(self._save_state, step_no)
        timing.update({f"{k}_s": v for k, v in watch.seconds.items()})
        timing["total_s"] = self._clock() - started
        if self.reports is not None:
            await asyncio.to_thread(self._write_report, result, meshes)
        self._log_step(result, len(uids))
        if self.metrics is not None:
            self.metrics.observe_step(result, self.state.averages, int(self.metagraph.n))
        return result

    def _log_step(self, result: StepResult, n_miners: int) -> None:
        counts: dict[str, int] = {}
        for outcome in result.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        log.info(
            "step %d: %d miners (%s), prompt %r, %s%s",
            result.step, n_miners, ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none",
            result.task.prompt, ", ".join(f"{k} {v:.2f}" for k, v in result.timing_s.items()),
            f", weights: {result.weights}" if result.weights else "",
        )
        from text3d.reward.reporting.terminal import terminal_safe  # a detail may quote a miner's bytes: one line each

        for outcome in sorted(result.outcomes, key=lambda o: o.uid):  # one line per miner: grep-able by uid
            after = result.averages.get(outcome.uid, (0.0, 0.0))[1]
            log.info(
                "step %d uid %d %s: %s score %.3f avg %.3f, %s, %s bytes%s", result.step, outcome.uid,
                outcome.hotkey[:8], outcome.status, outcome.score, after,
                "-" if outcome.response_s is None else f"{outcome.response_s:.2f}s", f"{outcome.payload_bytes:,}",
                f" ({terminal_safe(outcome.detail, 160)})" if outcome.detail and outcome.status != "ok" else "",
            )

    def _canary_due(self, step_no: int) -> bool:
        every = self.config.canary_every_steps
        if every <= 0:
            return False
        return self._canary_failed or step_no % every == 0 or step_no == 1

    @property
    def state_path(self) -> Path:
        assert self.config.state_path is not None, "main() fills in the default state path"
        return self.config.state_path

    def _save_state(self, step: int) -> None:
        """Save the state; a failure (a full disk) is logged and retried at the next step, scoring goes on.

        Old reports are pruned first, keeping room for this step's: evidence is expendable,
        the moving averages are not. The file on disk stays the last state that was saved.
        """
        if self.reports is not None:
            try:
                self.reports.prune(reserve_bytes=self.reports.last_step_bytes())
            except OSError as exc:
                log.warning("step %d: could not prune the reports: %s", step, exc)
        try:
            self.state.save(self.state_path)
        except OSError as exc:
            self._failed_saves += 1
            log.error("step %d: could not save the state to %s (%s; %d failed in a row): scoring goes on, the save "
                      "is retried at the next step", step, self.state_path, exc.strerror or exc, self._failed_saves)
            return
        if self._failed_saves:
            log.info("step %d: state saved again after %d failed saves", step, self._failed_saves)
        self._failed_saves = 0

    def _write_report(self, result: StepResult, meshes: dict[int, bytes] | None = None) -> None:
        scored = [
            (f"uid {o.uid} ({o.hotkey[:8]}) score {o.score:.3f}", o.report) for o in result.outcomes if o.report is not None
        ]
        try:
            self.reports.write(result.step, result.to_json(), scored, title=f"step {result.step}: {result.task.prompt}",
                               meshes=meshes)
        except Exception as exc:  # evidence is best-effort; never stop scoring for it
            log.warning("step %d: could not write the report: %s: %s", result.step, type(exc).__name__, exc)

    # -- weights ------------------------------------------------------------------

    async def maybe_set_weights(self) -> str | None:
        """``phases.set_weights_if_due`` off the event loop (the chain calls block)."""
        return await asyncio.to_thread(phases.set_weights_if_due, self.chain, self.wallet, self.state,
                                       int(self.metagraph.n), self.incentive)

    # -- loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Step every ``step_interval_s`` until ``stop`` or ``max_steps``; returns steps run.

        The organic worker, when there is one, runs beside the steps and stops with them.
        """
        stop = stop or asyncio.Event()
        finished = asyncio.Event()
        worker = asyncio.create_task(self.organic.run(self, finished)) if self.organic is not None else None
        try:
            return await self._steps(stop)
        finally:
            finished.set()
            if worker is not None:
                await asyncio.gather(worker, return_exceptions=True)

    async def _steps(self, stop: asyncio.Event) -> int:
        done = 0
        while not stop.is_set() and (self.config.max_steps == 0 or done < self.config.max_steps):
            started = self._clock()
            try:
                await self.step()
            except Exception:  # one broken step must not end the validator
                log.error("validator step failed:\n%s", traceback.format_exc())
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
