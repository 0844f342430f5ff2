"""Caption guard: a caption that reads text off the views earns no caption score.

A typographic attack writes the prompt on the asset (a sign, a label, letters on a box);
the captioner then reads it back ("the words 'a red wooden chair' written on a sign")
and the caption matches the prompt better than an honest description would (genuine
mpnet: 0.90 against 0.80). So, per view, the caption component of a flagged caption is 0:

* it mentions text: one of the words in ``TEXT_WORDS`` (text, letters, words, writing,
  written, sign, label, logo, caption, inscription, font, typography, ...), as a whole
  word, case-insensitive ("design" or "signal" are not "sign");
* it quotes the prompt: a quoted span ('...', "...", curly quotes, backticks) at least
  half of whose words are words of the prompt.

An honest caption that simply repeats the prompt's words unquoted ("a red wooden chair
with four legs") is not flagged: that is what a good description looks like.

``caption_flag(caption, prompt) -> str | None`` returns the reason, or None.
"""

import re

__all__ = ["TEXT_WORDS", "caption_flag", "caption_flags"]

TEXT_WORDS = (
    "text", "texts", "textual", "letter", "letters", "lettering", "lettered", "word", "words", "wording",
    "writing", "written", "writes", "inscription", "inscribed", "sign", "signs", "signage", "signboard",
    "label", "labels", "labeled", "labelled", "caption", "captioned", "logo", "logos", "font", "typeface",
    "typography", "typed", "handwriting", "handwritten", "alphabet", "spelled", "spelling", "spells",
    "reads", "placard", "slogan",
)
_TEXT_RE = re.compile(r"\b(" + "|".join(sorted(TEXT_WORDS, key=len, reverse=True)) + r")\b", re.IGNORECASE)
# A quote opens where no letter precedes it and closes where none follows: apostrophes in
# "the dog's bowl" or "it's" never open or close a span.
_QUOTED_RE = re.compile(r"(?<![\w])[\"'`\u2018\u201c](.+?)[\"'`\u2019\u201d](?![\w])")
_WORD_RE = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def caption_flag(caption: str, prompt: str) -> str | None:
    """Why ``caption`` earns no caption score for ``prompt``, or None when it may."""
    prompt_words = set(_words(prompt))
    for found in _TEXT_RE.finditer(caption):
        word = found.group(1).lower()
        if word not in prompt_words:
            return f"the caption mentions text ({word!r})"
    for span in _QUOTED_RE.findall(caption):
        words = _words(span)
        if words and sum(w in prompt_words for w in words) * 2 >= len(words):
            return f"the caption quotes the prompt ({span.strip()[:60]!r})"
    return None


def caption_flags(captions: list[str], prompt: str) -> list[str | None]:
    """``caption_flag`` of each caption of one asset."""
    return [caption_flag(c, prompt) for c in captions]
