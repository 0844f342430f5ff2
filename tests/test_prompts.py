"""The shipped prompt set is large, varied and clean; tasks are reproducible given the rng.

Pinned rules: at least 1,000 unique prompts; no blanks or stray whitespace; varied
(many distinct nouns, not one template); a seeded ``random.Random`` reproduces the task
stream and seeds fit the wire request's uint32 field.
"""

import random

import pytest

from neurons.prompts import DEFAULT_PROMPTS_PATH, PromptSampler, load_prompts
from protocol.wire import MAX_SEED


def test_shipped_set_has_at_least_1000_unique_prompts():
    lines = [line for line in DEFAULT_PROMPTS_PATH.read_text().splitlines() if line.strip()]
    assert len(lines) >= 1000
    assert len(set(lines)) == len(lines)
    assert all(line == line.strip() and 3 <= len(line) <= 200 for line in lines)
    assert load_prompts() == lines


def test_shipped_set_is_varied():
    prompts = load_prompts()
    last_words = {p.split()[-1] for p in prompts}
    assert len(last_words) >= 150
    assert len({p.split()[1] for p in prompts}) >= 50


def test_load_skips_comments_blanks_and_duplicates(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("# header\n a red cup \n\na red cup\na blue cup\n")
    assert load_prompts(path) == ["a red cup", "a blue cup"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError):
        load_prompts(tmp_path / "empty.txt")


def test_seeded_sampler_is_reproducible_and_seeds_fit_the_wire():
    prompts = load_prompts()
    first = [PromptSampler(prompts, random.Random(5)).draw() for _ in range(1)]
    sampler_a, sampler_b = PromptSampler(prompts, random.Random(5)), PromptSampler(prompts, random.Random(5))
    tasks = [sampler_a.draw() for _ in range(50)]
    assert tasks == [sampler_b.draw() for _ in range(50)]
    assert tasks[0] == first[0]
    assert all(0 <= t.seed <= MAX_SEED for t in tasks)
    assert len({t.prompt for t in tasks}) > 40
