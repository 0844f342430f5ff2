"""Organic work: jobs from a gateway, answered by miners exactly like synthetic tasks.

With ``--gateway.url`` the validator runs an ``OrganicWorker`` beside its synthetic steps
(``Validator.run`` starts it). The worker claims jobs from the gateway with requests signed
by the validator's hotkey (btauth/1, long-polled: ``--gateway.poll_s``), at most
``--gateway.jobs`` at once, and for each job:

1. **select**: ``--gateway.miners`` (k, default 4) serving miners by ``select_organic_miners``:
   one drawn uniformly from the ``--gateway.top_miners`` best by moving average (from all
   serving miners while none has scored yet), the other k-1 drawn uniformly from the rest;
2. **query**: through the step's own phase (``step.query_miners``), the same client, route,
   signing and timeout as a synthetic task; each miner gets its own seed
   (``organic_seeds``: derived from the caller's seed and the miner's hotkey when the caller
   gave one -- the same miner reproduces its answer -- else fresh), so a request carries
   nothing that tells it apart; once one miner has answered, the others get
   ``--gateway.wait_s`` more;
3. **decode**, **score**: the step's phases, in the validator's one executor, under a secret
   rig and contrast prompts drawn from a fresh seed: the pinned protocol;
4. **copies**: answers that are the same object (``cluster_copies``, the one copycat rule)
   earn once, for the earliest; an object this miner sent for another prompt within the
   copycat window is a ``repeat``;
5. **winner**: the highest score (ties: the earlier answer); its mesh in the format the
   caller asked (and a GLB preview), its views and the evidence are uploaded; with no valid
   answer, or a fault of ours (the captioner, the scorer), the job is given back with the
   reason and the gateway hands it to another worker or fails it.

Organic scores change no miner's average unless ``--gateway.count_toward_weights``: a caller
chooses organic prompts, and a caller colluding with a miner could send prompts that miner
has prepared answers for.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import logging
import random
import time
import traceback
from dataclasses import dataclass
from typing import Any, Sequence

from text3d.common.seeds import draw_step_seed
from text3d.protocol.mesh_codec import MeshFormat, encode_mesh
from text3d.protocol.organic import (
    CandidateEvidence, OrganicEvidence, OrganicJob, ViewEvidence, build_manifest, frame_result,
)
from text3d.protocol.wire import MAX_SEED
from text3d.reward.defences.fingerprint import cluster_copies
from text3d.validator import step as phases
from text3d.validator.gateway_link import GatewayLink, GatewayUnreachable
from text3d.validator.outcomes import MinerOutcome
from text3d.validator.prompts import Task

__all__ = ["OrganicConfig", "OrganicWorker", "select_organic_miners", "organic_seeds",
           "collapse_copies", "pick_winner", "evidence_of", "result_body"]

log = logging.getLogger("text3d.validator.organic")

_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # waits after a failed claim or upload, then the last one again


@dataclass(frozen=True)
class OrganicConfig:
    url: str
    miners: int = 4
    top_miners: int = 10
    wait_s: float = 30.0
    jobs: int = 2
    poll_s: float = 5.0
    count_toward_weights: bool = False

    @classmethod
    def from_settings(cls, section: Any) -> "OrganicConfig | None":
        """The validator's ``--gateway.*`` fields, or None without ``--gateway.url``."""
        if not section.gateway_url:
            return None
        return cls(url=section.gateway_url, miners=section.gateway_miners, top_miners=section.gateway_top_miners,
                   wait_s=section.gateway_wait_s, jobs=section.gateway_jobs, poll_s=section.gateway_poll_s,
                   count_toward_weights=section.gateway_count_toward_weights)


# -- the rules (pure) ------------------------------------------------------------------------


