"""The validator's tasks: prompts a lookup table cannot serve, with fresh seeds.

Three sources, one interface (``PromptSource.draw(rng) -> str``):

* ``ShippedPrompts`` -- ``text3d/validator/data/prompts.txt``, one description per line (1,260).
* ``ComposedPrompts`` -- composed from shipped word lists (``text3d/validator/data/{styles,colours,
  materials,objects,attributes}.txt``) as ``a/an [style] [colour] [material] object
  [attribute]``: 322 objects x (16 + 1) styles x (30 + 1) colours x (30 + 1) materials x
  (36 + 1) attributes = **194,639,018** distinct prompts (``size``; exact: the lists share no
  word, so every prompt parses back to one combination -- ``parse``). Each optional slot is
  filled with its own probability, so most prompts are short.
* ``MixedPrompts`` -- the shipped list with probability ``shipped_share``, else composed.
* ``LLMPrompts`` -- one prompt per draw from any OpenAI-compatible chat server (vLLM,
  llama-server, Ollama) through httpx with a short timeout; whatever fails (down, slow,
  not one short line of plain words) falls back to another source (composed by default).

Randomness is passed in (``random.Random``), so a task stream is reproducible in tests
and unpredictable in production (seeded from the OS); ``prompt_for_seed(source, seed)``
is the draw of one seed. A source chooses the prompt and nothing else: what a score is
measured against (contrast prompts, junk texts, the rig, thresholds) comes from the prompt,
the step seed and the pinned scoring protocol only (``text3d.reward.clip.draw_distractors``
from the protocol's distractor pool), so two validators with different prompt settings --
or an LLM source whose answers cannot be reproduced -- give the same score.
"""

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from text3d.protocol.wire import MAX_SEED

