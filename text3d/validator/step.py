"""The validator's step as named phases: each a function of its inputs, testable and timed alone.

``Validator.step`` (``text3d.validator.engine``) runs them in this order and times each
under the phase's name (``StepResult.timing_s``):

    sync      ``sync_metagraph``     refresh the metagraph; uids whose hotkey changed start again
    select    ``select_miners``      a random sample of serving miners, never ourselves
    query     ``query_miners``       one signed request each, concurrently; each its own seed
    decode    ``decode_answers``     capped bytes -> outcome + mesh under the codec's limits
    score     ``score_answers``      the pinned protocol under the step's secret rig
    copies    ``judge_copies``       duplicates in the step and repeats across prompts earn nothing
    canary    ``run_canary``         a known mesh: is our own pipeline working?
    update    ``update_averages``    fold scores into moving averages, unless the step is void
    weights   ``set_weights_if_due`` averages through the incentive curve, on chain when due

Faults: a miner's failure is its outcome (score 0); ours (``ValidatorFault``) voids the step,
and no miner's average changes. Every phase below either returns a value or raises one of
ours; none swallows a miner's failure into a fault or the other way round.
"""

from __future__ import annotations

import asyncio
import logging
import random
import traceback
from typing import Any, Protocol, Sequence, runtime_checkable

from text3d.protocol.errors import NetworkUnavailable, ValidatorFault
from text3d.protocol.limits import MeshLimits
from text3d.protocol.version import SPEC_VERSION
from text3d.protocol.wire import MAX_SEED, TextTo3DRequest
from text3d.reward.defences.canary import CanaryExpectations, check_canary
from text3d.validator.client import MinerAnswer, MinerClient, Target
from text3d.validator.copycats import judge_copies
from text3d.validator.outcomes import MinerOutcome, judge_answer
from text3d.validator.prompts import Task
from text3d.validator.state import ValidatorState
from text3d.validator.weights import IncentiveCurve, weights_for_chain

__all__ = [
    "PHASES",
    "StepScorer",
    "sync_metagraph",
    "select_miners",
    "draw_miner_seeds",
    "query_miners",
    "transport_outcomes",
    "decode_answers",
    "score_answers",
    "judge_copies",
    "run_canary",
    "update_averages",
    "set_weights_if_due",
]

log = logging.getLogger("text3d.validator")

PHASES = ("sync", "select", "query", "decode", "score", "copies", "canary", "update", "weights")


@runtime_checkable
class StepScorer(Protocol):
    """What a step asks of its scorer: ``text3d.reward.model.RewardModel`` is the production one.

    Benches and tests that stand a cheaper scorer in for it implement this same interface
    (``tests/test_architecture.py`` checks their signatures against ``RewardModel``'s).
    """

    def rig_for(self, step_seed: int | None = None, rig: Any = None) -> Any:
        """The step's secret camera rig, drawn from ``step_seed`` (the public rig for None)."""

    def score_batch(self, meshes: Sequence[Any], prompts: Sequence[str], references: Any = None,
                    **options: Any) -> list[Any]:
        """One ``RewardReport`` per mesh; a mesh that cannot be scored is an invalid report, not an error."""


def sync_metagraph(chain: Any, state: ValidatorState, forget: Any = None) -> tuple[Any, list[int]]:
    """``(metagraph, reset_uids)``: the chain's metagraph now, and the uids whose hotkey changed.

    A changed hotkey's uid loses its average; ``forget(old_hotkey)`` lets the copycat memory
    drop what the old hotkey sent (the newcomer inherits nothing). Raises ``ValidatorFault``
    (``ChainUnavailable``) when the chain cannot be read.
    """
    metagraph = chain.metagraph()
    previous = dict(state.hotkeys)
    reset = state.sync_hotkeys(list(metagraph.hotkeys))
    if forget is not None:
        for uid in reset:
            if uid in previous:
                forget(previous[uid])
    if reset:
        log.info("hotkeys changed behind uids %s: their history starts again", reset)
    return metagraph, reset


def serving_uids(metagraph: Any, own_hotkey: str) -> list[int]:
    """Registered miners with a served axon, never ourselves."""
    return [n.uid for n in metagraph.neurons if n.hotkey != own_hotkey and n.is_serving]


def select_miners(metagraph: Any, own_hotkey: str, sample_size: int, rng: random.Random) -> list[int]:
    """Up to ``sample_size`` serving uids drawn by ``rng``, sorted."""
    candidates = serving_uids(metagraph, own_hotkey)
    return sorted(rng.sample(candidates, min(sample_size, len(candidates))))


def draw_miner_seeds(rng: random.Random, n: int) -> list[int]:
    """One seed per miner in the wire's range: two honest miners never return the same mesh."""
    return [rng.randint(0, MAX_SEED) for _ in range(n)]


async def query_miners(client: MinerClient, metagraph: Any, uids: Sequence[int], task: Task,
                       seeds: Sequence[int], timeout_s: float, *,
                       first_answer_grace_s: float | None = None) -> list[MinerAnswer]:
    """One answer per uid (same order); never raises for a miner's failure.

    ``first_answer_grace_s`` (organic jobs): once one miner has answered ``ok``, the others get
    this many seconds more, then count as ``late``; the requests themselves are the same.
    """
    targets, requests = [], []
    for uid, seed in zip(uids, seeds):
        neuron = metagraph.neuron(uid)
        targets.append(Target(uid=uid, hotkey=neuron.hotkey, ip=neuron.axon_ip, port=neuron.axon_port))
        requests.append(TextTo3DRequest(prompt=task.prompt, seed=int(seed), timeout_s=timeout_s))
    if first_answer_grace_s is None:
        return await client.query_many(targets, requests, timeout_s)
    return await _query_with_grace(client, targets, requests, timeout_s, first_answer_grace_s)


