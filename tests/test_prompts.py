"""Prompts a lookup table cannot serve: the shipped list mixed with prompts composed from
shipped word lists (exactly 194,639,018 distinct ones), optional LLM prompts with the
composed source as fallback, distractors from the same source; all deterministic from a seed.

Before this change the 1,260 shipped prompts were the whole task space (answers could be
precomputed and served from a table): ``ComposedPrompts`` did not exist.
"""

import random

import pytest

from tests.loopback import chat_completion, closed_port_url
from text3d.validator.prompts import (
    DEFAULT_PROMPTS_PATH,
    SLOTS,
    ComposedPrompts,
    LLMPrompts,
    MixedPrompts,
    PromptSampler,
    load_prompts,
    load_words,
    prompt_for_seed,
)
from text3d.protocol.wire import MAX_SEED

EXPECTED_SIZE = 322 * 17 * 31 * 31 * 37  # objects x (styles + 1) x (colours + 1) x (materials + 1) x (attributes + 1)


def test_shipped_set_has_at_least_1000_unique_prompts():
    lines = [line for line in DEFAULT_PROMPTS_PATH.read_text().splitlines() if line.strip()]
    assert len(lines) >= 1000
    assert len(set(lines)) == len(lines)
    assert all(line == line.strip() and 3 <= len(line) <= 200 for line in lines)
    assert load_prompts() == lines


def test_load_skips_comments_blanks_and_duplicates(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("# header\n a red cup \n\na red cup\na blue cup\n")
    assert load_prompts(path) == ["a red cup", "a blue cup"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError):
        load_prompts(tmp_path / "empty.txt")


def test_composed_source_counts_exactly_194639018_distinct_prompts():
    composed = ComposedPrompts()
    sizes = {name: len(load_words(name)) for name in SLOTS}
    assert sizes == {"styles": 16, "colours": 30, "materials": 30, "objects": 322, "attributes": 36}
    assert composed.size == EXPECTED_SIZE == 194_639_018
    # Exactly that many distinct strings: no word is in two lists (the constructor refuses
    # such lists), so every prompt parses back to its one combination -- prompt_at is
    # injective. Checked on the corners of the index space and 5,000 random indices.
    rng = random.Random(0)
    indices = [0, 1, composed.size - 1] + [rng.randrange(composed.size) for _ in range(5000)]
    prompts = [composed.prompt_at(i) for i in indices]
    assert len(set(prompts)) == len(set(indices))
    for prompt in prompts:
        assert composed.compose(composed.parse(prompt)) == prompt
    with pytest.raises(IndexError):
        composed.prompt_at(composed.size)


def test_composed_source_enumerates_a_small_product_exhaustively():
    words = {"styles": ["toy"], "colours": ["red", "navy blue"], "materials": ["glass"],
             "objects": ["owl", "teddy bear", "umbrella"], "attributes": ["with a lid"]}
    small = ComposedPrompts(words)
    everything = {small.prompt_at(i) for i in range(small.size)}
    assert small.size == 3 * 2 * 3 * 2 * 2 == len(everything)
    assert "an umbrella" in everything and "a toy navy blue glass teddy bear with a lid" in everything
    assert "an owl" in everything and "a red owl" in everything


def test_ambiguous_word_lists_are_refused():
    words = {"styles": [], "colours": ["orange"], "materials": [], "objects": ["orange", "cup"], "attributes": []}
    with pytest.raises(ValueError, match="'orange' is in both"):
        ComposedPrompts(words)


def test_draws_are_deterministic_from_a_seed_and_varied():
    source = MixedPrompts()
    assert prompt_for_seed(source, 42) == prompt_for_seed(MixedPrompts(), 42)
    draws = [prompt_for_seed(source, s) for s in range(400)]
    assert len(set(draws)) > 380
    shipped = set(load_prompts())
    from_list = sum(d in shipped for d in draws)
    assert 40 < from_list < 130  # about 20 % from the shipped list
    composed = ComposedPrompts()
    for d in draws:
        if d not in shipped:
            composed.parse(d)


def test_sampler_is_reproducible_and_seeds_fit_the_wire():
    prompts = load_prompts()
    a, b = PromptSampler(prompts, random.Random(5)), PromptSampler(prompts, random.Random(5))
    tasks = [a.draw() for _ in range(50)]
    assert tasks == [b.draw() for _ in range(50)]
    assert all(0 <= t.seed <= MAX_SEED for t in tasks) and len({t.prompt for t in tasks}) > 40
    mixed = PromptSampler(MixedPrompts(), random.Random(5))
    again = PromptSampler(MixedPrompts(), random.Random(5))
    assert [mixed.draw() for _ in range(5)] == [again.draw() for _ in range(5)]
    assert mixed.prompts == [] and a.prompts == prompts


def chat_script(answers: list[str]):
    """A prompt-writing LLM: the next of ``answers`` (then a fixed one); "500" fails, "sleep" answers too late."""

    def script(n: int, path: str, body: dict):
        answer = answers.pop(0) if answers else "a small brass owl with green glass eyes"
        if answer == "500":
            return 500, b""
        if answer == "sleep":
            return "sleep", 1.5, chat_completion("too late", seed=body["seed"])
        return chat_completion(answer, seed=body["seed"])

    return script


def test_llm_prompts_with_the_composed_source_as_fallback(scripted_http):
    server = scripted_http(chat_script(["A small brass owl with green glass eyes.", "500", "sleep",
                                        "Sure! Here is a prompt:\n1. a chair\n2. a table", "x" * 300]))
    source = LLMPrompts(f"{server.url}/v1", timeout_s=0.5)
    draws = [source.draw(random.Random(i)) for i in range(5)]
    assert draws[0] == "a small brass owl with green glass eyes"
    composed = ComposedPrompts()
    for d in draws[1:]:  # HTTP 500, a timeout, several lines, junk: the composed prompt of that draw
        composed.parse(d)
    assert source.answers == 1 and source.failures == 4
    assert draws[1] == ComposedPrompts().draw(random.Random(1))  # the fallback is deterministic
    down = LLMPrompts(closed_port_url(), timeout_s=0.2)
    composed.parse(down.draw(random.Random(3)))
