"""The validator: asks miners for meshes, scores them with the pinned protocol, sets weights.

    main.py       composition root: settings -> chain, wallet, state, scorer, client; ``main()``
    engine.py     ``Validator``: the step loop, the step's phases in order, weights, saves
    step.py       the step's phases, each a function that can be tested and timed alone
    client.py     the miner client: signed requests, capped answers, timed at the last byte
    outcomes.py   each miner's outcome and how one answer is judged (decode under limits)
    copycats.py   duplicates within a step and repeats across prompts earn nothing
    repeats.py    per miner, its last answers' fingerprints (saved with the state)
    organic.py    jobs from a gateway (--gateway.url), beside the steps, through the same phases
    gateway_link.py  the signed HTTP calls to that gateway: claim, upload, give back
    weights.py    averages -> weights: the incentive curve, every uid for the chain
    prompts.py    prompt sources (composed, shipped, mixed, an LLM's): they choose the prompt only
    state.py      moving averages, their hotkeys, the repeat memory, progress; saved atomically
    reports.py    one evidence folder per step, the history of every step, capped by size
    report_pages.py  the reports' index, one page per miner (history chart), the step page's answers
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "Validator": "text3d.validator.engine",
    "StepResult": "text3d.validator.outcomes",
    "MinerOutcome": "text3d.validator.outcomes",
    "MinerClient": "text3d.validator.client",
    "ValidatorState": "text3d.validator.state",
    "IncentiveCurve": "text3d.validator.weights",
    "weights_for_chain": "text3d.validator.weights",
    "PromptSampler": "text3d.validator.prompts",
    "StepReports": "text3d.validator.reports",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
