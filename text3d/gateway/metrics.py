"""The gateway's Prometheus metrics (prometheus-client), every name ``text3d_gateway_*``.

    text3d_gateway_requests_total{route,status}       HTTP requests by route template and status
    text3d_gateway_request_seconds{route}             their latency (histogram)
    text3d_gateway_refusals_total{limit}              jobs refused: concurrency, per_minute, per_day, queue,
                                                      disk_full, prompt, auth
    text3d_gateway_jobs_created_total                 jobs admitted
    text3d_gateway_jobs_finished_total{status}        results stored (done) and failures reported by workers
    text3d_gateway_job_seconds                        post to stored result, for done jobs (histogram)
    text3d_gateway_worker_claims_total{outcome}       claims answered with a job or empty
    text3d_gateway_worker_refusals_total{status}      worker requests refused (401, 403, 409, 413, ...)
    text3d_gateway_jobs{status}                       jobs in the store now, by status (read at scrape time)
    text3d_gateway_results_bytes                      stored results' size now
    text3d_gateway_workers_active                     distinct worker hotkeys that claimed in the last 5 minutes

Each gateway app has its own ``CollectorRegistry`` (several apps in one test process never
share counters); the store's figures are read when Prometheus scrapes, so every replica
reports the shared store's truth.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

__all__ = ["GatewayMetrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_ACTIVE_WINDOW_S = 300.0


class _StoreCollector:
    def __init__(self, metrics: "GatewayMetrics") -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self._metrics.read_counts()
        jobs = GaugeMetricFamily("text3d_gateway_jobs", "Jobs in the store by status", labels=["status"])
        for status in ("queued", "running", "done", "failed"):
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily("text3d_gateway_results_bytes", "Bytes of stored results",
                                value=counts.get("result_bytes", 0))
        yield GaugeMetricFamily("text3d_gateway_workers_active", "Worker hotkeys that claimed in the last 5 minutes",
                                value=self._metrics.active_workers())


class GatewayMetrics:
    def __init__(self, read_counts: Callable[[], dict[str, int]] = dict,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        self.read_counts = read_counts
        self._clock = clock
        self._claimed_at: dict[str, float] = {}
        r = self.registry
        self.requests = Counter("text3d_gateway_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.request_seconds = Histogram("text3d_gateway_request_seconds", "HTTP request latency", ["route"],
                                         registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.refusals = Counter("text3d_gateway_refusals", "Jobs refused, by the limit that refused them", ["limit"],
                                registry=r)
        self.jobs_created = Counter("text3d_gateway_jobs_created", "Jobs admitted", registry=r)
        self.jobs_finished = Counter("text3d_gateway_jobs_finished", "Results stored and failures reported",
                                     ["status"], registry=r)
        self.job_seconds = Histogram("text3d_gateway_job_seconds", "Seconds from post to stored result", registry=r,
                                     buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800))
        self.claims = Counter("text3d_gateway_worker_claims", "Worker claims by outcome", ["outcome"], registry=r)
        self.worker_refusals = Counter("text3d_gateway_worker_refusals", "Worker requests refused", ["status"],
                                       registry=r)
        r.register(_StoreCollector(self))

    def claimed_by(self, hotkey: str) -> None:
        self._claimed_at[hotkey] = self._clock()

    def active_workers(self) -> int:
        horizon = self._clock() - _ACTIVE_WINDOW_S
        for hotkey in [h for h, at in self._claimed_at.items() if at < horizon]:
            del self._claimed_at[hotkey]
        return len(self._claimed_at)

    def exposition(self) -> bytes:
        """The Prometheus text format (reads the store: call it off the event loop)."""
        return generate_latest(self.registry)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.request_seconds.labels(route=route).observe(seconds)
