"""Prompt checks and the quota decision: pure functions, every rule pinned.

Prompts: normalised (NFC, whitespace runs to one space) and judged as normalised; 1 to
``max_chars`` characters; printable only (no control, surrogate, private-use, unassigned or
invisible formatting characters, except the zero-width joiner of emoji sequences); no
blocklisted term as a whole word, case-insensitively, even split by invisible characters;
markup is text. Refusals never echo the prompt or the term.

Quotas: concurrency, then per minute, then per day, then the gateway's queue; Retry-After is
when the oldest counted job leaves its window.
"""

import pytest

from text3d.gateway.prompts import PromptPolicy, PromptRejected, load_blocklist
from text3d.gateway.quotas import Limits, Usage, decide


@pytest.fixture
def policy(tmp_path):
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("# terms we refuse\n\nForbidden Thing\ngore\n", encoding="utf-8")
    return PromptPolicy.from_file(64, blocklist)


@pytest.mark.parametrize("raw, expected", [
    ("a red chair", "a red chair"),
    ("  a\tred\n\n chair  ", "a red chair"),
    ("cafe\u0301 table", "caf\u00e9 table"),  # NFC
    ("<b>a chair</b> & \"quotes\"", "<b>a chair</b> & \"quotes\""),
    ("a family \U0001F468\u200d\U0001F469\u200d\U0001F467 figurine", "a family \U0001F468\u200d\U0001F469\u200d\U0001F467 figurine"),
    ("ein roter Stuhl, 椅子", "ein roter Stuhl, 椅子"),
    ("goreflex shoes", "goreflex shoes"),  # a blocked term inside another word is not that term
    ("a\x85chair", "a chair"),  # NEL is a line break: whitespace
])
def test_accepted_prompts_come_back_normalised(policy, raw, expected):
    assert policy.check(raw) == expected


@pytest.mark.parametrize("raw, reason", [
    ("", "empty"), (" \n ", "empty"), ("x" * 65, "65 characters"), ("x" * 10_000, "longer than 64"),
    ("a\x00chair", "control character"), ("a\x7fchair", "control character"), ("a\x9bchair", "control character"),
    ("a \u202echair", "invisible formatting"), ("a\u200bchair", "invisible formatting"),
    ("a \ue000 chair", "private-use"), ("a \U000e0001 tag", "invisible formatting"), ("a \u0378 chair", "unassigned"),
    ("some GORE here", "does not accept"), ("a forbidden   thing", "does not accept"),
    ("go\u200dre", "does not accept"), (None, "string"), (["a"], "string"),
])
def test_refused_prompts_say_why_without_echoing(policy, raw, reason):
    with pytest.raises(PromptRejected, match=reason) as refused:
        policy.check(raw)
    assert refused.value.status == 422
    if isinstance(raw, str) and len(raw) > 3:
        assert raw not in str(refused.value) and "gore" not in str(refused.value).lower()


def test_the_blocklist_file_skips_comments_and_blanks(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("# c\n\n  Two  Words \nx\n", encoding="utf-8")
    assert load_blocklist(path) == ("two words", "x")
    with pytest.raises(ValueError):
        PromptPolicy(max_chars=513)


LIMITS = Limits(per_minute=5, per_day=20, concurrency=2)


@pytest.mark.parametrize("usage, queued, expected", [
    (Usage(), 0, (True, 202, None, None)),
    (Usage(in_flight=2, last_minute=5, last_day=20), 0, (False, 429, "concurrency", 5.0)),
    (Usage(last_minute=5, oldest_in_minute=970.0, last_day=5), 0, (False, 429, "per_minute", 30.0)),
    (Usage(last_minute=1, last_day=20, oldest_in_day=1000.0 - 86000), 0, (False, 429, "per_day", 400.0)),
    (Usage(last_minute=5, oldest_in_minute=900.0, last_day=5), 0, (False, 429, "per_minute", 1.0)),  # at least 1 s
    (Usage(last_minute=4, last_day=19, in_flight=1), 100, (False, 503, "queue", 10.0)),
])
def test_quota_decisions_golden(usage, queued, expected):
    admission = decide(LIMITS, usage, now=1000.0, queued_total=queued, max_queued=100)
    assert (admission.allowed, admission.status, admission.limit, admission.retry_after_s) == expected


def test_limits_must_allow_something():
    with pytest.raises(ValueError):
        Limits(per_minute=0, per_day=1, concurrency=1)
