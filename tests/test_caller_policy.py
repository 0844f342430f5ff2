"""A miner answers only registered validators with enough stake, and refusing never crashes it.

Pinned rules of ``check_caller`` (pure: metagraph, claimed hotkey, policy): a hotkey that
is unknown, empty or absent is refused without raising (a claimed hotkey is untrusted
input, never an index); a registered hotkey without a validator permit is refused unless
the policy waives permits; stake below the minimum is refused; an allowed caller carries
its uid and stake (the queue orders by it); with no metagraph yet, everyone is refused.
The real 401/403 over HTTP is pinned in ``tests/test_miner_auth.py``.
"""

import pytest

from text3d.miner.caller_policy import CallerDecision, CallerPolicy, check_caller
from tests.loopback import hand_metagraph

GRAPH = hand_metagraph([("miner", 0.0, False), ("validator", 100.0, True), ("poor-validator", 2.0, True),
                        ("rich-miner", 50.0, False)])  # fmt: skip
POLICY = CallerPolicy(min_validator_stake=10.0)


@pytest.mark.parametrize("hotkey", ["stranger", "", None, "0", "1", "5" * 48, "validator ", "VALIDATOR"])
def test_unknown_or_empty_hotkey_is_refused_without_raising(hotkey):
    decision = check_caller(GRAPH, hotkey, POLICY)
    assert decision == CallerDecision(False, "hotkey is not registered on this subnet")
    assert decision.stake == 0.0 and decision.uid is None


def test_registered_caller_without_a_permit_is_refused():
    decision = check_caller(GRAPH, "miner", POLICY)
    assert not decision.allowed and decision.reason == "uid 0 has no validator permit"
    rich = check_caller(GRAPH, "rich-miner", POLICY)  # stake does not stand in for a permit
    assert not rich.allowed and "no validator permit" in rich.reason and rich.uid == 3


def test_validator_below_the_minimum_stake_is_refused():
    decision = check_caller(GRAPH, "poor-validator", POLICY)
    assert not decision.allowed
    assert decision.reason == "uid 2 stake 2.000 TAO is below the minimum 10.000 TAO"
    assert (decision.uid, decision.stake) == (2, 2.0)


def test_validator_with_enough_stake_is_allowed_with_its_uid_and_stake():
    assert check_caller(GRAPH, "validator", POLICY) == CallerDecision(True, "uid 1 allowed", 1, 100.0)
    assert check_caller(GRAPH, "poor-validator", CallerPolicy(min_validator_stake=2.0)).allowed  # the bound counts
    assert check_caller(GRAPH, "poor-validator", CallerPolicy(min_validator_stake=1.0)).stake == 2.0


def test_a_policy_without_the_permit_requirement_admits_registered_callers_by_stake():
    open_policy = CallerPolicy(min_validator_stake=10.0, require_validator_permit=False)
    assert check_caller(GRAPH, "rich-miner", open_policy) == CallerDecision(True, "uid 3 allowed", 3, 50.0)
    assert not check_caller(GRAPH, "miner", open_policy).allowed  # stake 0 < 10
    assert not check_caller(GRAPH, "stranger", open_policy).allowed  # registration is never waived
    assert check_caller(GRAPH, "miner", CallerPolicy(require_validator_permit=False)).allowed


def test_the_default_policy_needs_a_permit_and_no_stake():
    assert CallerPolicy() == CallerPolicy(min_validator_stake=0.0, require_validator_permit=True)
    assert check_caller(GRAPH, "poor-validator", CallerPolicy()).allowed
    assert not check_caller(GRAPH, "miner", CallerPolicy()).allowed


def test_no_metagraph_yet_refuses_everyone():
    decision = check_caller(None, "validator", POLICY)
    assert not decision.allowed and "not synced the metagraph" in decision.reason
