"""The validator: ask miners for meshes, score them, keep moving averages, set weights.

One step:

1. resync the metagraph; a uid whose hotkey changed loses its history;
2. draw a task (a prompt from the shipped set) and query a random sample of serving
   miners (registered, axon served, not ourselves) at once over signed HTTP
   (``neurons.miner_client``: capped, deadline-bound, timed at the last byte); each
   miner gets its own seed;
3. parse and decode every answer under the codec's limits, in the executor (never on
   the event loop);
4. score the decoded meshes with the RewardModel (in the executor) under the step's
   secret camera rig and contrast prompts, both drawn from a fresh step seed (recorded in
   the report, so every score can be reproduced);
5. copycats: answers in one step that are the same object earn once, for the earliest
   complete answer; a miner that sends the same object for different prompts within
   ``copycat_window_steps`` scores 0 for the repeat;
6. the canary (a known mesh and prompt) is scored every ``canary_every_steps``: when it
   fails, our renderer, CLIP or captioner is broken and the step is void;
7. fold each queried miner's score into its moving average -- missing, late, refused,
   oversize, invalid, duplicate or repeated answers score 0 -- unless the step hit a
   ``ValidatorFault`` (our captioner, models, memory, a failed canary, or our own network
   when *every* miner failed at the transport level): then nobody's average changes;
8. set weights (the averages through the incentive curve) when ``weights_rate_limit``
   blocks have passed, save the state atomically, write the step's report folder.

Run as ``text3d validator ...``, ``python -m neurons.validator ...`` or ``python neurons/validator.py ...``.
"""

import asyncio
import functools
import gc
import logging
import random
import signal
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

if __package__ in (None, ""):  # `python neurons/validator.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neurons.autoupdate import start_autoupdate
from neurons.logs import setup_logging
from neurons.miner_client import MinerAnswer, MinerClient, Target
from neurons.outcomes import MinerOutcome, StepResult, judge_answer
from neurons.incentive import DEFAULT_CURVE, IncentiveCurve, incentive_weights
from neurons.prompts import PromptSampler, Task
from neurons.reports import StepReports
from neurons.settings import Settings, ValidatorSettings, load_settings
from neurons.state import ValidatorState
from protocol.errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    ConfigError,
    ModelUnavailable,
    NetworkUnavailable,
    ValidatorFault,
)
from protocol.limits import DEFAULT_LIMITS, MeshLimits
from protocol.version import SPEC_VERSION
from protocol.wire import MAX_SEED, TextTo3DRequest
from reward.canary import CanaryExpectations, check_canary
from reward.fingerprint import RecentAnswers, first_come

log = logging.getLogger("text3d.validator")

__all__ = ["MinerOutcome", "StepResult", "Validator", "build_reward_model", "main"]

Clock = Callable[[], float]


