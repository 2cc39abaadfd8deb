"""Benchmark of the controller's ``/metrics`` endpoint with N rollouts' worth of series.

Fills a :class:`vela_progressive.shell.metrics.Metrics` registry as N rollouts (one application
each, spread over 50 namespaces) that have each had a failed and a successful release would:
every per-rollout and per-application series exists, analysis measurements of two metrics with
two verdicts, step and approval observations, API requests and hold webhook calls. Then serves
it on 127.0.0.1 (the controller's own server: ``prometheus-client``'s threaded HTTP server) and
times GETs of ``/metrics`` over one keep-alive-free connection each, as a scraper does.
Prints the series count, the response size, the CPU time one exposition takes (less sensitive to
the machine's load than the wall time), and the median and p99 response time, last
``metrics: N rollouts, S series, B bytes, median X ms, p99 Y ms``.

    .venv/bin/python hack/bench/metrics_bench.py [--rollouts 1000] [--requests 100]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import time
from collections import Counter

from vela_progressive.core import telemetry as t
from vela_progressive.shell.metrics import Metrics, Subject


def populate(metrics: Metrics, rollouts: int) -> None:
    requests: Counter[str] = Counter({"GET": 10_000_000, "PATCH": 900_000, "LIST": 1_000})
    metrics.count_api_requests(requests)
    for i in range(rollouts):
        subject = Subject(f"team-{i % 50}", f"app-{i}", f"web-{i}")
        metrics.record(
            subject,
            "Failed",
            [
                t.ReleaseStarted(),
                t.Measured("error-rate", "Passed"),
                t.Measured("error-rate", "Failed"),
                t.Measured("latency-p99", "Passed"),
                t.ReleaseFailed("AnalysisFailed"),
                t.ReleaseEnded(t.Result.FAILED, 300.0),
            ],
        )
        metrics.record(
            subject,
            "Healthy" if i % 10 else "Progressing",
            [
                t.ReleaseStarted(),
                t.StepPassed(1, 120.0),
                t.ApprovalWaited(2, 600.0),
                t.StepPassed(2, 650.0),
                t.StepPassed(3, 30.0),
                t.ReleaseEnded(t.Result.SUCCEEDED, 800.0),
                t.Restored(1500.0),
            ],
        )
    for _ in range(1000):
        with metrics.holding("Deployment"):
            pass
        with metrics.reconciling(Exception):
            pass


def get(port: int) -> tuple[float, int]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    assert answer.status == 200, answer.status
    return time.perf_counter() - start, len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    metrics = Metrics()
    took = time.perf_counter()
    populate(metrics, args.rollouts)
    print(f"populated {args.rollouts} rollouts in {time.perf_counter() - took:.2f}s")
    series = sum(
        1
        for line in metrics.exposition().decode().splitlines()
        if line and not line.startswith("#")
    )
    cpu = time.process_time()
    for _ in range(10):
        metrics.exposition()
    cpu_ms = (time.process_time() - cpu) * 100  # per exposition, in ms
    port = metrics.serve("127.0.0.1", 0)
    assert port is not None
    try:
        get(port)  # warm-up
        times, size = [], 0
        for _ in range(args.requests):
            seconds, size = get(port)
            times.append(seconds * 1000)
    finally:
        metrics.close()
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * len(times)) - 1)]
    print(f"{args.requests} GETs: min {times[0]:.1f} ms, max {times[-1]:.1f} ms")
    print(f"CPU time to build one exposition: {cpu_ms:.0f} ms (mean of 10)")
    print(
        f"metrics: {args.rollouts} rollouts, {series} series, {size} bytes, "
        f"median {statistics.median(times):.1f} ms, p99 {p99:.1f} ms"
    )


if __name__ == "__main__":
    main()
