"""The repeat memory: per miner, the fingerprints of its last answers, saved with the state.

A miner that sends the same object for a different prompt scores 0 for the ``repeat``
(``text3d.validator.copycats``). The memory counts a miner's own answers, not the
validator's steps: a miner asked once in 40 steps is remembered as long as one asked every
step. Bounds: ``answers_per_miner`` entries per hotkey (oldest dropped first) and
``max_miners`` hotkeys (the least recently heard dropped first). Each entry keeps the whole
fingerprint without views (a coarser cloud missed half the deformations the full one catches):
about 50 KB in memory and 25 KB saved for one object (a 20k-face blob, measured), about three
times that for a scene with two parts (a box chair with a ball: 155 KB, 79 KB saved), and at most
``shape_cloud.MAX_PARTS`` = 5 parts, about 310 KB (six clouds at about 52 KB each, from the
four-part scene's 260 KB). So the memory holds at most ``answers_per_miner * max_miners`` of
them: 8 x 256 = 2,048 entries, about 110 MB when a full 256-uid subnet has each been asked 8
times, about 640 MB at the very worst (every one of those answers a scene with five parts), a
few MB for a validator's first hours.

Saved with the validator state as a binary sidecar (``to_bytes`` / ``from_bytes``: one npz
of the fingerprints' own bytes, no pickles), so a restart forgets nothing.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

from text3d.reward.defences.fingerprint import DEFAULT_RULE, CopyRule, Fingerprint, same_object

__all__ = ["RecentAnswers", "Remembered"]


def prompt_key(prompt: str) -> str:
    return " ".join(prompt.strip().lower().split())


@dataclass(frozen=True)
class Remembered:
    """One remembered answer: the step it came in, its prompt (normalised) and fingerprint."""

    step: int
    prompt: str
    fingerprint: Fingerprint


class RecentAnswers:
    """Per hotkey, its last ``answers_per_miner`` answers (see the module docstring)."""

    def __init__(self, answers_per_miner: int = 8, max_miners: int = 256, rule: CopyRule = DEFAULT_RULE) -> None:
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
        """Remember one answer of ``hotkey`` (its fingerprint without views)."""
        entries = self._by_hotkey.pop(hotkey, None)
        if entries is None:
            entries = deque(maxlen=self.answers_per_miner)
        self._by_hotkey[hotkey] = entries  # most recently heard last
        entries.append(Remembered(int(step), prompt_key(prompt), Fingerprint(fp.cloud, parts=fp.parts)))
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
        """Equal when they remember the same answers (same hotkeys, steps, prompts and fingerprint bytes)."""
        return isinstance(other, RecentAnswers) and self._rows() == other._rows()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _rows(self) -> list[tuple[str, int, str, bytes]]:
        return [(hotkey, e.step, e.prompt, e.fingerprint.to_bytes())
                for hotkey, entries in self._by_hotkey.items() for e in entries]

    # -- persistence ----------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """An npz: ``index`` (JSON rows of hotkey, step, prompt) and ``fp<k>``, each fingerprint's bytes."""
        rows = self._rows()
        arrays = {f"fp{k}": np.frombuffer(blob, np.uint8) for k, (_, _, _, blob) in enumerate(rows)}
        index = json.dumps([[hotkey, step, prompt] for hotkey, step, prompt, _ in rows])
        buffer = io.BytesIO()
        np.savez(buffer, index=np.str_(index), **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, answers_per_miner: int = 8, max_miners: int = 256,
                   rule: CopyRule = DEFAULT_RULE) -> "RecentAnswers":
        """The memory saved by ``to_bytes``, cut to the given bounds. ``ValueError`` for a damaged one."""
        memory = cls(answers_per_miner, max_miners, rule)
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                rows = json.loads(str(npz["index"]))
                for k, (hotkey, step, prompt) in enumerate(rows):
                    fp = Fingerprint.from_bytes(npz[f"fp{k}"].tobytes())
                    memory.add(str(hotkey), int(step), str(prompt), fp)
        except (OSError, KeyError, EOFError, TypeError, ValueError, AttributeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"the repeat memory is damaged: {exc}") from exc
        return memory
