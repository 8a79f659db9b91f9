"""The relay's figures: Prometheus metrics in a registry of its own, and EMF lines on Lambda.

``RelayMetrics`` is told what happens (a request answered, an ingest attempt, a copy, a
provider call) through small typed methods. Counters and histograms live in the relay's
own ``CollectorRegistry`` (never the process-wide default, so several relays and tests in
one process never share a figure). Figures read from the stores (jobs by status, queue
depth, dead letters) are computed when ``/metrics`` is scraped, by :class:`StoreCollector`.
On Lambda an :class:`~handlers.app.emf.EmfBuffer` receives the same figures and the
entry point flushes them as CloudWatch Embedded Metric Format lines after each invocation.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from handlers.base.errors import RelayError
from handlers.base.logs import get_logger
from handlers.domain.jobs import JobStatus

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from handlers.ports import JobStore, Provider, WorkQueue
    from handlers.provider.evolink.task import Task

__all__ = ["CALLBACK_ROUTE", "CONTENT_TYPE", "JOB_COUNT_CAP", "FigureSink", "MeteredProvider", "RelayMetrics",
           "StoreCollector"]

log = get_logger(__name__)
_T = TypeVar("_T")
CALLBACK_ROUTE = "/v1/callbacks/evolink/{job_id}"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The classic text format (what ``generate_latest`` writes), which every Prometheus version reads."""
JOB_COUNT_CAP = 10_000
"""Jobs by status are counted up to this many per status: a value equal to it means "at least"."""
_COPY_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_REFUSAL_REASONS = {400: "invalid_body", 401: "unauthorized", 413: "too_large"}


class FigureSink(Protocol):
    """Where figures go besides Prometheus (the EMF buffer on Lambda)."""

    def add(self, name: str, unit: str, value: float, labels: Mapping[str, str]) -> None:
        ...