async def _query_with_grace(client: MinerClient, targets: Sequence[Target], requests: Sequence[TextTo3DRequest],
                            timeout_s: float, grace_s: float) -> list[MinerAnswer]:
    """``client.query`` for each target; those still out ``grace_s`` after the first ok answer are cut off."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks = [asyncio.ensure_future(client.query(t, r, timeout_s)) for t, r in zip(targets, requests)]
    cutoff: float | None = None
    pending = set(tasks)
    try:
        while pending:
            wait_s = None if cutoff is None else max(0.0, cutoff - loop.time())
            done, pending = await asyncio.wait(pending, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
            if cutoff is None and any(not t.cancelled() and t.exception() is None and t.result().status == "ok"
                                      for t in done):
                cutoff = loop.time() + grace_s
            if cutoff is not None and loop.time() >= cutoff:
                break
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    answers = []
    for target, task in zip(targets, tasks):
        if task in pending or task.cancelled() or task.exception() is not None:
            answers.append(MinerAnswer(target.uid, "late", f"no answer within {grace_s:g}s of the first valid one",
                                       elapsed_s=loop.time() - started))
        else:
            answers.append(task.result())
    return answers


def transport_outcomes(answers: Sequence[MinerAnswer], hotkeys: Sequence[str],
                       seeds: Sequence[int]) -> tuple[list[MinerOutcome], str | None]:
    """When *every* answer failed at the transport level the network is ours to blame.

    Returns ``(outcomes, fault)``: the outcomes as the answers say and a ``NetworkUnavailable``
    fault, or ``([], None)`` when at least one miner was reached (decode them instead).
    """
    if not answers or not all(answer.transport_level for answer in answers):
        return [], None
    fault = f"{NetworkUnavailable.__name__}: all {len(answers)} queried miners failed at the transport level"
    outcomes = [MinerOutcome(uid=a.uid, hotkey=hotkeys[a.uid], status=a.status, detail=a.detail, seed=s,
                             response_s=a.elapsed_s) for a, s in zip(answers, seeds)]
    return outcomes, fault


def decode_answers(answers: Sequence[MinerAnswer], hotkeys: Sequence[str], seeds: Sequence[int],
                   limits: MeshLimits) -> list[tuple[MinerOutcome, Any]]:
    """Executor job: ``(outcome, mesh or None)`` per answer; ``ResourceExhausted`` on our memory."""
    return [judge_answer(answer, hotkeys[answer.uid], seed, limits) for answer, seed in zip(answers, seeds)]


def score_answers(reward_model: Any, to_score: Sequence[tuple[MinerOutcome, Any]], prompt: str, *,
                  rig: Any, step_seed: int) -> str | None:
    """Executor job: score the decoded meshes and write each outcome's score and report.

    The contrast prompts are the scorer's own draw from the pinned protocol's pool for
    (prompt, step seed): nothing the validator's prompt source says reaches the score.

    A mesh the scorer cannot render is that miner's ``invalid`` answer. Returns the step's
    fault (a sentence) when the scoring itself failed on our side -- a ``ValidatorFault``,
    our memory, or a bug -- in which case no outcome was touched; None otherwise.
    """
    if not to_score:
        return None
    try:
        reports = reward_model.score_batch(
            [mesh for _, mesh in to_score], [prompt] * len(to_score),
            rig=rig, step_seed=step_seed,
        )
    except ValidatorFault as exc:
        return f"{type(exc).__name__}: {exc}"
    except MemoryError:
        return "ResourceExhausted: out of memory while scoring"
    except Exception as exc:  # a bug on our side is our fault too: no miner pays for it
        log.error("scoring crashed:\n%s", traceback.format_exc())
        return f"{type(exc).__name__}: {exc}"
    for (outcome, _), report in zip(to_score, reports):
        outcome.report = report
        if not report.is_valid:
            outcome.status, outcome.detail = "invalid", str(report.invalid_reason)
            continue
        outcome.score = float(report.score)
    return None


def run_canary(reward_model: Any, step_seed: int, rig: Any, expectations: CanaryExpectations) -> str:
    """Executor job: "ok", or one sentence naming the broken part of our pipeline (never raises)."""
    try:
        result = check_canary(reward_model, step_seed=step_seed, rig=rig, expectations=expectations)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok" if result.ok else result.reason


def update_averages(state: ValidatorState, outcomes: Sequence[MinerOutcome], alpha: float) -> None:
    """Fold each queried miner's step score into its moving average (anything but ok scores 0)."""
    for outcome in outcomes:
        state.update(outcome.uid, outcome.score if outcome.status == "ok" else 0.0, alpha)


def set_weights_if_due(chain: Any, wallet: Any, state: ValidatorState, n_uids: int,
                       curve: IncentiveCurve) -> str | None:
    """Set weights when ``weights_rate_limit`` blocks have passed since the last time (blocking).

    Returns what happened, for the logs, or None when it was not due. With no evidence yet
    (every average 0) nothing is set: spreading weight uniformly would reward garbage
    miners and this validator itself.
    """
    if not any(value > 0 for value in state.averages.values()):
        return "skipped: no miner has scored above 0 yet"
    try:
        block, rate_limit = chain.block(), chain.weights_rate_limit()
        last = state.last_weight_block
        if last is not None and block - last < rate_limit:
            return None
        uids, weights = weights_for_chain(state.averages, n_uids, curve)
        ok, message = chain.set_weights(wallet, uids.tolist(), weights.tolist(), SPEC_VERSION)
    except ValidatorFault as exc:
        return f"failed: {exc}"
    if ok:
        state.last_weight_block = block
        return f"set at block {block} for {int((weights > 0).sum())} uids"
    return f"refused: {message}"
