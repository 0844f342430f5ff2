"""What operators scrape: the miner's and the validator's Prometheus metrics, read back through the real
text parser (``prometheus_client.parser``) from the real metrics server.

Pinned:
- the real miner app under uvicorn counts every answer by HTTP status and the caller's class, times
  requests and generation, counts refusals by reason, and shows its queue's depth;
- a stranger cannot grow the number of series: 200 requests claiming 200 made-up hotkeys add no
  series (no label ever carries a hotkey, a prompt or anything else a caller sends);
- the validator's metrics follow its steps: phase durations, answers by status, each miner's score
  and moving average (a uid that left the state loses its series), the canary, weights, and a
  void step that moves no score; a status string it does not know is counted as ``other``;
- the captioner wrapper times every call and counts failures without changing what the captioner
  returns or raises, and keeps its name and config (the scoring protocol's digest reads them);
- ``--metrics.port`` is off by default, on loopback when set, and a port that is taken is one
  sentence naming the flag (``ConfigError``), not a traceback;
- every query of the sample Grafana dashboard (docs/grafana-dashboard.json) names metrics that
  exist, and every metric family appears on the dashboard.
"""

from __future__ import annotations

import json
import random
import re
import socket
import string
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bittensor as bt
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from text3d.miner.app import MinerService, create_app
from text3d.miner.caller_policy import CallerPolicy
from text3d.miner.nonce_store import SqliteNonceStore
from text3d.miner.queue import GenerationQueue
from text3d.ops.metrics import (
    MetricsSettings,
    MinerMetrics,
    ObservedCaptioner,
    ValidatorMetrics,
    metric_names,
    refusal_reason,
    start_metrics_server,
)
from text3d.protocol.errors import CaptionerUnavailable, ConfigError
from text3d.protocol.mesh_codec import MeshFormat
from text3d.protocol.wire import ROUTE, TextTo3DRequest
from text3d.validator.outcomes import MinerOutcome, StepResult
from text3d.validator.prompts import Task
from tests.loopback import ServedApp, hand_metagraph, make_wallet, tiny_mesh_payload

REPO = Path(__file__).resolve().parent.parent


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of ``/metrics`` as ``{(name, sorted labels): value}``, through the real parser."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10.0, trust_env=False).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def series(samples: dict, name: str) -> list[dict]:
    return [dict(labels) for (sample, labels) in samples if sample == name]


# -- the miner -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def miner(tmp_path_factory):
    root = tmp_path_factory.mktemp("wallets")
    wallets = {name: make_wallet(root, name) for name in ("validator", "nopermit", "miner", "stranger")}
    hk = {name: w.hotkey.ss58_address for name, w in wallets.items()}
    metagraph = hand_metagraph([(hk["validator"], 100.0, True), (hk["nopermit"], 100.0, False), (hk["miner"], 0.0, False)])
    payload = tiny_mesh_payload()
    queue = GenerationQueue(lambda prompts, seeds: [(payload, MeshFormat.DRACO) for _ in prompts],
                            ThreadPoolExecutor(max_workers=1), max_batch_size=4, window_s=0.01, max_queue=32,
                            max_in_flight_per_caller=4)
    metrics = MinerMetrics()
    service = MinerService(hotkey=hk["miner"], policy=CallerPolicy(1.0, True), queue=queue,
                           nonce_store=SqliteNonceStore(tmp_path_factory.mktemp("nonces") / "n.sqlite"),
                           max_timeout_s=10.0, deadline_margin_s=0.1, metagraph=metagraph, metrics=metrics)
    metrics.watch(queue, service)
    server = start_metrics_server(MetricsSettings(port=_free_port()), metrics.registry)
    try:
        with ServedApp(create_app(service)) as served:
            yield {"wallets": wallets, "hk": hk, "url": f"http://127.0.0.1:{served.port}{ROUTE}",
                   "metrics_port": server.port}
    finally:
        server.close()


def _free_port() -> int:
    from text3d.ops.net import free_port

    return free_port()


def _post(miner, wallet_name: str | None, seed: int, headers: dict | None = None) -> int:
    body = TextTo3DRequest(prompt="a red chair", seed=seed, timeout_s=5.0).to_body()
    if headers is None:
        headers = {}
        if wallet_name is not None:
            headers = bt.http_auth.sign(miner["wallets"][wallet_name], method="POST", path=ROUTE, body=body,
                                        receiver_ss58=miner["hk"]["miner"])
    headers["Content-Type"] = "application/json"
    return httpx.post(miner["url"], content=body, headers=headers, timeout=10.0, trust_env=False).status_code


