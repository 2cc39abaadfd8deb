"""The controller's own Prometheus metrics: the registry, the recording, the HTTP endpoint.

What happened in a release is decided by :mod:`vela_progressive.core.telemetry` from the status
a pass wrote; this module only turns those signals into samples, times the reconcile passes and
the hold webhook, counts the release loops, and serves ``/metrics`` (``prometheus-client``'s own
threaded HTTP server, on a port of its own: Kopf's liveness endpoint is not extensible).
Every metric is listed, with its labels, in ``docs/operations.md#metrics``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vela_progressive.core.telemetry import (
    FAILED_CHANGE,
    ApprovalWaited,
    Measured,
    ReleaseEnded,
    ReleaseFailed,
    ReleaseStarted,
    Restored,
    Result,
    Signal,
    StepPassed,
)
from vela_progressive.core.workloads import registry

log = logging.getLogger("vela_progressive.metrics")

PREFIX = "vela_progressive"
#: Steps, approvals, releases: a minute to a day. Few buckets: the per-application histograms
#: are most of the series of a controller with many rollouts (hack/bench/metrics_bench.py).
LONG_BUCKETS = (60, 300, 600, 1800, 3600, 7200, 21600, 86400)
#: Time to restore: its mean (sum / count) is the DORA number; the buckets only sketch it.
RESTORE_BUCKETS = (600, 3600, 21600, 86400)
#: A reconcile pass: API round trips.
PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: The hold webhook's handler: pure computation.
HOLD_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)

APP = ("namespace", "application")
ROLLOUT = ("namespace", "application", "rollout")

# ``*_created`` series double every counter's and histogram's series for nothing a dashboard
# reads.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose signals these are (the labels)."""

    namespace: str
    application: str
    rollout: str


class _Phases(Collector):
    """``vela_progressive_rollouts{namespace,phase}``: the last phase each release loop saw."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phase: dict[tuple[str, str], str] = {}

    def set(self, namespace: str, rollout: str, phase: str) -> None:
        with self._lock:
            self._phase[(namespace, rollout)] = phase

    def forget(self, namespace: str, rollout: str) -> None:
        with self._lock:
            self._phase.pop((namespace, rollout), None)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            seen = list(self._phase.items())
        counts: dict[tuple[str, str], int] = {}
        for (namespace, _), phase in seen:
            counts[(namespace, phase)] = counts.get((namespace, phase), 0) + 1
        family = GaugeMetricFamily(
            f"{PREFIX}_rollouts",
            "ProgressiveRollouts by namespace and status.phase (as their release loops saw them)",
            labels=["namespace", "phase"],
        )
        for (namespace, phase), n in sorted(counts.items()):
            family.add_metric([namespace, phase], n)
        yield family


class _ApiRequests(Collector):
    """``vela_progressive_api_requests_total{verb}`` from the API client's own counter."""

    def __init__(self) -> None:
        self.source: Mapping[str, int] = {}

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            f"{PREFIX}_api_requests",
            "Requests the controller's API client sent to the API server, by HTTP verb",
            labels=["verb"],
        )
        for verb, n in sorted(dict(self.source).items()):
            family.add_metric([verb], n)
        yield family


