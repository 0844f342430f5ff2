"""The validator's memory: per-uid moving averages, which hotkey earned them, and progress.

Saved as JSON, atomically (write a temporary file in the same folder, fsync, then
``os.replace``), so a crash mid-save leaves the previous state intact and a restart
resumes where the validator stopped. A save killed before its rename leaves its
temporary file behind (``.<name>.XXXX.tmp``); ``load`` removes those. A save that
fails (a full disk) raises ``OSError`` and leaves the previous file as it was; the
validator logs it and saves again at its next step.

Rules the state enforces:

- ``update(uid, score, alpha)``: ``avg = alpha * score + (1 - alpha) * avg``; scores
  are clipped to [0, 1] and a non-finite score counts as 0 (a miner fault).
- ``sync_hotkeys(hotkeys)``: a uid whose hotkey changed (deregistered and taken by a
  new neuron) starts again from 0 -- the newcomer inherits nothing.
- ``answers``: the repeat memory (``text3d.validator.repeats.RecentAnswers``: per miner its
  last answers' fingerprints), saved beside the JSON as ``<state>.answers.npz`` (binary:
  tens of MB at most), atomically too, so a restart does not forget which objects each
  miner already sent. A state saved without one loads with an empty memory.
"""

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from text3d.reward.defences.fingerprint import DEFAULT_RULE, CopyRule
from text3d.validator.repeats import RecentAnswers

__all__ = ["ValidatorState"]

log = logging.getLogger("text3d.validator")

_FORMAT_VERSION = 1


@dataclass
class ValidatorState:
    averages: dict[int, float] = field(default_factory=dict)
    hotkeys: dict[int, str] = field(default_factory=dict)
    step: int = 0
    last_weight_block: int | None = None
    answers: RecentAnswers = field(default_factory=RecentAnswers)

    # -- scores -------------------------------------------------------------------

    def update(self, uid: int, score: float, alpha: float) -> float:
        """Fold one step's score into the uid's moving average; returns the new average."""
        value = float(score)
        value = 0.0 if not math.isfinite(value) else min(1.0, max(0.0, value))
        previous = self.averages.get(uid, 0.0)
        self.averages[uid] = alpha * value + (1.0 - alpha) * previous
        return self.averages[uid]

    def sync_hotkeys(self, hotkeys: Sequence[str]) -> list[int]:
        """Align with the metagraph's ``hotkeys`` (index = uid); returns the uids that were reset.

        A uid whose stored hotkey differs from the metagraph's loses its average; uids
        beyond the metagraph's size are forgotten.
        """
        reset = []
        for uid, hotkey in enumerate(hotkeys):
            known = self.hotkeys.get(uid)
            if known is not None and known != hotkey:
                self.averages.pop(uid, None)
                reset.append(uid)
            self.hotkeys[uid] = hotkey
        for uid in [u for u in self.hotkeys if u >= len(hotkeys)]:
            self.hotkeys.pop(uid)
            self.averages.pop(uid, None)
        for uid in [u for u in self.averages if u >= len(hotkeys)]:
            self.averages.pop(uid)
        return reset

    # -- persistence ----------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "format_version": _FORMAT_VERSION,
            "step": self.step,
            "last_weight_block": self.last_weight_block,
            "averages": {str(uid): value for uid, value in sorted(self.averages.items())},
            "hotkeys": {str(uid): hotkey for uid, hotkey in sorted(self.hotkeys.items())},
        }

    @classmethod
    def from_json(cls, data: dict, answers: RecentAnswers | None = None) -> "ValidatorState":
        if data.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"unsupported validator state format {data.get('format_version')!r}")
        return cls(
            answers=answers if answers is not None else RecentAnswers(),
            averages={int(uid): float(value) for uid, value in data["averages"].items()},
            hotkeys={int(uid): str(hotkey) for uid, hotkey in data["hotkeys"].items()},
            step=int(data["step"]),
            last_weight_block=None if data["last_weight_block"] is None else int(data["last_weight_block"]),
        )

    @staticmethod
    def answers_path(path: str | Path) -> Path:
        """Where the repeat memory of the state at ``path`` lives."""
        path = Path(path)
        return path.with_name(path.name + ".answers.npz")

    def save(self, path: str | Path) -> None:
        """Write atomically: the file at ``path`` is always either the old or the new state (the
        repeat memory beside it likewise, written first)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.answers_path(path), self.answers.to_bytes(), path.name)
        _write_atomically(path, json.dumps(self.to_json(), indent=1).encode(), path.name)

    @staticmethod
    def remove_temp_files(path: str | Path) -> list[Path]:
        """Delete the temporary files of saves that were killed before their rename; returns them."""
        path = Path(path)
        if not path.parent.is_dir():
            return []
        removed = []
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):
            try:
                leftover.unlink()
            except OSError:
                continue
            removed.append(leftover)
        return removed

    @classmethod
    def load(cls, path: str | Path, answers_per_miner: int = 8, rule: CopyRule = DEFAULT_RULE) -> "ValidatorState":
        """The saved state, or a fresh one when ``path`` does not exist.

        ``answers_per_miner`` bounds the repeat memory; ``rule`` is the copycat rule it judges
        repeats by (and the step its duplicates: ``text3d.validator.copycats``), the scoring
        settings' own (``CopyRule.from_defences(settings.reward)``). Removes the temporary files of killed
        saves first. Raises ``ValueError`` for a file
        that exists but is not a validator state (refusing beats silently forgetting every
        miner's history).
        """
        path = Path(path)
        cls.remove_temp_files(path)
        answers = RecentAnswers(answers_per_miner, rule=rule)
        if cls.answers_path(path).exists():
            try:
                answers = RecentAnswers.from_bytes(cls.answers_path(path).read_bytes(), answers_per_miner, rule=rule)
            except (OSError, ValueError) as exc:  # expendable: repeats are caught again from the next answers
                log.warning("the repeat memory %s is unreadable (%s): starting with an empty one",
                            cls.answers_path(path), exc)
        if not path.exists():
            return cls(answers=answers)
        try:
            return cls.from_json(json.loads(path.read_text()), answers)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a readable validator state ({exc}); move it away to start afresh") from exc


def _write_atomically(path: Path, data: bytes, state_name: str) -> None:
    """``data`` to ``path`` through a temporary file in the same folder (named after the state,
    so ``remove_temp_files`` finds it), fsync, then ``os.replace``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{state_name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