__all__ = [
    "DATA_DIR",
    "DEFAULT_PROMPTS_PATH",
    "Task",
    "load_prompts",
    "load_words",
    "PromptSource",
    "ShippedPrompts",
    "ComposedPrompts",
    "MixedPrompts",
    "LLMPrompts",
    "PromptSampler",
    "prompt_for_seed",
    "default_prompt_source",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_PROMPTS_PATH = DATA_DIR / "prompts.txt"
SLOTS = ("styles", "colours", "materials", "objects", "attributes")


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


def load_words(name: str, data_dir: Path = DATA_DIR) -> list[str]:
    """One of the shipped word lists (``objects``, ``colours``, ...), like ``load_prompts``."""
    return load_prompts(data_dir / f"{name}.txt")


class PromptSource(Protocol):
    def draw(self, rng: random.Random) -> str:
        """One prompt; all randomness from ``rng``."""


class ShippedPrompts:
    """A fixed list of prompts (default: the shipped 1,260)."""

    def __init__(self, prompts: Sequence[str] | None = None) -> None:
        self.prompts = list(prompts) if prompts is not None else load_prompts()
        if not self.prompts:
            raise ValueError("ShippedPrompts needs at least one prompt")

    def draw(self, rng: random.Random) -> str:
        return rng.choice(self.prompts)


def _article(first_word: str) -> str:
    w = first_word.lower()
    if w.startswith(("uni", "use", "euro", "one")):  # a unicorn, a one-eyed ...: a consonant sound
        return "a"
    return "an" if w[:1] in "aeiou" or w.startswith(("hour", "honest")) else "a"


class ComposedPrompts:
    """``a/an [style] [colour] [material] object [attribute]`` from the shipped word lists.

    ``fill`` is each optional slot's probability of being filled in a draw (the object is
    always there). ``size`` counts every distinct prompt the source can produce;
    ``prompt_at(i)`` for ``0 <= i < size`` enumerates them and ``parse`` inverts it.
    """

    def __init__(
        self,
        words: dict[str, Sequence[str]] | None = None,
        *,
        fill: dict[str, float] | None = None,
    ) -> None:
        words = words or {name: load_words(name) for name in SLOTS}
        self.words = {name: list(words[name]) for name in SLOTS}
        if not self.words["objects"]:
            raise ValueError("ComposedPrompts needs at least one object")
        self.fill = {"styles": 0.25, "colours": 0.6, "materials": 0.45, "attributes": 0.35, **(fill or {})}
        owner: dict[str, str] = {}
        for name in SLOTS:
            for phrase in self.words[name]:
                for token in phrase.split():
                    if owner.setdefault(token, name) != name:
                        raise ValueError(f"the word {token!r} is in both {owner[token]} and {name}: prompts would be "
                                         "ambiguous and the count wrong")
        self._owner = owner

    @property
    def size(self) -> int:
        """The number of distinct prompts: objects x prod(len(optional slot) + 1)."""
        total = len(self.words["objects"])
        for name in ("styles", "colours", "materials", "attributes"):
            total *= len(self.words[name]) + 1
        return total

    def compose(self, parts: dict[str, str | None]) -> str:
        """The prompt for a choice per slot (None = slot empty; ``objects`` required)."""
        words = [parts.get(n) for n in SLOTS]
        body = " ".join(w for w in words if w)
        return f"{_article(body.split()[0])} {body}"

    def draw(self, rng: random.Random) -> str:
        parts: dict[str, str | None] = {}
        for name in SLOTS:
            if name == "objects":
                parts[name] = rng.choice(self.words[name])
            else:
                parts[name] = rng.choice(self.words[name]) if rng.random() < self.fill[name] else None
        return self.compose(parts)

    def prompt_at(self, index: int) -> str:
        """The ``index``-th prompt (mixed radix over the slots, 0 = empty optional slot)."""
        if not 0 <= index < self.size:
            raise IndexError(f"index must be in 0..{self.size - 1}")
        parts: dict[str, str | None] = {}
        for name in reversed(SLOTS):
            options = self.words[name]
            if name == "objects":
                index, i = divmod(index, len(options))
                parts[name] = options[i]
            else:
                index, i = divmod(index, len(options) + 1)
                parts[name] = options[i - 1] if i else None
        return self.compose(parts)

    def parse(self, prompt: str) -> dict[str, str | None]:
        """The slot choices of a composed prompt; ``ValueError`` if it is not one.

        Each word belongs to exactly one slot (checked in the constructor), so the words
        after the article split into slots in one way only: ``prompt_at`` is injective.
        """
        tokens = prompt.split()
        if len(tokens) < 2 or tokens[0] not in ("a", "an"):
            raise ValueError(f"not a composed prompt: {prompt!r}")
        groups: list[tuple[str, list[str]]] = []
        for token in tokens[1:]:
            name = self._owner.get(token)
            if name is None:
                raise ValueError(f"{token!r} is in no word list")
            if groups and groups[-1][0] == name:
                groups[-1][1].append(token)
            else:
                groups.append((name, [token]))
        order = [g[0] for g in groups]
        if len(set(order)) != len(order) or order != sorted(order, key=SLOTS.index):
            raise ValueError(f"slots out of order in {prompt!r}")
        parts: dict[str, str | None] = {name: None for name in SLOTS}
        for name, words in groups:
            phrase = " ".join(words)
            if phrase not in self.words[name]:
                raise ValueError(f"{phrase!r} is not one of the {name}")
            parts[name] = phrase
        if parts["objects"] is None or self.compose(parts) != prompt:
            raise ValueError(f"not a composed prompt: {prompt!r}")
        return parts


class MixedPrompts:
    """``shipped`` with probability ``shipped_share``, else ``composed``."""

    def __init__(self, shipped: PromptSource | None = None, composed: PromptSource | None = None,
                 *, shipped_share: float = 0.2) -> None:
        if not 0.0 <= shipped_share <= 1.0:
            raise ValueError("shipped_share must be in [0, 1]")
        self.shipped = shipped or ShippedPrompts()
        self.composed = composed or ComposedPrompts()
        self.shipped_share = shipped_share

    def draw(self, rng: random.Random) -> str:
        source = self.shipped if rng.random() < self.shipped_share else self.composed
        return source.draw(rng)


_PLAIN = re.compile(r"^[A-Za-z][A-Za-z ,'\-]{2,118}[A-Za-z]$")


class LLMPrompts:
    """Prompts written by a language model behind an OpenAI-compatible chat endpoint.

    Each draw sends ``instruction`` (with a theme drawn from ``fallback`` so answers vary)
    and a seed from ``rng`` to ``POST {base_url}/v1/chat/completions``; an answer is used
    only when it is one line of plain words (4-120 characters, letters, spaces, commas,
    hyphens, apostrophes). Any failure -- connection refused, HTTP error, a timeout past
    ``timeout_s``, junk -- returns ``fallback.draw(rng)`` and counts in ``failures``.
    Distractors come from ``fallback`` (deterministic without the server).
    """

    INSTRUCTION = (
        "Write one short description (at most 12 words) of a single physical object to model in 3D, "
        "inspired by: {theme}. Answer with the description only, lower case, no punctuation at the end."
    )

    def __init__(self, base_url: str, *, model: str = "default", timeout_s: float = 2.0,
                 fallback: PromptSource | None = None, max_tokens: int = 32, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.model = model
        self.timeout_s = timeout_s
        self.fallback = fallback or ComposedPrompts()
        self.max_tokens = max_tokens
        self.api_key = api_key
        self.failures = 0
        self.answers = 0

    def draw(self, rng: random.Random) -> str:
        import httpx

        theme = self.fallback.draw(rng)
        seed = rng.randint(0, MAX_SEED)
        body = {
            "model": self.model, "max_tokens": self.max_tokens, "temperature": 1.0, "seed": seed,
            "messages": [{"role": "user", "content": self.INSTRUCTION.format(theme=theme)}],
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            with httpx.Client(timeout=httpx.Timeout(self.timeout_s)) as client:
                response = client.post(f"{self.base_url}/v1/chat/completions", json=body, headers=headers)
            response.raise_for_status()
            text = response.json()["choices"][0]["message"]["content"]
            text = " ".join(str(text).strip().strip('"').split()).rstrip(".")
            if not _PLAIN.match(text):
                raise ValueError("not one short line of plain words")
        except Exception:  # any failure of an optional service: the composed source answers
            self.failures += 1
            return theme
        self.answers += 1
        return text.lower()


def default_prompt_source() -> MixedPrompts:
    """The validator's default: the shipped list (20 %) mixed with composed prompts (80 %)."""
    return MixedPrompts()


def prompt_for_seed(source: PromptSource, seed: int) -> str:
    """The prompt ``source`` draws for ``seed``: reproducible anywhere."""
    return source.draw(random.Random(seed))


class PromptSampler:
    """Draws tasks: a prompt from a source (or a plain list) and a fresh random seed."""

    def __init__(self, prompts: "Sequence[str] | PromptSource", rng: random.Random) -> None:
        if isinstance(prompts, (list, tuple)):
            if not prompts:
                raise ValueError("PromptSampler needs at least one prompt")
            self.source: PromptSource = ShippedPrompts(prompts)
        else:
            self.source = prompts  # type: ignore[assignment]
        self._rng = rng

    @property
    def prompts(self) -> list[str]:
        """The fixed list behind a list-backed sampler (empty for composed sources)."""
        return list(getattr(self.source, "prompts", []))

    def draw(self) -> Task:
        return Task(prompt=self.source.draw(self._rng), seed=self._rng.randint(0, MAX_SEED))
