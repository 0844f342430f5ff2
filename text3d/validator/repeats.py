"""The repeat memory: per miner, the fingerprints of its last answers, saved with the state.

A miner that sends the same object for a different prompt scores 0 for the ``repeat``
(``text3d.validator.copycats``). The memory counts a miner's own answers, not the
validator's steps: a miner asked once in 40 steps is remembered as long as one asked every
step. Bounds: ``answers_per_miner`` entries per hotkey (oldest dropped first) and
``max_miners`` hotkeys (the least recently heard dropped first); each entry keeps a compact
fingerprint (``Fingerprint.compact``, about 9 KB), so the memory holds at most
``answers_per_miner * max_miners`` of them (16 x 512: about 75 MB at the very worst, 2-3 MB
for 256 miners asked a few times each).

Serialised into the validator state (``to_json`` / ``from_json``: base64 of
``Fingerprint.to_bytes``), so a restart forgets nothing.
"""

from __future__ import annotations

import base64
from collections import OrderedDict, deque
from dataclasses import dataclass

from text3d.reward.defences.fingerprint import DEFAULT_RULE, CopyRule, Fingerprint, same_object

__all__ = ["RecentAnswers", "Remembered"]


def prompt_key(prompt: str) -> str:
    return " ".join(prompt.strip().lower().split())


@dataclass(frozen=True)
class Remembered:
    """One remembered answer: the step it came in, its prompt (normalised) and compact fingerprint."""

    step: int
    prompt: str
    fingerprint: Fingerprint


class RecentAnswers:
    """Per hotkey, its last ``answers_per_miner`` answers (see the module docstring)."""

    def __init__(self, answers_per_miner: int = 16, max_miners: int = 512, rule: CopyRule = DEFAULT_RULE) -> None:
        if answers_per_miner < 1 or max_miners < 1:
            raise ValueError("answers_per_miner and max_miners must be at least 1")
        self.answers_per_miner = answers_per_miner
        self.max_miners = max_miners
        self.rule = rule
        self._by_hotkey: OrderedDict[str, deque[Remembered]] = OrderedDict()

    def repeat_of(self, hotkey: str, prompt: str, fp: Fingerprint) -> int | None:
        """The step of an earlier answer of ``hotkey``, for a DIFFERENT prompt, that is the same
        object as ``fp``; None when there is none (newest first)."""
        key = prompt_key(prompt)
        for entry in reversed(self._by_hotkey.get(hotkey, ())):
            if entry.prompt != key and same_object(entry.fingerprint, fp, self.rule):
                return entry.step
        return None

    def add(self, hotkey: str, step: int, prompt: str, fp: Fingerprint) -> None:
        """Remember one answer of ``hotkey`` (its compact fingerprint)."""
        entries = self._by_hotkey.pop(hotkey, None)
        if entries is None:
            entries = deque(maxlen=self.answers_per_miner)
        self._by_hotkey[hotkey] = entries  # most recently heard last
        entries.append(Remembered(int(step), prompt_key(prompt), fp.compact()))
        while len(self._by_hotkey) > self.max_miners:
            self._by_hotkey.popitem(last=False)

    def forget(self, hotkey: str) -> None:
        """Drop a hotkey's history (deregistered, or its uid was given to someone else)."""
        self._by_hotkey.pop(hotkey, None)

    def answers(self, hotkey: str) -> list[Remembered]:
        return list(self._by_hotkey.get(hotkey, ()))

    def __len__(self) -> int:
        return sum(len(e) for e in self._by_hotkey.values())

    def __eq__(self, other: object) -> bool:
        """Equal when they remember the same answers (same steps, prompts and fingerprint bytes)."""
        return isinstance(other, RecentAnswers) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable

    # -- persistence ----------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "answers_per_miner": self.answers_per_miner,
            "by_hotkey": {
                hotkey: [[e.step, e.prompt, base64.b64encode(e.fingerprint.to_bytes()).decode("ascii")] for e in entries]
                for hotkey, entries in self._by_hotkey.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict, answers_per_miner: int = 16, max_miners: int = 512,
                  rule: CopyRule = DEFAULT_RULE) -> "RecentAnswers":
        """The memory saved by ``to_json``, cut to the given bounds. ``ValueError`` for a damaged one."""
        memory = cls(answers_per_miner, max_miners, rule)
        try:
            for hotkey, entries in data.get("by_hotkey", {}).items():
                for step, prompt, blob in entries:
                    fp = Fingerprint.from_bytes(base64.b64decode(blob, validate=True))
                    memory.add(str(hotkey), int(step), str(prompt), fp)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"the repeat memory is damaged: {exc}") from exc
        return memory