def test_miner_counts_answers_and_refusals_by_status_and_caller_class(miner):
    before = scrape(miner["metrics_port"])
    assert _post(miner, "validator", 1) == 200
    assert _post(miner, "validator", 2) == 200
    assert _post(miner, None, 3) == 401  # no btauth headers at all
    assert _post(miner, "stranger", 4) == 403  # signed, but not registered
    assert _post(miner, "nopermit", 5) == 403  # registered, no validator permit
    after = scrape(miner["metrics_port"])

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("text3d_miner_requests_total", status="200", caller_class="validator") == 2
    assert delta("text3d_miner_requests_total", status="401", caller_class="unknown") == 1
    assert delta("text3d_miner_requests_total", status="403", caller_class="unregistered") == 1
    assert delta("text3d_miner_requests_total", status="403", caller_class="registered") == 1
    assert delta("text3d_miner_refusals_total", reason="auth") == 1
    assert delta("text3d_miner_refusals_total", reason="caller_policy") == 2
    assert delta("text3d_miner_request_duration_seconds_count", outcome="answered") == 2
    assert delta("text3d_miner_request_duration_seconds_count", outcome="refused") == 3
    assert delta("text3d_miner_generation_seconds_count") == 2
    assert delta("text3d_miner_answer_bytes_sum") == 2 * len(tiny_mesh_payload())
    assert ("text3d_miner_queue_depth", ()) in after and value(after, "text3d_miner_queue_depth") == 0
    assert value(after, "text3d_miner_metagraph_synced") == 1


def test_a_stranger_cannot_grow_the_number_of_series(miner):
    """The attack: one series per claimed hotkey (or prompt, or nonce) would let anyone fill the
    miner's memory and every Prometheus that scrapes it. 200 made-up hotkeys add nothing."""
    _post(miner, "stranger", 9)  # the 403/unregistered series exists before the flood
    before = scrape(miner["metrics_port"])
    rng = random.Random(7)
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    for i in range(200):
        fake = "5" + "".join(rng.choice(alphabet) for _ in range(47))
        headers = {"X-Bittensor-Version": "1", "X-Bittensor-Hotkey": fake, "X-Bittensor-Receiver": miner["hk"]["miner"],
                   "X-Bittensor-Nonce": str(time.time_ns()), "X-Bittensor-Signature": "0x" + "ab" * 64,
                   "X-Evil": "".join(rng.choice(string.ascii_letters) for _ in range(20))}
        assert _post(miner, None, 100 + i, headers=headers) == 403  # passes the syntax check, fails the policy
    after = scrape(miner["metrics_port"])
    assert set(after) - set(before) == set(), sorted(set(after) - set(before))[:5]
    assert len(after) < 120


def test_refusal_reasons_are_a_closed_set():
    assert refusal_reason(503, "the miner has not synced the metagraph yet") == "not_synced"
    assert refusal_reason(503, "the answer could not be finished before the caller's deadline") == "deadline"
    assert refusal_reason(503, "queue full") == "queue_full"
    assert refusal_reason(429, "anything") == "per_caller_limit"
    assert refusal_reason(418, "<script>") == "other"


# -- the validator ---------------------------------------------------------------------------------


def _step(step: int, outcomes: list[MinerOutcome], *, updated: bool = True, canary: str | None = "ok",
          weights: str | None = None) -> StepResult:
    timing = {"sync_s": 0.01, "select_s": 0.001, "query_s": 1.5, "decode_s": 0.2, "score_s": 3.0, "copies_s": 0.01,
              "canary_s": 0.4, "update_s": 0.0, "weights_s": 0.02, "save_s": 0.01, "total_s": 5.2}
    return StepResult(step, Task("a red chair", 0), outcomes, timing, updated=updated, canary=canary, weights=weights,
                      fault=None if updated else "CaptionerUnavailable: down")


def test_validator_metrics_follow_the_steps():
    metrics = ValidatorMetrics()
    outcomes = [MinerOutcome(1, "hk1", "ok", score=0.62, response_s=2.5, payload_bytes=1000),
                MinerOutcome(2, "hk2", "late", response_s=12.0),
                MinerOutcome(3, "hk3", "<b>made-up</b>")]
    metrics.observe_step(_step(7, outcomes, weights="set at block 120 for 2 uids"), {1: 0.3, 2: 0.1, 3: 0.0, 5: 0.2}, 6)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in metrics.registry.collect() for s in f.samples}
    assert value(samples, "text3d_validator_step") == 7
    assert value(samples, "text3d_validator_steps_total", result="scored") == 1
    assert value(samples, "text3d_validator_step_phase_seconds_count", phase="total") == 1
    assert value(samples, "text3d_validator_step_phase_seconds_sum", phase="score") == pytest.approx(3.0)
    assert value(samples, "text3d_validator_answers_total", status="ok") == 1
    assert value(samples, "text3d_validator_answers_total", status="late") == 1
    assert value(samples, "text3d_validator_answers_total", status="other") == 1  # not the miner's text
    assert value(samples, "text3d_validator_miner_score", uid="1") == pytest.approx(0.62)
    assert value(samples, "text3d_validator_miner_score", uid="2") == 0.0
    assert value(samples, "text3d_validator_miner_average", uid="5") == pytest.approx(0.2)
    assert value(samples, "text3d_validator_miner_response_seconds", uid="2") == 12.0
    assert value(samples, "text3d_validator_canary_total", outcome="ok") == 1
    assert value(samples, "text3d_validator_weights_total", result="set") == 1
    assert value(samples, "text3d_validator_last_weights_block") == 120

    # A void step (our captioner failed) moves no score; uid 5 left the state and loses its series.
    metrics.observe_step(_step(8, [MinerOutcome(1, "hk1", "ok", score=0.9)], updated=False, canary="failed: blank"),
                         {1: 0.3, 2: 0.1, 3: 0.0}, 6)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in metrics.registry.collect() for s in f.samples}
    assert value(samples, "text3d_validator_steps_total", result="void") == 1
    assert value(samples, "text3d_validator_miner_score", uid="1") == pytest.approx(0.62)
    assert value(samples, "text3d_validator_canary_ok") == 0
    assert not any(name == "text3d_validator_miner_average" and dict(labels).get("uid") == "5"
                   for name, labels in samples)