@dataclass
class Metrics:
    """One registry per controller (tests make their own)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    server: WSGIServer | None = None

    def __post_init__(self) -> None:
        r = self.registry
        self.phases = _Phases()
        self.api = _ApiRequests()
        r.register(self.phases)
        r.register(self.api)
        prometheus_client.ProcessCollector(registry=r)
        self.started = Counter(
            f"{PREFIX}_releases_started", "Releases started", ROLLOUT, registry=r
        )
        self.ended = Counter(
            f"{PREFIX}_releases",
            "Releases ended, by result: succeeded, failed, aborted, rolled_back, released, "
            "superseded",
            (*ROLLOUT, "result"),
            registry=r,
        )
        self.failures = Counter(
            f"{PREFIX}_release_failures",
            "Step failures (status.failureReason), whether the release then aborted or paused",
            (*ROLLOUT, "reason"),
            registry=r,
        )
        self.release_seconds = Histogram(
            f"{PREFIX}_release_duration_seconds",
            "From a successful release's start to its end",
            APP,
            buckets=LONG_BUCKETS,
            registry=r,
        )
        self.step_seconds = Histogram(
            f"{PREFIX}_step_duration_seconds",
            "From a step's start to the start of the next step (or of the completion)",
            ("namespace",),
            buckets=LONG_BUCKETS,
            registry=r,
        )
        self.approval_seconds = Histogram(
            f"{PREFIX}_approval_wait_seconds",
            "From a step waiting for approval to its approval",
            ("namespace",),
            buckets=LONG_BUCKETS,
            registry=r,
        )
        self.restore_seconds = Histogram(
            f"{PREFIX}_time_to_restore_seconds",
            "From the first failure after a successful release to the next successful release",
            APP,
            buckets=RESTORE_BUCKETS,
            registry=r,
        )
        self.measurements = Counter(
            f"{PREFIX}_analysis_measurements",
            "Analysis measurements, by metric and verdict (Passed, Failed, NoData, Error)",
            (*APP, "metric", "verdict"),
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "One reconcile pass of a release loop (observe, decide, act, write the status)",
            buckets=PASS_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = Counter(
            f"{PREFIX}_reconcile_errors",
            "Reconcile passes that failed: api (the API server refused or was unreachable; "
            "retried in 2 s) or internal (a bug; retried in 30 s)",
            ("error",),
            registry=r,
        )
        self.hold_seconds = Histogram(
            f"{PREFIX}_webhook_hold_duration_seconds",
            "Time the controller took to answer one hold admission request, by workload kind",
            ("kind",),
            buckets=HOLD_BUCKETS,
            registry=r,
        )
        # Series that exist before their first event, so increase() and rate() see it (a
        # counter that appears at 1 reads as no increase).
        for error in ("api", "internal"):
            self.reconcile_errors.labels(error)
        for kind in sorted({k.kind for k in registry.REGISTRY}):
            self.hold_seconds.labels(kind)
        self._seen: set[Subject] = set()
        self.loops = Gauge(
            f"{PREFIX}_release_loops",
            "Release loops (Kopf daemons, one per ProgressiveRollout) running",
            registry=r,
        )

    # ------------------------------------------------------------------ recording
    def count_api_requests(self, requests: Mapping[str, int]) -> None:
        self.api.source = requests

    def record(self, subject: Subject, phase: str | None, signals: Iterable[Signal]) -> None:
        """A pass whose status is written: its phase and what it did."""
        if phase:
            self.phases.set(subject.namespace, subject.rollout, phase)
        app = (subject.namespace, subject.application)
        rollout = (*app, subject.rollout)
        if subject not in self._seen:
            self._prepare(app, rollout)
            self._seen.add(subject)
        for signal in signals:
            match signal:
                case ReleaseStarted():
                    self.started.labels(*rollout).inc()
                case ReleaseEnded(result=result, seconds=seconds):
                    self.ended.labels(*rollout, result.value).inc()
                    if seconds is not None and result is Result.SUCCEEDED:
                        self.release_seconds.labels(*app).observe(seconds)
                case ReleaseFailed(reason=reason):
                    self.failures.labels(*rollout, reason).inc()
                case StepPassed(seconds=seconds):
                    self.step_seconds.labels(subject.namespace).observe(seconds)
                case ApprovalWaited(seconds=seconds):
                    self.approval_seconds.labels(subject.namespace).observe(seconds)
                case Restored(seconds=seconds):
                    self.restore_seconds.labels(*app).observe(seconds)
                case Measured(metric=metric, verdict=verdict):
                    self.measurements.labels(*app, metric, verdict).inc()

    def _prepare(self, app: tuple[str, str], rollout: tuple[str, str, str]) -> None:
        """At a rollout's first pass: its counters at 0 and its histograms empty, so the first
        release's start, end, steps and approval count in increase() and histogram_quantile()."""
        self.started.labels(*rollout)
        for result in (Result.SUCCEEDED, *FAILED_CHANGE):
            self.ended.labels(*rollout, result.value)
        self.release_seconds.labels(*app)
        self.restore_seconds.labels(*app)
        self.step_seconds.labels(app[0])
        self.approval_seconds.labels(app[0])

    @contextlib.contextmanager
    def release_loop(self, namespace: str, rollout: str) -> Iterator[None]:
        """Around a rollout's release loop: counted while it runs, its phase forgotten after."""
        self.loops.inc()
        try:
            yield
        finally:
            self.loops.dec()
            self.phases.forget(namespace, rollout)

    @contextlib.contextmanager
    def reconciling(self, api_errors: type[BaseException]) -> Iterator[None]:
        """Around one pass: its duration, and its error if it raises (re-raised)."""
        start = time.perf_counter()
        try:
            yield
        except api_errors:
            self.reconcile_errors.labels("api").inc()
            raise
        except Exception:
            self.reconcile_errors.labels("internal").inc()
            raise
        finally:
            self.reconcile_seconds.observe(time.perf_counter() - start)

    @contextlib.contextmanager
    def holding(self, kind: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.hold_seconds.labels(kind).observe(time.perf_counter() - start)

    # ------------------------------------------------------------------ serving
    def serve(self, addr: str, port: int) -> int | None:
        """Serve ``/metrics`` on ``addr:port`` (port 0: a free one) in a thread; the port, or
        ``None`` when it cannot listen (logged: the controller runs on without metrics)."""
        try:
            server, _ = prometheus_client.start_http_server(port, addr, registry=self.registry)
        except OSError as exc:
            log.warning("metrics: cannot listen on %s:%s (%s): no /metrics", addr, port, exc)
            return None
        self.server = server
        bound = int(server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", addr, bound)
        return bound

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def exposition(self) -> bytes:
        """What ``/metrics`` answers now (tests, benchmarks)."""
        return bytes(prometheus_client.generate_latest(self.registry))
