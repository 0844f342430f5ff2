"""Prompt checks, before anything is queued: length, printable text, an optional blocklist.

A prompt from a stranger becomes a request to several miners and text on web pages, so:

- it is normalised first (Unicode NFC; runs of whitespace, newlines and tabs included, become
  one space; ends stripped), and judged as normalised: what is checked is what is sent;
- 1 to ``max_chars`` characters (the wire's limit, ``text3d.protocol.wire.MAX_PROMPT_CHARS``,
  or lower);
- printable only: no control characters (Unicode Cc), no surrogates, private-use or unassigned
  code points, no invisible format characters (Cf: bidi overrides that reorder what a
  reader sees, zero-width spaces that hide words from a blocklist) except the zero-width
  joiner that emoji sequences need;
- no term of the blocklist file (one term a line, ``#`` comments; matched case-insensitively
  as whole words, also across the joiners above).

Markup is text like any other: ``<b>chair</b>`` is a valid prompt, and every page that
shows it escapes it. Refusals are ``PromptRejected`` (HTTP 422) with one sentence that
never echoes the prompt or the blocked term.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Iterable

from text3d.protocol.wire import MAX_PROMPT_CHARS

__all__ = ["PromptRejected", "PromptPolicy", "load_blocklist"]

_WHITESPACE = re.compile(r"\s+")
_ZWJ = "\u200d"
_REFUSED_CATEGORIES = {"Cc": "a control character", "Cs": "a surrogate", "Co": "a private-use character",
                       "Cn": "an unassigned character", "Cf": "an invisible formatting character"}


class PromptRejected(ValueError):
    """The prompt breaks a rule; ``str(error)`` is the sentence sent back (HTTP 422)."""

    status = 422


def load_blocklist(path: str | Path) -> tuple[str, ...]:
    """The terms of a blocklist file (UTF-8, one a line, ``#`` comments, blanks skipped), case-folded."""
    terms: dict[str, None] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        text = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", line)).strip()
        if text and not text.startswith("#"):
            terms.setdefault(text.casefold(), None)
    return tuple(terms)


class PromptPolicy:
    """``check(raw) -> prompt``: the normalised prompt, or ``PromptRejected``."""

    def __init__(self, max_chars: int = MAX_PROMPT_CHARS, blocklist: Iterable[str] = ()) -> None:
        if not 1 <= max_chars <= MAX_PROMPT_CHARS:
            raise ValueError(f"max_chars must be in 1..{MAX_PROMPT_CHARS}")
        self.max_chars = max_chars
        terms = sorted({t.casefold() for t in blocklist if t.strip()}, key=len, reverse=True)
        self._blocked = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)") if terms else None

    @classmethod
    def from_file(cls, max_chars: int, blocklist_path: str | Path | None) -> "PromptPolicy":
        return cls(max_chars, load_blocklist(blocklist_path) if blocklist_path else ())

    def check(self, raw: object) -> str:
        if not isinstance(raw, str):
            raise PromptRejected("the prompt must be a string")
        if len(raw) > 8 * self.max_chars:  # do not normalise megabytes to find out
            raise PromptRejected(f"the prompt is longer than {self.max_chars} characters")
        prompt = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", raw)).strip()
        if not prompt:
            raise PromptRejected("the prompt is empty")
        if len(prompt) > self.max_chars:
            raise PromptRejected(f"the prompt is {len(prompt)} characters, the limit is {self.max_chars}")
        for position, char in enumerate(prompt):
            category = unicodedata.category(char)
            if category in _REFUSED_CATEGORIES and char != _ZWJ:
                raise PromptRejected(f"the prompt contains {_REFUSED_CATEGORIES[category]} "
                                     f"(U+{ord(char):04X} at position {position}): send printable text")
        if self._blocked is not None and self._blocked.search(prompt.replace(_ZWJ, "").casefold()):
            raise PromptRejected("the prompt contains a term this gateway does not accept")
        return prompt
