"""Benchmarks: one script per performance claim, each run by ``make bench`` and smoke-tested by the suite.

    _harness.py        the one harness every bench runs under: --smoke, timing, checks, tables, the JSON line
    _suite.py          ``make bench``: discover, run one at a time, keep results.jsonl, render the docs
    _report.py         docs/performance.md and the README's headline block, rendered from results.jsonl
    _copycat_baseline.py  the copycat fingerprint before issue 17, timed beside the new one by copycat.py
    results.jsonl      the last good (or failed) full run of every bench, one JSON line each
    gpu/               the offline GPU bundle's parts (built by gpu_bundle.py, run on a GPU machine)
    caption.py         captions/s through a real llama-server (tiny LLaVA), 1/4/8 slots
    caption_7b.py      caption cost of a LLaVA-1.5-7B-shaped model (heavy: BENCH_HEAVY=1)
    codec.py           wire formats: size, encode/decode time, the image-bomb refusal
    copycat.py         the copycat rule's cost per asset, per pair and per step, against the old fingerprint
    gateway.py         organic jobs through the gateway beside the miners' own answer time
    generate.py        Shap-E prior and decoding: tiny pipeline, or the production size with random weights
    gpu_bundle.py      builds the offline GPU bundle (not run by make bench; its figures: docs/gpu-runs/)
    miner.py           answered requests/s of one miner over 1/2/4 generation workers (servers or Ray)
    render.py          8 views, moderngl vs pyrender
    score.py           the whole RewardModel (single, loop, batch), or the production CLIP's cost
    score_defences.py  each defence's cost per asset at the production protocol
    score_folder.py    ``text3d score`` over 100 and 1,000 assets: throughput and flat memory
    score_spread.py    how a score moves with the step seed
    validator.py       one validator step over 16/64/256 stub miners: network, decode, overhead

How to write one and what the suite checks: ``bench/README.md``.
"""
