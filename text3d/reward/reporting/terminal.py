"""Text from strangers, made safe to print on a terminal.

File names, prompts, captions and reasons reach ``text3d score``'s output from people and
models we do not control. Two separate dangers, two separate cures:

- terminal control: ``\\x1b]0;...\\x07`` retitles a terminal, ``\\x1b[2J`` clears it, a
  bidi override reorders what is shown. ``terminal_safe`` turns every control and format
  character into a visible escape.
- rich markup: ``[/]`` in a string printed as markup raises ``MarkupError`` (it crashed
  the table printer after a whole run). Print such strings as ``rich.text.Text`` (or with
  ``markup=False``), never as markup.
"""

import unicodedata

__all__ = ["terminal_safe"]


def terminal_safe(text: object, max_chars: int | None = None) -> str:
    """``text`` with every control or format character (escape sequences, carriage returns,
    newlines, bidi overrides, zero-width marks) shown as a visible ``\\xNN`` / ``\\uNNNN``
    escape, optionally cut to ``max_chars``. File names, prompts and captions come from
    strangers: printed raw, ``\\x1b]...`` can retitle or rewrite a terminal. Rich markup
    is a separate matter: print these strings as ``rich.text.Text``, never as markup."""
    out = []
    for char in str(text):
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    safe = "".join(out)
    if max_chars is not None and len(safe) > max_chars:
        safe = safe[: max(max_chars - 1, 0)] + "…"
    return safe
