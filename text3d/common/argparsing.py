"""Command-line errors a person can act on: the command's own short usage and a "did you mean".

argparse on its own answers a misspelt flag with the whole usage of the command (37 lines for
the validator) or, for a flag after a subcommand, with the top-level usage, and never says
which flag was meant. ``CommandParser`` (a drop-in ``argparse.ArgumentParser``) answers::

    usage: text3d miner [options]
    text3d miner: error: unrecognized argument --network (did you mean --subtensor.network?)
    `text3d miner --help` lists every option.

with exit status 2, argparse's own for a malformed command line. Its subcommands (from
``add_subparsers``) refuse unknown arguments themselves, so the usage shown is always the
subcommand's. Suggestions (``suggest``) compare the whole flag and its last dotted part, so a
bittensor-style ``--network`` finds ``--subtensor.network``.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from typing import Any, NoReturn, Sequence

__all__ = ["CommandParser", "suggest", "short_usage", "plain"]

MAX_SUGGESTIONS = 3


def plain(docstring: str) -> str:
    """A command module's docstring as help text: reStructuredText's ````literal```` marks and
    ``::`` block openers dropped, so ``--help`` reads as plain text (the layout is kept)."""
    text = re.sub(r"``(.+?)``", r"\1", docstring.strip())
    return re.sub(r"::$", ":", text, flags=re.MULTILINE)


def _leaf(flag: str) -> str:
    """``--subtensor.network`` -> ``network``; ``--no-logging.debug`` -> ``debug``."""
    return flag.lstrip("-").rsplit(".", 1)[-1].replace("-", "_")


def _likeness(typed: str, option: str) -> float:
    """How alike a typed flag and an option are: the better of the whole flags and their last dotted parts."""
    whole = difflib.SequenceMatcher(None, typed, option).ratio()
    leaf = difflib.SequenceMatcher(None, _leaf(typed), _leaf(option)).ratio()
    return max(whole, leaf)


def suggest(flag: str, options: Sequence[str], *, cutoff: float = 0.75) -> list[str]:
    """Up to three of ``options`` that ``flag`` was probably meant to be, best first.

    ``--network`` -> ``--subtensor.network`` (same last part), ``--wallet.nmae`` -> ``--wallet.name``,
    ``--promt`` -> ``--prompt``; only the options about as alike as the best one are kept.
    """
    name = flag.split("=", 1)[0]
    longs = [o for o in options if not o.startswith("--no-")] or list(options)
    scored = sorted(((_likeness(name, option), option) for option in dict.fromkeys(longs)), key=lambda s: -s[0])
    if not scored or scored[0][0] < cutoff:
        return []
    best = scored[0][0]
    return [option for score, option in scored if score >= max(cutoff, best - 0.05)][:MAX_SUGGESTIONS]


def short_usage(parser: argparse.ArgumentParser) -> str:
    """``usage: PROG [options] REQUIRED... POSITIONALS...``: one line, whatever the parser holds."""
    parts = [f"usage: {parser.prog}"]
    if any(action.option_strings and not action.required for action in parser._actions):
        parts.append("[options]")
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings and action.required:
            parts.append(f"{action.option_strings[-1]} {action.metavar or action.dest.upper()}")
        elif not action.option_strings:
            if isinstance(action, argparse._SubParsersAction):
                parts.append(action.metavar or "COMMAND")
            elif action.nargs != argparse.REMAINDER:
                parts.append(str(action.metavar or action.dest))
    return " ".join(parts)


class CommandParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors show a one-line usage and suggest the flag meant.

    Flags are spelt out: no abbreviations (argparse's ``allow_abbrev``), so ``--view`` is not
    silently ``--views`` and adding a flag never makes an old command line ambiguous.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._argv: list[str] = []

    def add_subparsers(self, **kwargs: Any) -> argparse._SubParsersAction:
        kwargs.setdefault("parser_class", _Subcommand)
        return super().add_subparsers(**kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def option_strings(self) -> list[str]:
        return [flag for action in self._actions for flag in action.option_strings]

    def unknown_flags(self, argv: Sequence[str]) -> list[str]:
        """Tokens of ``argv`` that look like flags (``-x``, ``--x``, ``--x=1``) and name none of ours."""
        known = self.option_strings()
        unknown = []
        for token in argv:
            if token == "--":
                break  # what follows is positional
            if not token.startswith("-") or token == "-" or _is_number(token):
                continue
            name = token.split("=", 1)[0]
            prefixed = [flag for flag in known if flag.startswith(name)] if self.allow_abbrev and name.startswith("--") else []
            if name not in known and len(prefixed) != 1:
                unknown.append(name)
        return unknown

    def error(self, message: str) -> NoReturn:
        unknown = self.unknown_flags(self._argv)
        if unknown:  # the misspelt flag explains the rest ("--prompt is required" after a --promt)
            hints = []
            for flag in unknown:
                meant = suggest(flag, [o for o in self.option_strings() if o.startswith("-" * min(2, len(flag) - 1))])
                hints.append(f"{flag} (did you mean {' or '.join(meant)}?)" if meant else flag)
            message = f"unrecognized argument{'s' if len(hints) > 1 else ''} {', '.join(hints)}"
        else:
            chosen = re.search(r"invalid choice: '([^']*)'", message)
            choices = [str(c) for a in self._actions if a.choices for c in a.choices]
            meant = difflib.get_close_matches(chosen.group(1), choices, n=1, cutoff=0.6) if chosen else []
            if meant:  # a misspelt subcommand or value: ``text3d minr``
                message += f"; did you mean {meant[0]!r}?"
        self.exit(2, f"{short_usage(self)}\n{self.prog}: error: {message}\n`{self.prog} --help` lists every option.\n")


class _Subcommand(CommandParser):
    """A subcommand's parser: it refuses what it does not know itself, so the usage shown is its own."""

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
