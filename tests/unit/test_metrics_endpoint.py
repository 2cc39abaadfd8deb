"""The controller's ``/metrics``: signals become samples under their documented names."""

from __future__ import annotations

import re
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vela_progressive.core import telemetry as t
from vela_progressive.shell.kube import KubeError
from vela_progressive.shell.metrics import Metrics, Subject

WEB = Subject("shop", "shop-app", "web")


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, frozenset(labels.items())), 0.0)


def test_a_release_counts_start_end_steps_approvals_and_measurements_per_application() -> None:
    m = Metrics()
    m.record(WEB, "Progressing", [t.ReleaseStarted(), t.Measured("errors", "Passed")])
    m.record(WEB, "Progressing", [t.ApprovalWaited(1, 40.0), t.StepPassed(1, 50.0)])
    m.record(WEB, "Healthy", [t.StepPassed(2, 10.0), t.ReleaseEnded(t.Result.SUCCEEDED, 60.0)])
    rollout = {"namespace": "shop", "application": "shop-app", "rollout": "web"}
    app = {"namespace": "shop", "application": "shop-app"}
    assert value(m, "vela_progressive_releases_started_total", **rollout) == 1
    assert value(m, "vela_progressive_releases_total", **rollout, result="succeeded") == 1
    # Steps and approvals by namespace; releases and restores by application.
    assert value(m, "vela_progressive_step_duration_seconds_count", namespace="shop") == 2
    assert value(m, "vela_progressive_step_duration_seconds_sum", namespace="shop") == 60
    assert value(m, "vela_progressive_approval_wait_seconds_sum", namespace="shop") == 40
    assert value(m, "vela_progressive_release_duration_seconds_count", **app) == 1
    assert value(
        m, "vela_progressive_analysis_measurements_total", **app, metric="errors", verdict="Passed"
    )
    assert value(m, "vela_progressive_rollouts", namespace="shop", phase="Healthy") == 1
    assert value(m, "vela_progressive_rollouts", namespace="shop", phase="Progressing") == 0


def test_a_failure_then_a_restore_feed_the_change_failure_rate_and_time_to_restore() -> None:
    m = Metrics()
    m.record(WEB, "Failed", [t.ReleaseFailed("AnalysisFailed")])
    m.record(WEB, "Failed", [t.ReleaseEnded(t.Result.FAILED, 30.0)])
    m.record(WEB, "Healthy", [t.ReleaseEnded(t.Result.SUCCEEDED, 20.0), t.Restored(300.0)])
    rollout = {"namespace": "shop", "application": "shop-app", "rollout": "web"}
    assert value(m, "vela_progressive_releases_total", **rollout, result="failed") == 1
    assert (
        value(m, "vela_progressive_release_failures_total", **rollout, reason="AnalysisFailed") == 1
    )
    app = {"namespace": "shop", "application": "shop-app"}
    assert value(m, "vela_progressive_time_to_restore_seconds_sum", **app) == 300
    # Only successful releases have a duration (the lead time of a change).
    assert value(m, "vela_progressive_release_duration_seconds_count", **app) == 1
    assert value(m, "vela_progressive_release_duration_seconds_sum", **app) == 20


def test_phases_count_each_rollout_once_and_forget_it_when_its_loop_ends() -> None:
    m = Metrics()
    with m.release_loop("shop", "web"):
        m.record(WEB, "Progressing", [])
        m.record(WEB, "Paused", [])
        m.record(Subject("shop", "other", "api"), "Paused", [])
        assert value(m, "vela_progressive_release_loops") == 1
        assert value(m, "vela_progressive_rollouts", namespace="shop", phase="Paused") == 2
    assert value(m, "vela_progressive_release_loops") == 0
    assert value(m, "vela_progressive_rollouts", namespace="shop", phase="Paused") == 1


def test_reconcile_passes_are_timed_and_their_errors_counted_by_kind() -> None:
    m = Metrics()
    with m.reconciling(KubeError):
        pass
    with pytest.raises(KubeError), m.reconciling(KubeError):
        raise KubeError(409, "Conflict", "try again")
    with pytest.raises(RuntimeError), m.reconciling(KubeError):
        raise RuntimeError("a bug")
    assert value(m, "vela_progressive_reconcile_duration_seconds_count") == 3
    assert value(m, "vela_progressive_reconcile_errors_total", error="api") == 1
    assert value(m, "vela_progressive_reconcile_errors_total", error="internal") == 1


def test_api_requests_are_read_from_the_clients_own_counter_at_each_scrape() -> None:
    m = Metrics()
    requests: Counter[str] = Counter()
    m.count_api_requests(requests)
    requests["GET"] += 3
    requests["PATCH"] += 1
    assert value(m, "vela_progressive_api_requests_total", verb="GET") == 3
    requests["GET"] += 1
    assert value(m, "vela_progressive_api_requests_total", verb="GET") == 4


def test_the_endpoint_serves_the_registry_on_its_own_port() -> None:
    m = Metrics()
    port = m.serve("127.0.0.1", 0)
    assert port
    try:
        with m.holding("Deployment"):
            pass
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            body = answer.read().decode()
        assert 'vela_progressive_webhook_hold_duration_seconds_count{kind="Deployment"} 1.0' in body
        assert "process_resident_memory_bytes" in body
        # Every metric of ours carries the prefix, and no *_created series doubles them.
        ours = {n for n in re.findall(r"^# TYPE (\S+)", body, re.M) if "process" not in n}
        assert all(n.startswith("vela_progressive_") for n in ours), ours
        assert "_created" not in body
    finally:
        m.close()


def test_a_port_in_use_leaves_the_controller_running_without_metrics() -> None:
    first = Metrics()
    port = first.serve("127.0.0.1", 0)
    try:
        assert Metrics().serve("127.0.0.1", port or 0) is None
    finally:
        first.close()
