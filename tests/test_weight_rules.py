"""conform_weights is the subnet's weight rules as bittensor 11's SetWeights applies them:
max-weight clip with the clipped mass redistributed, max-upscaled u16 quantisation with
zeros dropped, a minimum count, a lone self-weight exempt, and broken input refused.
Pinned to hand-computed vectors, then checked value for value against the SDK itself
(``clip_to_max_weight`` + ``normalize``, and the real ``SetWeights.build``)."""

import asyncio
import math
import random
from types import SimpleNamespace

import pytest
from bittensor.intents.weights import clip_to_max_weight as sdk_clip_to_max_weight
from bittensor.intents.weights import normalize as sdk_normalize

import bittensor
from text3d.chain.weight_rules import U16_MAX, WeightsRefused, clip_to_max_weight, conform_weights


def conform(uids, weights, *, limit=1.0, minimum=1, self_uid=None):
    return conform_weights(uids, weights, max_weight_limit=limit, min_allowed_weights=minimum, self_uid=self_uid)


# -- hand-computed vectors -------------------------------------------------------------


def test_no_clip_max_upscales_to_u16():
    # top 0.9 -> 65535; 0.7/0.9*65535 = 50971.67 -> 50972; 0.5/0.9*65535 = 36408.33 -> 36408
    assert conform([0, 1, 2], [0.9, 0.7, 0.5]) == ([0, 1, 2], [65535, 50972, 36408])


def test_scale_does_not_matter_only_proportions():
    assert conform([4, 7], [3.0, 1.0]) == conform([4, 7], [0.75, 0.25]) == ([4, 7], [65535, 21845])


def test_clip_one_weight_redistributes_its_mass():
    # shares 0.6 0.2 0.1 0.1, limit 0.5: lower the top share to c with c / (c + 0.4) = 0.5,
    # so c = 0.4 (less the 1e-7 margin); the rest keep their proportions:
    # [0.4, 0.2, 0.1, 0.1] -> u16 [65535, 32768, 16384, 16384] (32767.5 and 16383.75, nudged up by the margin)
    uids, values = conform([0, 1, 2, 3], [6.0, 2.0, 1.0, 1.0], limit=0.5)
    assert (uids, values) == ([0, 1, 2, 3], [65535, 32768, 16384, 16384])
    assert max(values) / sum(values) <= 0.5


def test_clip_two_weights_to_one_cutoff():
    # shares 0.5 0.4 0.1, limit 0.4: one clipped would need c = 0.4*0.5/0.6 = 0.333 < 0.4 (the
    # next share), so both top shares go to c = 0.4*0.1/(1 - 2*0.4) = 0.2: [0.2, 0.2, 0.1] = [0.4, 0.4, 0.2]
    uids, values = conform([0, 1, 2], [5.0, 4.0, 1.0], limit=0.4)
    assert values == [65535, 65535, 32768]
    shares = clip_to_max_weight([5.0, 4.0, 1.0], 0.4)
    assert shares == pytest.approx([0.4, 0.4, 0.2], abs=1e-6)
    assert max(shares) < 0.4  # lands just under the limit, by the margin


def test_limit_no_vector_can_meet_gives_every_uid_the_same_weight():
    assert conform([0, 1], [3.0, 1.0], limit=0.5) == ([0, 1], [U16_MAX, U16_MAX])  # 2 uids x 0.5 <= 1
    # five uids could meet 0.3, but one scored uid cannot: the cut-off falls below zero and
    # every uid given (zeros included) ends up equal
    assert conform(range(5), [1.0, 0, 0, 0, 0], limit=0.3) == (list(range(5)), [U16_MAX] * 5)


def test_zeros_and_values_rounding_to_zero_are_dropped():
    # 0.25/0.5*65535 = 32767.5 -> 32768 (Python rounds half to even); 1e-6*65535 = 0.07 -> 0, dropped
    assert conform([0, 1, 2, 3], [0.5, 0.0, 0.25, 5e-7]) == ([0, 2], [65535, 32768])


def test_too_few_nonzero_weights_are_refused():
    with pytest.raises(WeightsRefused, match="at least 3 non-zero weights, only 2"):
        conform([0, 1, 2, 3], [1.0, 0.0, 0.5, 0.0], minimum=3)
    assert conform([0, 1, 2], [1.0, 1.0, 1.0], minimum=3)[0] == [0, 1, 2]


def test_a_lone_self_weight_is_exempt_from_the_minimum():
    assert conform([5], [0.3], minimum=8, self_uid=5) == ([5], [U16_MAX])
    with pytest.raises(WeightsRefused):
        conform([5], [0.3], minimum=8, self_uid=4)  # someone else's uid is no self-weight
    with pytest.raises(WeightsRefused):
        conform([5], [0.3], minimum=8, self_uid=None)


@pytest.mark.parametrize(
    "uids, weights, reason",
    [
        ([0, 1], [1.0, math.nan], "finite and non-negative"),
        ([0, 1], [1.0, math.inf], "finite and non-negative"),
        ([0, 1], [1.0, -0.1], "finite and non-negative"),
        ([0, 1], [1.0], "2 uids but 1 weights"),
        ([1, 1], [1.0, 1.0], "duplicate uids"),
        ([70000], [1.0], "uids must be in 0..65535"),
        ([0, 1], [0.0, 0.0], "all weights are zero"),
        ([], [], "all weights are zero"),
    ],
)
def test_broken_input_is_refused_not_zeroed(uids, weights, reason):
    with pytest.raises(WeightsRefused, match=reason):
        conform(uids, weights)
    with pytest.raises(WeightsRefused, match=reason):
        conform(uids, weights, limit=0.3)