class Validator:
    def __init__(
        self,
        config: ValidatorSettings,
        *,
        wallet: Any,
        chain: Any,
        client: MinerClient,
        reward_model: Any,
        state: ValidatorState,
        sampler: PromptSampler,
        rng: random.Random,
        reports: StepReports | None = None,
        executor: ThreadPoolExecutor | None = None,
        limits: MeshLimits = DEFAULT_LIMITS,
        clock: Clock = time.monotonic,
        incentive: IncentiveCurve = DEFAULT_CURVE,
        n_distractors: int = 15,
        canary: CanaryExpectations = CanaryExpectations(),
    ) -> None:
        self.config = config
        self.incentive = incentive
        self.n_distractors = n_distractors
        self.recent = RecentAnswers(max_steps=config.copycat_window_steps)
        self.canary_expectations = canary
        self._canary_failed = False
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

    # -- chain --------------------------------------------------------------------

    def resync(self) -> list[int]:
        """Refresh the metagraph and reset the history of uids whose hotkey changed."""
        self.metagraph = self.chain.metagraph()
        previous = dict(self.state.hotkeys)
        reset = self.state.sync_hotkeys(list(self.metagraph.hotkeys))
        for uid in reset:  # the newcomer inherits nothing, not even the old hotkey's answers
            if uid in previous:
                self.recent.forget(previous[uid])
        if reset:
            log.info("hotkeys changed behind uids %s: their history starts again", reset)
        return reset

    def serving_uids(self) -> list[int]:
        """Registered miners with a served axon, never ourselves."""
        return [n.uid for n in self.metagraph.neurons if n.hotkey != self.hotkey and n.is_serving]

    def select_miners(self) -> list[int]:
        candidates = self.serving_uids()
        return sorted(self.rng.sample(candidates, min(self.config.sample_size, len(candidates))))

    # -- one step -----------------------------------------------------------------

    async def query(self, uids: Sequence[int], task: Task, seeds: Sequence[int]) -> list[MinerAnswer]:
        """One answer per uid (same order); never raises for a miner's failure."""
        targets, requests = [], []
        for uid, seed in zip(uids, seeds):
            neuron = self.metagraph.neuron(uid)
            targets.append(Target(uid=uid, hotkey=neuron.hotkey, ip=neuron.axon_ip, port=neuron.axon_port))
            requests.append(TextTo3DRequest(prompt=task.prompt, seed=int(seed), timeout_s=self.config.timeout_s))
        return await self.client.query_many(targets, requests, self.config.timeout_s)

    def _decode_all(self, answers: Sequence[MinerAnswer], seeds: Sequence[int]) -> list[tuple[MinerOutcome, Any]]:
        judged = []
        for answer, seed in zip(answers, seeds):
            judged.append(judge_answer(answer, self.metagraph.hotkeys[answer.uid], seed, self.limits))
        return judged

    async def step(self) -> StepResult:
        """Run one step; never raises for a miner's or the validator's service failure."""
        loop = asyncio.get_running_loop()
        started = self._clock()
        step_no = self.state.step + 1
        timing = {"sync_s": 0.0, "network_s": 0.0, "decode_s": 0.0, "render_score_s": 0.0}
        try:
            await asyncio.to_thread(self.resync)
        except ValidatorFault as exc:
            log.warning("step %d: chain unavailable, skipping the step: %s", step_no, exc)
            timing["total_s"] = self._clock() - started
            return StepResult(step_no, None, [], timing, updated=False, fault=f"{type(exc).__name__}: {exc}")
        timing["sync_s"] = self._clock() - started

        uids, task = self.select_miners(), self.sampler.draw()
        seeds = [self.rng.randint(0, MAX_SEED) for _ in uids]  # each miner its own seed
        mark = self._clock()
        answers = await self.query(uids, task, seeds)
        timing["network_s"] = self._clock() - mark

        fault = None
        outcomes: list[MinerOutcome] = []
        to_score: list[tuple[MinerOutcome, Any]] = []
        if answers and all(answer.transport_level for answer in answers):
            fault = f"{NetworkUnavailable.__name__}: all {len(answers)} queried miners failed at the transport level"
            outcomes = [
                MinerOutcome(uid=a.uid, hotkey=self.metagraph.hotkeys[a.uid], status=a.status, detail=a.detail,
                             seed=s, response_s=a.elapsed_s)
                for a, s in zip(answers, seeds)
            ]
        else:
            mark = self._clock()
            try:
                judged = await loop.run_in_executor(self.executor, self._decode_all, answers, seeds)
            except ValidatorFault as exc:
                fault = f"{type(exc).__name__}: {exc}"
                judged = []
            del answers  # the bytes are decoded: let them go before rendering
            timing["decode_s"] = self._clock() - mark
            outcomes = [outcome for outcome, _ in judged]
            to_score = [(outcome, mesh) for outcome, mesh in judged if mesh is not None]

        mark = self._clock()
        step_seed = self.rng.getrandbits(63)  # the secret rig and the contrast prompts of this step
        distractors = self.sampler.distractors(task.prompt, step_seed, self.n_distractors)
        rig = self._secret_rig(step_seed)  # drawn once: scoring, the canary and the report share it
        if to_score and fault is None:
            try:
                # score_batch reports a mesh it cannot render as invalid (score 0, with the reason)
                reports = await loop.run_in_executor(
                    self.executor,
                    functools.partial(
                        self.reward_model.score_batch, [m for _, m in to_score], [task.prompt] * len(to_score),
                        rig=rig, step_seed=step_seed, distractors=[distractors] * len(to_score),
                    ),
                )
            except ValidatorFault as exc:
                fault = f"{type(exc).__name__}: {exc}"
            except MemoryError:
                fault = "ResourceExhausted: out of memory while scoring"
            except Exception as exc:  # a bug on our side is our fault too: no miner pays for it
                fault = f"{type(exc).__name__}: {exc}"
                log.error("step %d: scoring crashed:\n%s", step_no, traceback.format_exc())
            else:
                for (outcome, _), report in zip(to_score, reports):
                    outcome.report = report
                    if not report.is_valid:
                        outcome.status, outcome.detail = "invalid", str(report.invalid_reason)
                        continue
                    outcome.score = float(report.score)
                self._judge_copies([outcome for outcome, _ in to_score], task.prompt, step_no)
        del to_score
        gc.collect()  # decoded meshes sit in reference cycles: free them now, not at some later collection
        timing["render_score_s"] = self._clock() - mark

        canary = None
        if fault is None and self._canary_due(step_no):
            mark = self._clock()
            canary = await loop.run_in_executor(self.executor, self._run_canary, step_seed, rig)
            timing["canary_s"] = self._clock() - mark
            if canary != "ok":
                fault = f"canary failed ({canary}): our renderer, CLIP or captioner is broken"

        if fault is None:
            for outcome in outcomes:
                self.state.update(outcome.uid, outcome.score if outcome.status == "ok" else 0.0, self.config.alpha)
        else:
            log.warning("step %d: validator fault, no miner's score changes: %s", step_no, fault)
        self.state.step = step_no
        result = StepResult(step_no, task, outcomes, timing, updated=fault is None, fault=fault,
                            step_seed=step_seed, rig=rig.to_dict() if rig is not None else None, canary=canary)
        result.weights = await self.maybe_set_weights()
        await asyncio.to_thread(self._save_state, step_no)
        timing["total_s"] = self._clock() - started
        if self.reports is not None:
            await asyncio.to_thread(self._write_report, result)
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        log.info(
            "step %d: %d miners (%s), prompt %r, %s%s",
            step_no, len(uids), ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none", task.prompt,
            ", ".join(f"{k} {v:.2f}" for k, v in timing.items()),
            f", weights: {result.weights}" if result.weights else "",
        )
        return result

    def _secret_rig(self, step_seed: int) -> Any:
        """The step's secret camera rig; None for a scorer without ``rig_for`` (it draws its own from the seed)."""
        rig_for = getattr(self.reward_model, "rig_for", None)
        return rig_for(step_seed) if rig_for is not None else None

    def _judge_copies(self, outcomes: Sequence[MinerOutcome], prompt: str, step_no: int) -> None:
        """Copycats earn nothing: duplicates within the step (all but the earliest complete answer)
        and one object sent for different prompts by the same miner within the window."""
        scored = [o for o in outcomes if o.status == "ok" and o.report is not None and o.report.fingerprint is not None]
        arrival = sorted(scored, key=lambda o: (o.response_s if o.response_s is not None else float("inf"), o.uid))
        duplicates = first_come([o.report.fingerprint for o in arrival])
        for index, original in duplicates.items():
            copy, first = arrival[index], arrival[original]
            copy.status, copy.score = "duplicate", 0.0
            copy.detail = (f"the same object as uid {first.uid}'s answer, which arrived first "
                           f"({first.response_s or 0:.2f}s vs {copy.response_s or 0:.2f}s)")
        for outcome in arrival:
            fp = outcome.report.fingerprint
            earlier = self.recent.repeat_of(outcome.hotkey, prompt, fp)
            self.recent.add(outcome.hotkey, step_no, prompt, fp)
            if earlier is not None and outcome.status == "ok":
                outcome.status, outcome.score = "repeat", 0.0
                outcome.detail = f"the same object this miner sent for another prompt at step {earlier}"

    def _canary_due(self, step_no: int) -> bool:
        every = self.config.canary_every_steps
        if every <= 0:
            return False
        return self._canary_failed or step_no % every == 0 or step_no == 1

    def _run_canary(self, step_seed: int, rig: Any = None) -> str:
        """Executor job: "ok", or one sentence naming the broken part (never raises)."""
        try:
            result = check_canary(self.reward_model, step_seed=step_seed, rig=rig,
                                  expectations=self.canary_expectations)
        except Exception as exc:
            result_ok, reason = False, f"{type(exc).__name__}: {exc}"
        else:
            result_ok, reason = result.ok, result.reason
        self._canary_failed = not result_ok
        return "ok" if result_ok else reason

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
            self._failed_saves = getattr(self, "_failed_saves", 0) + 1
            log.error("step %d: could not save the state to %s (%s; %d failed in a row): scoring goes on, the save "
                      "is retried at the next step", step, self.state_path, exc.strerror or exc, self._failed_saves)
            return
        if getattr(self, "_failed_saves", 0):
            log.info("step %d: state saved again after %d failed saves", step, self._failed_saves)
        self._failed_saves = 0

    def _write_report(self, result: StepResult) -> None:
        scored = [
            (f"uid {o.uid} ({o.hotkey[:8]}) score {o.score:.3f}", o.report) for o in result.outcomes if o.report is not None
        ]
        try:
            self.reports.write(result.step, result.to_json(), scored, title=f"step {result.step}: {result.task.prompt}")
        except Exception as exc:  # evidence is best-effort; never stop scoring for it
            log.warning("step %d: could not write the report: %s: %s", result.step, type(exc).__name__, exc)

    # -- weights ------------------------------------------------------------------

    async def maybe_set_weights(self) -> str | None:
        """Set weights when ``weights_rate_limit`` blocks have passed since the last time.

        With no evidence yet (every average 0) nothing is set: spreading weight uniformly
        would reward garbage miners and this validator itself.
        """
        if not any(value > 0 for value in self.state.averages.values()):
            return "skipped: no miner has scored above 0 yet"
        try:
            block, rate_limit = await asyncio.to_thread(lambda: (self.chain.block(), self.chain.weights_rate_limit()))
            last = self.state.last_weight_block
            if last is not None and block - last < rate_limit:
                return None
            uids, weights = incentive_weights(self.state.averages, int(self.metagraph.n), self.incentive)
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