def select_organic_miners(metagraph: Any, own_hotkey: str, averages: dict[int, float], k: int, top_n: int,
                          rng: random.Random) -> list[int]:
    """k serving uids, the first drawn from the top ``top_n`` by average, the rest uniformly from the others.

    Candidates are the synthetic step's (``step.serving_uids``: serving, never ourselves). The top
    are the candidates with a positive average, best first (ties: lower uid); while none has
    scored, every candidate is "top". Fewer than k candidates: all of them.
    """
    candidates = phases.serving_uids(metagraph, own_hotkey)
    if not candidates:
        return []
    scored = sorted((uid for uid in candidates if averages.get(uid, 0.0) > 0.0),
                    key=lambda uid: (-averages[uid], uid))
    top = scored[:top_n] or candidates
    first = rng.choice(top)
    rest = [uid for uid in candidates if uid != first]
    return [first, *rng.sample(rest, min(k - 1, len(rest)))]


def organic_seeds(job_seed: int | None, hotkeys: Sequence[str], rng: random.Random) -> list[int]:
    """One seed per miner: ``sha256("<job seed>:<hotkey>")`` mod 2^32 with a caller's seed, else fresh draws."""
    if job_seed is None:
        return [rng.randint(0, MAX_SEED) for _ in hotkeys]
    return [int.from_bytes(hashlib.sha256(f"{job_seed}:{hotkey}".encode()).digest()[:8], "big") % (MAX_SEED + 1)
            for hotkey in hotkeys]


def collapse_copies(outcomes: Sequence[MinerOutcome], prompt: str, recent: Any = None) -> None:
    """Copies earn nothing: in each group of answers that are one object, all but the earliest are ``duplicate``;
    an object a miner sent for another prompt among its remembered answers (``recent``, read only) is a ``repeat``."""
    scored = [o for o in outcomes if o.status == "ok" and o.report is not None and o.report.fingerprint is not None]
    arrival = sorted(scored, key=lambda o: (o.response_s if o.response_s is not None else float("inf"), o.uid))
    for group in cluster_copies([o.report.fingerprint for o in arrival]):
        first = arrival[group[0]]
        for index in group[1:]:
            copy = arrival[index]
            copy.status, copy.score = "duplicate", 0.0
            copy.detail = f"the same object as uid {first.uid}'s answer, which arrived first"
    if recent is not None:
        for outcome in arrival:
            earlier = recent.repeat_of(outcome.hotkey, prompt, outcome.report.fingerprint)
            if earlier is not None and outcome.status == "ok":
                outcome.status, outcome.score = "repeat", 0.0
                outcome.detail = f"the same object this miner sent for another prompt at step {earlier}"


def pick_winner(outcomes: Sequence[MinerOutcome]) -> MinerOutcome | None:
    """The best ``ok`` answer (ties: the earlier, then the lower uid), or None."""
    valid = [o for o in outcomes if o.status == "ok"]
    if not valid:
        return None
    return min(valid, key=lambda o: (-o.score, o.response_s if o.response_s is not None else float("inf"), o.uid))


def evidence_of(winner: MinerOutcome, outcomes: Sequence[MinerOutcome]) -> OrganicEvidence:
    report = winner.report
    views = [ViewEvidence(index=v.index, caption=(v.caption or None) and v.caption[:1600],
                          clip_similarity=v.clip_similarity, clip_score=v.clip_score,
                          caption_similarity=v.caption_similarity, caption_score=v.caption_score,
                          rejected=v.rejected, ocr_rejected=v.ocr_rejected) for v in report.views]
    candidates = [CandidateEvidence(uid=o.uid, hotkey=o.hotkey[:64], status=o.status[:32],
                                    score=min(1.0, max(0.0, o.score)) if o.status == "ok" else 0.0,
                                    response_s=o.response_s, detail=o.detail[:400], winner=o is winner)
                  for o in outcomes]
    return OrganicEvidence(score=winner.score, components=dict(report.components), weights=dict(report.weights),
                           views=views, candidates=candidates, winner_uid=winner.uid, miner_seed=int(winner.seed or 0),
                           captioner=report.captioner, models=dict(report.models),
                           protocol_digest=report.protocol_digest, notes=list(report.notes)[:32])