def test_parameters_out_of_range_are_programming_errors():
    for limit in (0.0, -0.5, 1.5, math.nan):
        with pytest.raises(ValueError, match="max_weight_limit") as caught:
            conform([0], [1.0], limit=limit)
        assert not isinstance(caught.value, WeightsRefused)
    with pytest.raises(ValueError, match="min_allowed_weights"):
        conform([0], [1.0], minimum=-1)


def test_refusal_is_a_value_error_with_one_sentence():
    with pytest.raises(ValueError) as caught:
        conform([0], [0.0])
    assert "\n" not in str(caught.value)


# -- the SDK as the reference -----------------------------------------------------------


def random_case(rng: random.Random) -> tuple[list[int], list[float], float]:
    n = rng.randint(1, 80)
    weights = [rng.random() ** rng.choice((1, 3, 10)) for _ in range(n)]
    for i in range(n):
        if rng.random() < 0.25:
            weights[i] = 0.0
    if not any(weights):
        weights[rng.randrange(n)] = 1.0
    limit = rng.choice((1.0, rng.uniform(0.01, 1.0), rng.randint(1, U16_MAX - 1) / U16_MAX))
    uids = rng.sample(range(300), n)
    return uids, weights, limit


def test_equals_the_sdks_clip_and_normalize_on_random_vectors():
    rng = random.Random(20251111)
    for _ in range(3000):
        uids, weights, limit = random_case(rng)
        floats = sdk_clip_to_max_weight(weights, limit) if limit < 1.0 else weights
        assert conform(uids, weights, limit=limit, minimum=0) == sdk_normalize(uids, floats), (uids, weights, limit)


def test_clipped_shares_stay_under_the_limit():
    """The clip leaves every share under the limit; u16 rounding then moves the ratio by
    at most half a unit per uid (the SDK's rule has the same slack)."""
    rng = random.Random(7)
    for _ in range(2000):
        uids, weights, limit = random_case(rng)
        shares = clip_to_max_weight(weights, limit)
        assert sum(shares) == pytest.approx(1.0)
        if len(uids) * limit > 1.0:
            assert max(shares) <= limit
        _, values = conform(uids, weights, limit=limit, minimum=0)
        if values != [U16_MAX] * len(uids):
            assert max(values) / sum(values) <= limit + len(uids) / sum(values)


class SubnetStorage:
    """The storage reads SetWeights' preflight makes, answered from fixed hyperparameters
    (a fake at the chain edge); ``compose`` hands back the call SetWeights would submit."""

    def __init__(self, hotkey_uids: dict[str, int], *, max_weight_limit_u16: int, min_allowed_weights: int):
        self.values = {
            "CommitRevealWeightsEnabled": False,
            "WeightsSetRateLimit": 0,
            "LastUpdate": [],
            "MinAllowedWeights": min_allowed_weights,
            "MaxWeightsLimit": max_weight_limit_u16,
            "SubnetEpochConsensus": "Yuma",
        }
        self.hotkey_uids = hotkey_uids

    async def block_number(self) -> int:
        return 1000

    async def block_hash(self, block: int) -> str:
        return "0x" + "00" * 32

    async def block_time(self) -> float:
        return 12.0

    async def query(self, module, name, params=None, *, block_hash=None):
        if name == "Uids":
            return self.hotkey_uids.get(params[1])
        return self.values[name]

    async def compose(self, call):
        return call


def sdk_set_weights(uids, weights, *, self_uid: int, max_weight_limit_u16: int, min_allowed_weights: int):
    """``(uids, u16 values)`` the real ``bittensor.SetWeights`` would submit, or the SDK's error."""
    storage = SubnetStorage({"me": self_uid}, max_weight_limit_u16=max_weight_limit_u16, min_allowed_weights=min_allowed_weights)
    wallet = SimpleNamespace(hotkey=SimpleNamespace(ss58_address="me"))
    intent = bittensor.SetWeights(1, list(uids), list(weights), version_key=1010)
    call = asyncio.run(intent.build(storage, wallet))
    assert call.params["version_key"] == 1010
    return list(call.params["dests"]), list(call.params["weights"])


def test_equals_the_sdks_set_weights_including_minimum_and_self_weight():
    rng = random.Random(11)
    cases = [([3], [0.2], 3), ([3], [0.2], 4), ([3, 4], [1.0, 0.0], 3)]
    for _ in range(300):
        uids, weights, _ = random_case(rng)
        cases.append((uids, weights, rng.choice(uids)))
    for uids, weights, self_uid in cases:
        limit_u16 = rng.choice((U16_MAX, rng.randint(300, U16_MAX - 1)))
        minimum = rng.choice((0, 1, 2, 8, 30))
        try:
            expected = sdk_set_weights(uids, weights, self_uid=self_uid, max_weight_limit_u16=limit_u16, min_allowed_weights=minimum)
        except bittensor.BittensorError:
            expected = None
        try:
            got = conform(uids, weights, limit=limit_u16 / U16_MAX, minimum=minimum, self_uid=self_uid)
        except WeightsRefused:
            got = None
        assert got == expected, (uids, weights, self_uid, limit_u16, minimum)