def build_reward_model(settings: Settings) -> Any:
    from reward.caption import OpenAICaptioner
    from reward.factory import build_reward_model as build

    from reward.ocr import RapidOcrEngine

    captioner_config = settings.captioner.to_config()
    captioner = OpenAICaptioner(captioner_config) if captioner_config is not None else None
    return build(settings.models, captioner, device=settings.resolved_device(), config=settings.reward,
                 ocr=RapidOcrEngine())


def check_scoring_protocol(settings: Settings) -> None:
    """On finney and test, refuse to start unless scoring is exactly the pinned protocol, with a captioner.

    Raises ``ConfigError`` naming what differs; devnet and local networks may change anything.
    """
    from reward.scoring_protocol import CaptionSpec, check_protocol

    captioner = settings.captioner
    caption = CaptionSpec(instruction=captioner.instruction, max_tokens=captioner.max_tokens,
                          temperature=captioner.temperature, seed=captioner.seed)
    check_protocol(settings.reward.to_protocol(caption), settings.subtensor.network, has_captioner=captioner.enabled)


def build_prompt_sampler(settings: ValidatorSettings, rng: random.Random) -> PromptSampler:
    """The step's prompt source: composed (>= 10^6 prompts), mixed with the shipped list, or an LLM's."""
    from neurons.prompts import ComposedPrompts, LLMPrompts, MixedPrompts, ShippedPrompts

    source = {"mixed": MixedPrompts, "composed": ComposedPrompts, "shipped": ShippedPrompts}[settings.prompts]()
    if settings.prompts_llm_url:
        source = LLMPrompts(settings.prompts_llm_url, fallback=source)
    return PromptSampler(source, rng)