def result_body(job: OrganicJob, winner: MinerOutcome, mesh: Any, outcomes: Sequence[MinerOutcome]) -> bytes:
    """Executor job: the framed upload -- the mesh as asked, a GLB preview when that is not GLB, the PNG views."""
    parts = {"mesh": encode_mesh(mesh, MeshFormat(job.format))}
    if job.format != "glb":
        parts["preview.glb"] = encode_mesh(mesh, MeshFormat.GLB)
    for index, image in enumerate(winner.report.images):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        parts[f"view_{index}.png"] = buffer.getvalue()
    manifest = build_manifest(job_id=job.id, lease_token=job.lease_token, score=winner.score,
                              evidence=evidence_of(winner, outcomes), parts=parts)
    return frame_result(manifest, parts)


def _summary(outcomes: Sequence[MinerOutcome]) -> str:
    return "; ".join(f"uid {o.uid} {o.status}" + (f" ({o.detail[:80]})" if o.detail else "") for o in outcomes)


# -- the worker ----------------------------------------------------------------------------------


class OrganicWorker:
    """Claims jobs and works on them beside the synthetic steps; ``run(validator, done)`` until ``done``."""

    def __init__(self, config: OrganicConfig, link: GatewayLink, rng: random.Random) -> None:
        self.config = config
        self.link = link
        self.rng = rng
        self.finished = 0
        self.given_up = 0

    async def aclose(self) -> None:
        await self.link.aclose()

    async def run(self, validator: Any, done: asyncio.Event) -> None:
        slots = asyncio.Semaphore(self.config.jobs)
        active: set[asyncio.Task] = set()
        failures = 0
        log.info("organic worker: jobs from %s, %d at once, %d miners each, %g s after the first answer",
                 self.config.url, self.config.jobs, self.config.miners, self.config.wait_s)
        try:
            while not done.is_set():
                going, _ = await _until(slots.acquire(), done)
                if not going:
                    break
                try:
                    going, job = await _until(self.link.claim(self.config.poll_s), done)
                except (GatewayUnreachable, RuntimeError, ValueError) as exc:
                    slots.release()
                    wait_s = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
                    if failures == 0:
                        log.warning("organic worker: the gateway at %s failed (%s); retrying", self.config.url, exc)
                    failures += 1
                    await _until(asyncio.sleep(wait_s), done)
                    continue
                if failures:
                    log.info("organic worker: the gateway answers again")
                    failures = 0
                if job is None:
                    slots.release()
                    if not going:
                        break
                    continue
                task = asyncio.create_task(self._work_then_release(validator, job, slots))
                active.add(task)
                task.add_done_callback(active.discard)
        finally:
            for task in list(active):
                task.cancel()
            await asyncio.gather(*active, return_exceptions=True)

    async def _work_then_release(self, validator: Any, job: OrganicJob, slots: asyncio.Semaphore) -> None:
        try:
            await self.work(validator, job)
        except asyncio.CancelledError:
            await asyncio.shield(self._give_up(job, "the validator is stopping"))
            raise
        except Exception as exc:  # a bug of ours must not end the worker; another worker may do better
            log.error("job %s: the organic worker failed:\n%s", job.id, traceback.format_exc())
            await self._give_up(job, f"the validator failed: {type(exc).__name__}")
        finally:
            slots.release()

    async def _give_up(self, job: OrganicJob, reason: str) -> None:
        self.given_up += 1
        log.info("job %s: given back: %s", job.id, reason)
        try:
            await asyncio.wait_for(self.link.give_up(job, reason), 10.0)
        except asyncio.TimeoutError:
            pass

    async def work(self, validator: Any, job: OrganicJob) -> None:
        """One job, start to upload (see the module's docstring)."""
        claimed = time.monotonic()
        metagraph = validator.metagraph or await asyncio.to_thread(validator.chain.metagraph)
        uids = select_organic_miners(metagraph, validator.hotkey, validator.state.averages, self.config.miners,
                                     self.config.top_miners, self.rng)
        if not uids:
            await self._give_up(job, "no miner is serving on the subnet")
            return
        hotkeys = metagraph.hotkeys
        seeds = organic_seeds(job.seed, [hotkeys[uid] for uid in uids], self.rng)
        task = Task(prompt=job.prompt, seed=seeds[0])
        answers = await phases.query_miners(validator.client, metagraph, uids, task, seeds, validator.config.timeout_s,
                                            first_answer_grace_s=self.config.wait_s)
        outcomes, fault = phases.transport_outcomes(answers, hotkeys, seeds)
        if fault is not None:
            await self._give_up(job, fault)
            return
        judged = await _in(validator, phases.decode_answers, answers, hotkeys, seeds, validator.limits)
        del answers
        outcomes = [outcome for outcome, _ in judged]
        meshes = {outcome.uid: mesh for outcome, mesh in judged if mesh is not None}
        step_seed = draw_step_seed(self.rng)  # contrast prompts: the protocol's pool, drawn by the scorer
        rig = validator.reward_model.rig_for(step_seed)
        fault = await _in(validator, phases.score_answers, validator.reward_model,
                          [(o, meshes[o.uid]) for o in outcomes if o.uid in meshes], job.prompt,
                          rig=rig, step_seed=step_seed)
        if fault is not None:
            await self._give_up(job, f"the validator could not score the answers: {fault}")
            return
        await _in(validator, collapse_copies, outcomes, job.prompt, validator.state.answers)
        if self.config.count_toward_weights:
            phases.update_averages(validator.state, outcomes, validator.config.alpha)
        winner = pick_winner(outcomes)
        if winner is None:
            await self._give_up(job, f"no miner returned a valid mesh: {_summary(outcomes)}")
            return
        body = await _in(validator, result_body, job, winner, meshes[winner.uid], outcomes)
        status = await self._upload(job, body, deadline=claimed + job.lease_s)
        if status == 200:
            self.finished += 1
            log.info("job %s done: %d miners (%s), winner uid %d score %.3f, %.1f s", job.id, len(outcomes),
                     ", ".join(f"{o.uid} {o.status}" for o in outcomes), winner.uid, winner.score,
                     time.monotonic() - claimed)
        elif status == 409:
            log.warning("job %s: finished after its lease was handed on; the result was not needed", job.id)
        elif status:  # 0: the gateway stayed out of reach; it hands the job on when the lease passes
            await self._give_up(job, f"the gateway refused the result (HTTP {status})")

    async def _upload(self, job: OrganicJob, body: bytes, *, deadline: float) -> int:
        """Upload, retrying while the gateway is unreachable or busy (a restart) until the lease ends."""
        attempt = 0
        while True:
            try:
                status = await self.link.submit(job, body)
                if status not in (502, 503, 504, 507):
                    return status
                reason = f"HTTP {status}"
            except GatewayUnreachable as exc:
                reason = str(exc)
            wait_s = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
            if time.monotonic() + wait_s >= deadline:
                log.warning("job %s: could not upload the result before the lease ended (%s)", job.id, reason)
                return 0
            log.info("job %s: upload failed (%s), retrying in %g s", job.id, reason, wait_s)
            attempt += 1
            await asyncio.sleep(wait_s)


async def _in(validator: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` in the validator's one executor (scoring and decoding never run on the event loop)."""
    return await asyncio.get_running_loop().run_in_executor(validator.executor, functools.partial(fn, *args, **kwargs))


async def _until(awaitable: Any, done: asyncio.Event) -> tuple[bool, Any]:
    """``(True, result)`` of ``awaitable``, or ``(False, None)`` when ``done`` is set first (it is cancelled)."""
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(done.wait())
    try:
        finished, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        stopper.cancel()
    if task in finished:
        return True, task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False, None
