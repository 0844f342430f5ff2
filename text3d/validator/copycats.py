"""Copycats earn nothing: duplicates within a step and repeats across prompts.

Every miner gets its own seed, so two honest miners never return the same object. Within a
step, answers that are the same object (``text3d.reward.defences.fingerprint``) earn once:
for the earliest complete answer; the others are ``duplicate``. Across steps, one miner that
sends the same object for a different prompt scores 0 for the ``repeat``.
"""

from __future__ import annotations

from typing import Sequence

from text3d.reward.defences.fingerprint import RecentAnswers, first_come
from text3d.validator.outcomes import MinerOutcome

__all__ = ["judge_copies"]


def judge_copies(outcomes: Sequence[MinerOutcome], prompt: str, step_no: int, recent: RecentAnswers) -> None:
    """Mark duplicates and repeats among the ``ok`` outcomes in place, and remember this step's answers."""
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
        earlier = recent.repeat_of(outcome.hotkey, prompt, fp)
        recent.add(outcome.hotkey, step_no, prompt, fp)
        if earlier is not None and outcome.status == "ok":
            outcome.status, outcome.score = "repeat", 0.0
            outcome.detail = f"the same object this miner sent for another prompt at step {earlier}"
