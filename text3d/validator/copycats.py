"""Copycats earn nothing: duplicates within a step and repeats across prompts.

Every miner gets its own seed, so two honest miners never return the same object. Within a
step, answers that are the same object (``text3d.reward.defences.fingerprint``, which sees
through cheap deformations) are grouped across the whole step (``cluster_copies``: every
pair judged, then each answer joins the earliest answer it copies; the groups do not
depend on the order pairs are compared in); each group earns once, for its earliest
complete answer, the others are ``duplicate``. Across prompts, a miner that sends the same object it sent for another
prompt among its last answers (``text3d.validator.repeats.RecentAnswers``, saved with the
state) scores 0 for the ``repeat``.
"""

from __future__ import annotations

from typing import Sequence

from text3d.reward.defences.fingerprint import cluster_copies, parallel_map, same_object
from text3d.validator.outcomes import MinerOutcome
from text3d.validator.repeats import RecentAnswers

__all__ = ["judge_copies"]


def judge_copies(outcomes: Sequence[MinerOutcome], prompt: str, step_no: int, recent: RecentAnswers) -> None:
    """Mark duplicates and repeats among the ``ok`` outcomes in place, and remember this step's answers.

    Arrival order is the answer's response time (ties by uid): "earliest complete answer".
    """
    scored = [o for o in outcomes if o.status == "ok" and o.report is not None and o.report.fingerprint is not None]
    arrival = sorted(scored, key=lambda o: (o.response_s if o.response_s is not None else float("inf"), o.uid))
    rule = recent.rule
    groups = cluster_copies([o.report.fingerprint for o in arrival], same=lambda a, b: same_object(a, b, rule))
    for group in groups:
        first = arrival[group[0]]
        for index in group[1:]:
            copy = arrival[index]
            copy.status, copy.score = "duplicate", 0.0
            copy.detail = (f"the same object as uid {first.uid}'s answer, which arrived first "
                           f"({first.response_s or 0:.2f}s vs {copy.response_s or 0:.2f}s; {len(group)} copies "
                           "in this step earn once)")
    earlier_steps = parallel_map(lambda o: recent.repeat_of(o.hotkey, prompt, o.report.fingerprint), arrival)
    for outcome, earlier in zip(arrival, earlier_steps):  # judged against what each miner sent BEFORE this step
        recent.add(outcome.hotkey, step_no, prompt, outcome.report.fingerprint)
        if earlier is not None and outcome.status == "ok":
            outcome.status, outcome.score = "repeat", 0.0
            outcome.detail = f"the same object this miner sent for another prompt at step {earlier}"
