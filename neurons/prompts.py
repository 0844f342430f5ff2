"""The validator's tasks: object descriptions from a shipped prompt set, with fresh seeds.

``neurons/data/prompts.txt`` holds one description per line (blank lines and ``#``
comments ignored). Randomness is passed in (``random.Random``), so a validator's task
stream is reproducible in tests and unpredictable in production (seeded from the OS).
"""

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["DEFAULT_PROMPTS_PATH", "Task", "load_prompts", "PromptSampler"]

DEFAULT_PROMPTS_PATH = Path(__file__).resolve().parent / "data" / "prompts.txt"
MAX_SEED = 2**31 - 1  # seeds travel as JSON ints and feed torch.Generator.manual_seed


@dataclass(frozen=True)
class Task:
    prompt: str
    seed: int


def load_prompts(path: str | Path = DEFAULT_PROMPTS_PATH) -> list[str]:
    """Prompts in file order, stripped, without blanks, comments or duplicates.

    Raises ``ValueError`` when the file holds no prompt.
    """
    seen: dict[str, None] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            seen.setdefault(text, None)
    if not seen:
        raise ValueError(f"{path} holds no prompts")
    return list(seen)


class PromptSampler:
    """Draws tasks: a uniformly random prompt and a fresh random seed."""

    def __init__(self, prompts: Sequence[str], rng: random.Random) -> None:
        if not prompts:
            raise ValueError("PromptSampler needs at least one prompt")
        self.prompts = list(prompts)
        self._rng = rng

    def draw(self) -> Task:
        return Task(prompt=self._rng.choice(self.prompts), seed=self._rng.randint(0, MAX_SEED))