def test_observed_captioner_times_calls_and_counts_failures_without_changing_them():
    class Captioner:
        name = "openai:llava-v1.5"
        config = {"instruction": "describe"}

        def __init__(self) -> None:
            self.fail = False

        def caption(self, images, prompt):
            if self.fail:
                raise CaptionerUnavailable("down")
            return [f"view {i}" for i, _ in enumerate(images)]

    metrics = ValidatorMetrics()
    inner = Captioner()
    wrapped = ObservedCaptioner(inner, metrics.observe_caption)
    assert wrapped.name == inner.name and wrapped.config is inner.config
    assert wrapped.caption([1, 2], "p") == ["view 0", "view 1"]
    assert wrapped.caption_many([[1], [1, 2]], ["p", "q"]) == [["view 0"], ["view 0", "view 1"]]
    inner.fail = True
    with pytest.raises(CaptionerUnavailable):
        wrapped.caption([1], "p")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in metrics.registry.collect() for s in f.samples}
    assert value(samples, "text3d_validator_captioner_seconds_count") == 4
    assert value(samples, "text3d_validator_captioner_errors_total", kind="unavailable") == 1


# -- settings and the server ------------------------------------------------------------------------


def test_metrics_are_off_by_default_and_on_loopback_when_set():
    from text3d.settings import load_settings

    for role in ("miner", "validator"):
        settings = load_settings(role, [])
        assert settings.metrics.port == 0 and start_metrics_server(settings.metrics, None) is None
        assert load_settings(role, ["--metrics.port", "9100"]).metrics.ip == "127.0.0.1"
    with pytest.raises(ConfigError, match=r"--metrics.ip"):
        load_settings("validator", ["--metrics.ip", "everywhere"])


def test_a_taken_port_is_one_sentence_naming_the_flag():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        with pytest.raises(ConfigError, match=r"^--metrics.port \d+: cannot serve metrics"):
            start_metrics_server(MetricsSettings(port=taken.getsockname()[1]), ValidatorMetrics().registry)
    finally:
        taken.close()


# -- the sample dashboard ----------------------------------------------------------------------------


def _all_sample_names() -> set[str]:
    from text3d.miner.connections import ConnectionGuard

    miner, validator = MinerMetrics(), ValidatorMetrics()
    miner.watch_connections(ConnectionGuard())  # as text3d.miner.main wires it
    miner.observe_request(status=200, caller="validator", seconds=1.0, generation_s=0.5, payload_bytes=10)
    miner.observe_request(status=503, caller="validator", seconds=1.0, detail="queue full")
    validator.observe_step(_step(1, [MinerOutcome(1, "hk", "ok", score=0.5, response_s=1.0)],
                                 weights="set at block 3 for 1 uids"), {1: 0.1})
    validator.observe_caption(1.0, CaptionerUnavailable("down"))
    return set(metric_names(miner.registry)) | set(metric_names(validator.registry))


def test_every_dashboard_query_names_real_metrics_and_every_metric_is_on_it():
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs and dashboard["title"]
    names = _all_sample_names()
    used = {name for expr in exprs for name in re.findall(r"\btext3d_[a-z_]+\b", expr)}
    unknown = {name for name in used if name not in names and not name.startswith("text3d_gateway_")}
    assert not unknown, f"the dashboard queries metrics that do not exist: {sorted(unknown)}"
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", name) for name in names}
    unused = {family for family in families if not any(name.startswith(family) for name in used)}
    assert not unused, f"metrics missing from the dashboard: {sorted(unused)}"
    for panel in dashboard["panels"]:  # Grafana needs these to lay a panel out
        assert {"type", "title", "gridPos"} <= set(panel), panel.get("title")
