"""Prometheus metrics for the neurons: the ``--metrics.*`` settings, the two metric sets, the server.

Operators wire these into Prometheus and Grafana (``docs/metrics.md``, and the sample
dashboard ``docs/grafana-dashboard.json`` whose queries a test checks against the names
below). Each neuron builds its own ``CollectorRegistry`` (no process-wide singleton, so two
neurons or two tests in one process never share counters) and serves it on
``--metrics.ip:--metrics.port`` with prometheus-client's own HTTP server, on a daemon
thread. Off by default (port 0); the address defaults to loopback, because the validator's
metrics name every miner's score and the miner's reveal its load.

Miner (``MinerMetrics``)::

    text3d_miner_requests_total{status,caller_class}    every answer, by HTTP status and who claimed to ask
    text3d_miner_refusals_total{reason}                 non-200 answers by reason (auth, caller_policy, ...)
    text3d_miner_request_duration_seconds{outcome}      request wall time, answered | refused
    text3d_miner_generation_seconds                     admission to mesh ready, answered requests
    text3d_miner_answer_bytes                           size of the mesh bytes sent
    text3d_miner_queue_depth / _queue_running           requests waiting / batches running now
    text3d_miner_metagraph_synced                       1 once the caller policy has a metagraph
    text3d_miner_connections_open                       TCP connections the connection guard holds now
    text3d_miner_connections_closed_total{reason}       closed by the guard before any request: source_cap,
                                                        total_cap, evicted, header_timeout, body_timeout

Validator (``ValidatorMetrics``)::

    text3d_validator_step                               the last step's number
    text3d_validator_steps_total{result}                scored | void (our fault) | skipped (chain down)
    text3d_validator_step_phase_seconds{phase}          sync, select, query, decode, score, copies,
                                                        canary, update, weights, save, total
    text3d_validator_answers_total{status}              ok, late, invalid, duplicate, ... per queried miner
    text3d_validator_miner_score{uid}                   the miner's score in the last scored step it was in
    text3d_validator_miner_average{uid}                 its moving average (what weights follow)
    text3d_validator_miner_response_seconds{uid}        its last answer's arrival time
    text3d_validator_canary_total{outcome} / _canary_ok the canary's results / 1 when the last one passed
    text3d_validator_captioner_seconds                  one captioner call (a batch of views)
    text3d_validator_captioner_errors_total{kind}       calls that raised: unavailable | other
    text3d_validator_weights_total{result}              set | refused | failed | skipped
    text3d_validator_last_weights_block                 the block of the last weights set

Every label value comes from a closed set of our own (an HTTP status we send, a caller
class, a phase name, an outcome status, a uid of the metagraph): nothing a caller or a
miner sends becomes a label, so nobody can grow the number of series (a hotkey label on
the miner would let any stranger add one series per request).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from text3d.protocol.errors import ConfigError

__all__ = [
    "MetricsSettings",
    "MinerMetrics",
    "ValidatorMetrics",
    "ObservedCaptioner",
    "MetricsServer",
    "start_metrics_server",
    "caller_class",
    "refusal_reason",
    "metric_names",
    "PHASE_NAMES",
    "ANSWER_STATUSES",
]

log = logging.getLogger("text3d.metrics")

PHASE_NAMES = ("sync", "select", "query", "decode", "score", "copies", "canary", "update", "weights", "save", "total")
ANSWER_STATUSES = ("ok", "no_response", "late", "oversize", "encoded", "refused", "malformed", "invalid", "duplicate",
                   "repeat")
CALLER_CLASSES = ("unknown", "unregistered", "registered", "validator")
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
_BYTES_BUCKETS = (1e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8)


class MetricsSettings(BaseModel):
    """``--metrics.port`` / ``--metrics.ip``: where a neuron serves ``/metrics`` (off by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int = Field(0, ge=0, le=65535, description="Serve Prometheus metrics on this port (0: off).")
    ip: str = Field("127.0.0.1", description="Address the metrics server binds (loopback: scrape from this machine).")

    @field_validator("ip")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IPv4 or IPv6 address (127.0.0.1 keeps the metrics on this machine)") from None
        return value

    @property
    def enabled(self) -> bool:
        return self.port > 0


def _registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry(auto_describe=True)


# -- miner ------------------------------------------------------------------------------------------


def caller_class(metagraph: Any, hotkey: str | None) -> str:
    """``unknown`` (no metagraph or no hotkey), ``unregistered``, ``registered`` or ``validator`` (a permit).

    The hotkey is the one the request *claims*: membership is tested before any lookup.
    """
    if metagraph is None or not hotkey:
        return "unknown"
    uid = metagraph.uid_of(hotkey)
    if uid is None:
        return "unregistered"
    return "validator" if metagraph.neuron(uid).validator_permit else "registered"


_REASON_BY_STATUS = {400: "bad_request", 401: "auth", 403: "caller_policy", 413: "too_large", 415: "encoded",
                     429: "per_caller_limit", 500: "generation_failed"}


def refusal_reason(status: int, detail: str = "") -> str:
    """A refusal's reason from a closed set; 503s are told apart by what the miner said."""
    if status == 503:
        text = detail.lower()
        if "metagraph" in text:
            return "not_synced"
        if "replay" in text:
            return "replay_store"
        if "deadline" in text:
            return "deadline"
        return "queue_full"
    return _REASON_BY_STATUS.get(status, "other")


class MinerMetrics:
    """The miner's metric set on its own registry; ``observe_request`` is called once per request."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.registry = registry if registry is not None else _registry()
        r = self.registry
        self.requests = Counter("text3d_miner_requests", "Requests answered, by HTTP status and the caller's class "
                                "(as the claimed hotkey stands on the metagraph).", ["status", "caller_class"],
                                registry=r)
        self.refusals = Counter("text3d_miner_refusals", "Requests not answered with a mesh, by reason.", ["reason"],
                                registry=r)
        self.request_seconds = Histogram("text3d_miner_request_duration_seconds", "Request wall time in the miner.",
                                         ["outcome"], buckets=_SECONDS_BUCKETS, registry=r)
        self.generation_seconds = Histogram("text3d_miner_generation_seconds", "Admission to mesh ready (queue wait "
                                            "and generation) of answered requests.", buckets=_SECONDS_BUCKETS,
                                            registry=r)
        self.answer_bytes = Histogram("text3d_miner_answer_bytes", "Bytes of the encoded meshes sent.",
                                      buckets=_BYTES_BUCKETS, registry=r)
        self.queue_depth = Gauge("text3d_miner_queue_depth", "Requests waiting for generation.", registry=r)
        self.queue_running = Gauge("text3d_miner_queue_running", "Generation batches running now.", registry=r)
        self.metagraph_synced = Gauge("text3d_miner_metagraph_synced", "1 once the caller policy has a metagraph.",
                                      registry=r)
        self.requests.labels(status="200", caller_class="validator")  # the main series exists from the start

    def watch(self, queue: Any, service: Any) -> None:
        """Read the queue's depth and the service's metagraph at scrape time (no polling thread)."""
        self.queue_depth.set_function(lambda: float(getattr(queue, "queued", 0)))
        self.queue_running.set_function(lambda: float(getattr(queue, "running_batches", 0)))
        self.metagraph_synced.set_function(lambda: 1.0 if getattr(service, "metagraph", None) is not None else 0.0)

    def watch_connections(self, guard: Any) -> None:
        """Read the connection guard's (``text3d.miner.connections``) counts at scrape time."""
        from prometheus_client import Gauge
        from prometheus_client.core import CounterMetricFamily

        from text3d.miner.connections import CLOSE_REASONS

        Gauge("text3d_miner_connections_open", "TCP connections the connection guard holds now.",
              registry=self.registry).set_function(lambda: float(guard.open))

        class ClosedConnections:
            def collect(self) -> Iterable[Any]:
                family = CounterMetricFamily("text3d_miner_connections_closed", "Connections the guard closed "
                                             "before a request reached the app, by reason.", labels=["reason"])
                for reason in CLOSE_REASONS:
                    family.add_metric([reason], float(guard.closed[reason]))
                yield family

        self.registry.register(ClosedConnections())

    def observe_request(self, *, status: int, caller: str, seconds: float, detail: str = "",
                        generation_s: float | None = None, payload_bytes: int | None = None) -> None:
        klass = caller if caller in CALLER_CLASSES else "unknown"
        self.requests.labels(status=str(int(status)), caller_class=klass).inc()
        outcome = "answered" if status == 200 else "refused"
        self.request_seconds.labels(outcome=outcome).observe(max(0.0, seconds))
        if status == 200:
            if generation_s is not None:
                self.generation_seconds.observe(max(0.0, generation_s))
            if payload_bytes is not None:
                self.answer_bytes.observe(payload_bytes)
        else:
            self.refusals.labels(reason=refusal_reason(status, detail)).inc()


# -- validator ---------------------------------------------------------------------------------------


def _weights_result(weights: str | None) -> str | None:
    """``set`` / ``refused`` / ``failed`` / ``skipped`` from the step's weights sentence (None: not due)."""
    if not weights:
        return None
    for result in ("set", "refused", "failed", "skipped"):
        if weights.startswith(result):
            return result
    return "other"


class ValidatorMetrics:
    """The validator's metric set on its own registry; ``observe_step`` is called once per step."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.registry = registry if registry is not None else _registry()
        r = self.registry
        self.step = Gauge("text3d_validator_step", "The last step's number.", registry=r)
        self.steps = Counter("text3d_validator_steps", "Steps run: scored (averages updated), void (our fault: no "
                             "average changed) or skipped (the chain could not be read).", ["result"], registry=r)
        self.phase_seconds = Histogram("text3d_validator_step_phase_seconds", "Duration of each phase of a step "
                                       "(total: the whole step).", ["phase"], buckets=_SECONDS_BUCKETS, registry=r)
        self.answers = Counter("text3d_validator_answers", "Queried miners' outcomes, by status.", ["status"],
                               registry=r)
        self.miner_score = Gauge("text3d_validator_miner_score", "The miner's score in the last scored step it was "
                                 "queried in (0 for any status but ok).", ["uid"], registry=r)
        self.miner_average = Gauge("text3d_validator_miner_average", "The miner's moving average score (weights "
                                   "follow it).", ["uid"], registry=r)
        self.miner_response_seconds = Gauge("text3d_validator_miner_response_seconds", "Arrival time of the "
                                            "miner's last answer (its last byte).", ["uid"], registry=r)
        self.canary = Counter("text3d_validator_canary", "Canary results: ok, or failed (the step is void).",
                              ["outcome"], registry=r)
        self.canary_ok = Gauge("text3d_validator_canary_ok", "1 when the last canary passed, 0 when it failed.",
                               registry=r)
        self.captioner_seconds = Histogram("text3d_validator_captioner_seconds", "One captioner call (the views "
                                           "of a batch of assets).", buckets=_SECONDS_BUCKETS, registry=r)
        self.captioner_errors = Counter("text3d_validator_captioner_errors", "Captioner calls that raised: "
                                        "unavailable (timeouts, refusals, a server down) or other.", ["kind"],
                                        registry=r)
        self.weights = Counter("text3d_validator_weights", "Weight settings: set, refused by the chain, failed "
                               "(the chain unreachable) or skipped (no evidence yet).", ["result"], registry=r)
        self.last_weights_block = Gauge("text3d_validator_last_weights_block", "Block of the last weights set.",
                                        registry=r)
        for result in ("scored", "void", "skipped"):
            self.steps.labels(result=result)
        self._uids: set[str] = set()

    def observe_step(self, result: Any, averages: Mapping[int, float], n_uids: int | None = None) -> None:
        """Fold one ``StepResult`` and the averages after it into the metrics."""
        self.step.set(result.step)
        for key, seconds in result.timing_s.items():
            phase = key.removesuffix("_s")
            if phase in PHASE_NAMES:
                self.phase_seconds.labels(phase=phase).observe(max(0.0, float(seconds)))
        if result.task is None:
            self.steps.labels(result="skipped").inc()
            return
        self.steps.labels(result="scored" if result.updated else "void").inc()
        for outcome in result.outcomes:
            status = outcome.status if outcome.status in ANSWER_STATUSES else "other"
            self.answers.labels(status=status).inc()
            uid = str(int(outcome.uid))
            if outcome.response_s is not None:
                self.miner_response_seconds.labels(uid=uid).set(float(outcome.response_s))
            if result.updated:
                self.miner_score.labels(uid=uid).set(float(outcome.score) if outcome.status == "ok" else 0.0)
        if result.canary is not None:
            ok = result.canary == "ok"
            self.canary.labels(outcome="ok" if ok else "failed").inc()
            self.canary_ok.set(1.0 if ok else 0.0)
        weights = _weights_result(result.weights)
        if weights is not None:
            self.weights.labels(result=weights).inc()
            if weights == "set":
                block = _block_of(result.weights)
                if block is not None:
                    self.last_weights_block.set(block)
        self.set_averages(averages, n_uids)

    def set_averages(self, averages: Mapping[int, float], n_uids: int | None = None) -> None:
        """The averages now; uids that left the state (or the metagraph) lose their series."""
        current = {str(int(uid)) for uid in averages if n_uids is None or 0 <= int(uid) < n_uids}
        for uid in self._uids - current:
            for gauge in (self.miner_average, self.miner_score, self.miner_response_seconds):
                try:
                    gauge.remove(uid)
                except KeyError:
                    pass
        for uid, value in averages.items():
            if str(int(uid)) in current:
                self.miner_average.labels(uid=str(int(uid))).set(float(value))
        self._uids = current

    def observe_caption(self, seconds: float, error: BaseException | None) -> None:
        self.captioner_seconds.observe(max(0.0, seconds))
        if error is not None:
            from text3d.protocol.errors import CaptionerUnavailable

            self.captioner_errors.labels(kind="unavailable" if isinstance(error, CaptionerUnavailable) else "other").inc()


def _block_of(weights: str | None) -> int | None:
    import re

    found = re.search(r"at block (\d+)", weights or "")
    return int(found.group(1)) if found else None


class ObservedCaptioner:
    """A captioner that reports each call's duration and failure to ``observe(seconds, error)``.

    Wraps the validator's captioner without changing what it does: the same captions, the
    same exceptions; every other attribute (``name``, ``config``) is the wrapped one's, so
    the scoring protocol's digest and the reports do not change.
    """

    def __init__(self, inner: Any, observe: Callable[[float, BaseException | None], None],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._inner = inner
        self._observe = observe
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _timed(self, call: Callable[[], Any]) -> Any:
        started = self._clock()
        try:
            value = call()
        except BaseException as exc:
            self._observe(self._clock() - started, exc)
            raise
        self._observe(self._clock() - started, None)
        return value

    def caption(self, images: Sequence[Any], prompt: str) -> list[str]:
        return self._timed(lambda: self._inner.caption(images, prompt))

    def caption_many(self, image_lists: Sequence[Sequence[Any]], prompts: Sequence[str]) -> list[list[str]]:
        many = getattr(self._inner, "caption_many", None)
        if many is None:
            return [self.caption(images, prompt) for images, prompt in zip(image_lists, prompts)]
        return self._timed(lambda: many(image_lists, prompts))


# -- the server ----------------------------------------------------------------------------------------


@dataclass
class MetricsServer:
    """prometheus-client's HTTP server on a daemon thread; ``close()`` stops it (idempotent)."""

    httpd: Any
    thread: Any

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def close(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def start_metrics_server(settings: MetricsSettings, registry: Any, *, flag: str = "--metrics.port") -> MetricsServer | None:
    """Serve ``registry`` at ``http://ip:port/metrics``; None when ``settings.port`` is 0 (off).

    Raises ``ConfigError`` naming the flag when the port cannot be bound (taken, or a
    privileged port), so a neuron refuses to start rather than run unobserved.
    """
    if not settings.enabled:
        return None
    from prometheus_client import start_http_server

    try:
        httpd, thread = start_http_server(settings.port, addr=settings.ip, registry=registry)
    except OSError as exc:
        raise ConfigError(f"{flag} {settings.port}: cannot serve metrics on {settings.ip}:{settings.port} "
                          f"({exc.strerror or exc}); pick a free port or 0 to turn metrics off") from None
    log.info("metrics on http://%s:%d/metrics", settings.ip, settings.port)
    return MetricsServer(httpd, thread)


def metric_names(registry: Any) -> Iterable[str]:
    """Every sample name the registry exposes now (``..._total``, ``..._bucket``, ...), for tests and docs."""
    for family in registry.collect():
        for sample in family.samples:
            yield sample.name