class RelayMetrics:
    """Counters and histograms of one relay; ``sink`` also receives every figure (EMF on Lambda)."""

    def __init__(self, *, sink: FigureSink | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._sink = sink
        self._requests = self._counter("relay_http_requests", "HTTP requests answered",
                                       ["method", "route", "status"])
        self._request_seconds = self._histogram("relay_http_request_duration_seconds",
                                                "Time to answer an HTTP request", ["method", "route"])
        self._callbacks = self._counter("relay_callbacks", "Provider callbacks by result (accepted, refused) "
                                        "and reason", ["result", "reason"])
        self._ingest = self._counter("relay_ingest_attempts", "Ingest messages handled, by outcome", ["outcome"])
        self._ingest_failures = self._counter("relay_ingest_failures", "Ingest attempts that failed, by error code",
                                              ["code"])
        self._copy_bytes = self._counter("relay_copy_bytes", "Bytes of results copied into storage", [])
        self._copy_seconds = self._histogram("relay_copy_duration_seconds", "Time to copy one result into storage",
                                             [], buckets=_COPY_BUCKETS)
        self._provider = self._counter("relay_provider_calls", "Calls to the provider (EvoLink), by operation "
                                       "and outcome", ["operation", "outcome"])
        self._provider_seconds = self._histogram("relay_provider_call_duration_seconds",
                                                 "Time of one provider call, retries included", ["operation"])
        self._retries = self._counter("relay_task_retries", "Tasks EvoLink failed with a code that says try "
                                      "again, followed by a new task of the same job, by code", ["code"])
        self._at_risk = self._counter("relay_jobs_at_risk", "Jobs whose completed result was still not copied "
                                      "RELAY_AT_RISK_AFTER after completion (job.at_risk published)", [])
        self._result_expired = self._counter("relay_results_expired", "Jobs failed with result_expired: their "
                                             "result's URLs expired before it was copied", [])

    def _counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def _histogram(self, name: str, documentation: str, labels: list[str],
                   buckets: tuple[float, ...] = Histogram.DEFAULT_BUCKETS) -> Histogram:
        return Histogram(name, documentation, labels, registry=self.registry, buckets=buckets)

    def _emit(self, name: str, unit: str, value: float, **labels: str) -> None:
        if self._sink is not None:
            self._sink.add(name, unit, value, labels)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP answer; ``route`` is the route's template, never the raw path."""
        self._requests.labels(method, route, str(status)).inc()
        self._request_seconds.labels(method, route).observe(seconds)
        self._emit("HttpRequests", "Count", 1, route=route, status_class=f"{status // 100}xx")
        self._emit("HttpLatency", "Milliseconds", seconds * 1000, route=route)
        if status >= 500:
            self._emit("HttpServerErrors", "Count", 1)
        if route == CALLBACK_ROUTE:
            accepted = 200 <= status < 300
            self.callback(accepted, "ok" if accepted else _REFUSAL_REASONS.get(status, f"http_{status}"))

    def callback(self, accepted: bool, reason: str) -> None:
        """A provider callback accepted (queued) or refused, with the reason class (never the token)."""
        self._callbacks.labels("accepted" if accepted else "refused", reason).inc()
        if accepted:
            self._emit("CallbacksAccepted", "Count", 1)
        else:
            self._emit("CallbacksRefused", "Count", 1, reason=reason)

    def ingest_attempt(self, outcome: str) -> None:
        """One ingest message handled: ``done``, ``retry``, ``busy``, ``conflict``, ``dropped``."""
        self._ingest.labels(outcome).inc()
        self._emit("IngestAttempts", "Count", 1, outcome=outcome)

    def ingest_failure(self, code: str) -> None:
        """An ingest attempt that failed with the project error ``code`` (retried, or failing the job)."""
        self._ingest_failures.labels(code).inc()
        self._emit("IngestFailures", "Count", 1)
        self._emit("IngestFailures", "Count", 1, code=code)

    def copied(self, size: int, seconds: float) -> None:
        """One result of ``size`` bytes copied into storage in ``seconds``."""
        self._copy_bytes.inc(size)
        self._copy_seconds.observe(seconds)
        self._emit("CopiedBytes", "Bytes", size)
        self._emit("CopyDuration", "Milliseconds", seconds * 1000)

    def provider_call(self, operation: str, outcome: str, seconds: float) -> None:
        """One provider call (``create_task``, ``get_task``) and how it ended: ``ok``, ``provider_rejected``,
        ``provider_unavailable``, ``unknown_outcome``…"""
        self._provider.labels(operation, outcome).inc()
        self._provider_seconds.labels(operation).observe(seconds)
        self._emit("ProviderCalls", "Count", 1, operation=operation)
        self._emit("ProviderLatency", "Milliseconds", seconds * 1000, operation=operation)
        if outcome != "ok":
            self._emit("ProviderFailures", "Count", 1)
            self._emit("ProviderFailures", "Count", 1, operation=operation, outcome=outcome)

    def task_retried(self, code: str) -> None:
        """A task failed with the retryable ``code`` (one of a bounded list) and the job gets a new task."""
        self._retries.labels(code).inc()
        self._emit("TaskRetries", "Count", 1)
        self._emit("TaskRetries", "Count", 1, code=code)

    def job_at_risk(self) -> None:
        """A job's completed result is at risk: ``job.at_risk`` went out (what the alarm watches)."""
        self._at_risk.inc()
        self._emit("JobsAtRisk", "Count", 1)

    def result_expired(self) -> None:
        """A job failed because its result's URLs expired before the copy succeeded."""
        self._result_expired.inc()
        self._emit("ResultsExpired", "Count", 1)

    def watch(self, collector: Collector) -> None:
        """Add a collector read at each scrape (see :class:`StoreCollector`)."""
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """Every figure in the Prometheus text format (``CONTENT_TYPE``); reads the stores' figures now."""
        return generate_latest(self.registry)


class StoreCollector(Collector):
    """Jobs by status (capped count), queue depth and dead letters per queue, read at scrape time.

    A store that fails is left out of that scrape (and logged) rather than failing it whole.
    """

    def __init__(self, jobs: JobStore, queues: Callable[[], Mapping[str, WorkQueue]],
                 *, cap: int = JOB_COUNT_CAP) -> None:
        self._jobs, self._queues, self._cap = jobs, queues, cap

    def describe(self) -> list[Metric]:
        return []  # figures come from I/O: never read them at registration

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("relay_jobs", f"Jobs by status, counted up to {self._cap}", labels=["status"])
        depth = GaugeMetricFamily("relay_queue_messages", "Messages waiting (visible) or being handled (in_flight)",
                                  labels=["queue", "state"])
        dead = GaugeMetricFamily("relay_queue_dead_letters", "Messages in the queue's dead-letter queue",
                                 labels=["queue"])
        for status in JobStatus:
            count = self._read(f"jobs:{status.value}", functools.partial(self._count, status))
            if count is not None:
                jobs.add_metric([status.value], count)
        for name, queue in self._queues().items():
            figures = self._read(f"queue:{name}", queue.depth)
            if figures is None:
                continue
            for state in ("visible", "in_flight"):
                depth.add_metric([name, state], figures.get(state, 0))
            dead.add_metric([name], figures.get("dead", 0))
        yield from (jobs, depth, dead)

    def _count(self, status: JobStatus) -> float:
        return float(self._jobs.count(status, self._cap))

    @staticmethod
    def _read(what: str, read: Callable[[], _T]) -> _T | None:
        try:
            return read()
        except RelayError as exc:
            log.warning("metrics.store_unreadable", store=what, code=exc.code, error=exc.message)
            return None


class MeteredProvider:
    """A provider whose every call is counted and timed (retries inside the call included)."""

    def __init__(self, provider: Provider, metrics: RelayMetrics) -> None:
        self.inner, self._metrics = provider, metrics

    def create_task(self, body: Mapping[str, Any], *, idempotency_key: str) -> Task:
        return self._timed("create_task", lambda: self.inner.create_task(body, idempotency_key=idempotency_key))

    def get_task(self, task_id: str) -> Task:
        return self._timed("get_task", lambda: self.inner.get_task(task_id))

    def _timed(self, operation: str, call: Callable[[], Task]) -> Task:
        started, outcome = time.perf_counter(), "ok"
        try:
            return call()
        except RelayError as exc:
            outcome = type(exc).code  # the class's code: the provider's own codes are not a bounded label
            raise
        finally:
            self._metrics.provider_call(operation, outcome, time.perf_counter() - started)