def main(argv: Sequence[str] | None = None) -> int:
    from neurons.chain.factory import open_chain
    from neurons.registration import open_registered

    try:
        settings = load_settings("validator", argv)
        check_scoring_protocol(settings)
        setup_logging(settings.logging, role="validator", name=settings.wallet.name)
        start_autoupdate(settings.autoupdate)  # off unless --autoupdate
        config = settings.validator
        if config.state_path is None:
            config = config.model_copy(update={"state_path": settings.data_dir() / "validator_state.json"})
        if config.reports_dir is None:  # reports on by default, capped by --validator.reports_max_mb and free space
            config = config.model_copy(update={"reports_dir": settings.data_dir() / "reports"})
        chain = open_chain(settings.subtensor.network, settings.netuid, chain_endpoint=settings.subtensor.chain_endpoint,
                           devnet_db=settings.devnet.db)
        wallet = open_registered(settings.wallet.name, settings.wallet.hotkey, settings.wallet.path, chain)
        state = ValidatorState.load(config.state_path)
        reward_model = build_reward_model(settings)
    except (ConfigError, ModelUnavailable) as exc:  # missing weights too: a restart cannot fetch them (pm2 stops on 78)
        print(f"text3d validator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValidatorFault as exc:  # the chain unavailable: a restart later may help
        print(f"text3d validator: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    rng = random.Random()  # OS-seeded: miners must not predict tasks or seeds

    async def serve() -> None:
        client = MinerClient(wallet, connect_timeout_s=config.connect_timeout_s, max_concurrency=config.max_concurrency)
        validator = Validator(
            config,
            wallet=wallet,
            chain=chain,
            client=client,
            reward_model=reward_model,
            state=state,
            sampler=build_prompt_sampler(config, rng),
            rng=rng,
            incentive=settings.incentive,
            n_distractors=settings.reward.n_distractors,
            canary=CanaryExpectations.for_models(settings.models),
            reports=StepReports(config.reports_dir, config.reports_max_mb) if config.reports_max_mb > 0 else None,
        )
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):  # finish the step in flight, keep the saved state
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await validator.run(stop)
        finally:
            await client.aclose()

    try:
        asyncio.run(serve())
    finally:
        chain.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
