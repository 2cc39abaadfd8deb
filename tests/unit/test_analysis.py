"""Metric analysis in the pure core: validation, queries, judgement, and the gates of ``decide``.

The real-cluster tier runs the same behaviour against the test world's Prometheus and traffic
simulator; here the answers Prometheus would give are fed in directly.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from vela_progressive.cli import status as status_cli
from vela_progressive.core import decide as d
from vela_progressive.core.analysis.judge import Result, Verdict, judge
from vela_progressive.core.analysis.queries import (
    example_targets,
    queries_for,
    with_routing,
)
from vela_progressive.core.analysis.spec import Metric
from vela_progressive.core.model import Strategy
from vela_progressive.core.release import Operations
from vela_progressive.core.status import Gate, Phase, RolloutStatus, StepState
from vela_progressive.core.validation import InvalidSpec, validate_properties
from vela_progressive.core.workloads import WorkloadView
from vela_progressive.shell.prometheus import auth_headers, parse

T0 = datetime(2026, 12, 1, 12, 0, 0)
NO_OPS = Operations(approved_step=None, paused=False, aborted=False)
ERRORS = {"name": "errors", "template": "request-error-rate", "thresholdRange": {"max": 5}}


def props(*step_metrics: dict[str, Any], background: dict[str, Any] | None = None) -> Any:
    canary: dict[str, Any] = {
        "steps": [
            {"replicas": "20%", "weight": 20, "duration": 0}
            | ({"analysis": {"metrics": list(step_metrics)}} if step_metrics else {}),
            {"replicas": "100%", "weight": 100},
        ],
        "trafficRoutings": [{"type": "ingress", "ingressName": "web"}],
    }
    if background:
        canary["analysis"] = background
    return {"releaseMode": "batch", "canary": canary}


def rollout_of(properties: Any) -> d.Rollout:
    valid = validate_properties(properties, component="web", workload_kind="StatefulSet")
    strategy = Strategy.from_properties(valid, "web")
    return d.Rollout("web", "ns", "shop", "shop-v2", "StatefulSet", 1, strategy)


VIEW = WorkloadView(
    kind="StatefulSet",
    name="web",
    namespace="ns",
    replicas=10,
    update_revision="v2",
    stable_revision="v1",
    new_pods=2,
    new_ready=2,
    old_pods=8,
    held=True,
    settled=True,
)


class Release:
    """Drives ``decide`` through time; ``answer`` plays Prometheus for every due query."""

    def __init__(self, properties: Any, answer: Any) -> None:
        self.rollout = rollout_of(properties)
        self.status = RolloutStatus(
            phase=Phase.PROGRESSING,
            stable_revision="v1",
            canary_revision="v2",
            current_step=1,
            total_steps=2,
            step_state=StepState.WAITING,
            waiting_since=T0,
            traffic_step=1,
            observed_revision="shop-v2",
        )
        self.now = T0
        self.answer = answer
        self.queries = 0
        self.actions: list[d.Action] = []

    def tick(self, seconds: float = 0) -> d.Decision:
        self.now += timedelta(seconds=seconds)
        targets = with_routing(example_targets("ns", "web"), "ingress")
        taken = {}
        for due in d.due_measurements(self.status, self.rollout, targets, self.now):
            results = {}
            for query in due.queries:
                self.queries += 1
                results[query.role] = self.answer(due.metric.name, query.role)
            taken[(due.gate, due.metric.name)] = d.Taken(results, due.queries[0].promql)
        obs = d.Observation(VIEW, canary_ready=2, measurements=taken)
        decision = d.decide(self.status, self.rollout, obs, NO_OPS, self.now)
        self.status = decision.status
        self.actions.extend(decision.actions)
        return decision

    def run(self, seconds: int, every: float = 1.0) -> None:
        for _ in range(int(seconds / every)):
            self.tick(every)


# ---------------------------------------------------------------------------------- the gate
def test_a_passing_metric_lets_the_step_go_on_after_count_intervals_and_no_later() -> None:
    rel = Release(props(ERRORS), lambda name, role: Result(1.0))
    rel.tick()
    assert rel.status.step_state is StepState.ANALYSIS
    assert rel.status.current_step == 1
    rel.run(29)
    assert rel.status.current_step == 1, "three measurements at 10 s take 30 s"
    rel.tick(1)
    assert rel.status.current_step == 2
    assert rel.queries == 3
    assert [m.verdict for m in rel.status.measurements] == ["Passed"] * 3


def test_a_failing_metric_fails_the_release_and_sends_traffic_back_at_once() -> None:
    rel = Release(props(ERRORS), lambda name, role: Result(30.0))
    rel.tick()
    rel.tick(10)
    assert rel.status.phase is Phase.FAILED
    assert rel.status.failure_reason == "AnalysisFailed"
    message = rel.status.message or ""
    assert "metric errors" in message
    assert "30 is above the maximum 5" in message
    assert "nginx_ingress_controller_requests" in message  # the query
    assert any(isinstance(a, d.RestoreRoutes) for a in rel.actions)
    assert rel.status.current_step == 1


def test_failure_limit_tolerates_that_many_failed_measurements() -> None:
    tolerant = ERRORS | {"failureLimit": 1, "count": 2}
    answers = iter([30.0, 1.0, 1.0])
    rel = Release(props(tolerant), lambda name, role: Result(next(answers)))
    rel.tick()
    rel.run(30)
    assert rel.status.phase is Phase.PROGRESSING
    assert rel.status.current_step == 2


@pytest.mark.parametrize(
    ("policy", "phase", "step"),
    [("wait", Phase.PROGRESSING, 1), ("fail", Phase.FAILED, 1), ("pass", Phase.PROGRESSING, 2)],
)
def test_the_no_data_policy_decides_and_the_status_says_which_applied(
    policy: str, phase: Phase, step: int
) -> None:
    rel = Release(props(ERRORS | {"noData": policy}), lambda name, role: Result(None))
    rel.tick()
    rel.run(31)
    assert rel.status.phase is phase
    assert rel.status.current_step == step
    assert f"(noData: {policy})" in rel.status.measurements[0].message
    if policy == "wait":
        assert "analyzing (errors 0/3 passed)" in (rel.status.message or "")


def test_prometheus_unreachable_pauses_the_release_and_it_goes_on_when_prometheus_is_back() -> None:
    up = {"ok": False}

    def answer(name: str, role: str) -> Result:
        return Result(1.0) if up["ok"] else Result(error="Prometheus at http://x did not answer")

    rel = Release(props(ERRORS), answer)
    rel.tick()
    rel.run(30)  # three errors in a row: inconclusiveLimit 2 is passed
    assert rel.status.phase is Phase.PAUSED
    assert "analysis inconclusive" in (rel.status.message or "")
    assert "kubectl progressive abort shop -n ns" in (rel.status.message or "")
    events = [a for a in rel.actions if isinstance(a, d.PostEvent)]
    assert [e.reason for e in events].count("AnalysisInconclusive") == 1
    up["ok"] = True
    rel.run(10)
    assert rel.status.phase is Phase.PROGRESSING
    rel.run(30)
    assert rel.status.current_step == 2


def test_compare_with_stable_fails_a_version_a_naive_threshold_passes() -> None:
    flaky = {
        "name": "errors",
        "template": "request-error-rate",
        "thresholdRange": {"max": 5},
    }
    values = {"canary": 3.0, "stable": 1.0}
    naive = Release(props(flaky), lambda name, role: Result(values[role]))
    naive.tick()
    naive.run(30)
    assert naive.status.current_step == 2
    compared = Release(
        props(flaky | {"compareWithStable": {"maxIncrease": 1.0}}),
        lambda name, role: Result(values[role]),
    )
    compared.tick()
    compared.run(10)
    assert compared.status.phase is Phase.FAILED
    assert "worse than stable 1 by 2" in (compared.status.message or "")


def test_background_analysis_fails_a_later_step_without_gating_the_steps() -> None:
    background = {"startingStep": 1, "metrics": [ERRORS | {"interval": 5}]}
    answers = {"n": 0}

    def answer(name: str, role: str) -> Result:
        answers["n"] += 1
        return Result(1.0 if answers["n"] < 3 else 40.0)

    rel = Release(props(background=background), answer)
    rel.tick()
    assert any(r.gate is Gate.BACKGROUND for r in rel.status.analysis)
    rel.run(20)
    assert rel.status.phase is Phase.FAILED
    assert "metric errors" in (rel.status.message or "")


# ---------------------------------------------------------------------------------- judge
def test_a_query_returning_several_series_says_how_to_aggregate() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"pod": "a"}, "value": [1, "1"]},
                {"metric": {"pod": "b"}, "value": [1, "2"]},
            ],
        },
    }
    result = parse(body)
    assert result.error is not None
    assert "2 series (labels: pod)" in result.error
    assert "sum(" in result.error


def test_nan_is_no_data_and_infinity_is_an_error() -> None:
    metric = Metric("x", template="request-error-rate", max=5.0)
    assert judge(metric, {"canary": Result(float("nan"))}).verdict is Verdict.NO_DATA
    inf = judge(metric, {"canary": Result(float("inf"))})
    assert inf.verdict is Verdict.ERROR
    assert "inf" in inf.message


def test_min_samples_counts_a_quiet_version_as_no_data() -> None:
    metric = Metric("x", template="request-error-rate", max=5.0, min_samples=20)
    verdict = judge(metric, {"canary": Result(0.0), "canary-samples": Result(3.0)})
    assert verdict.verdict is Verdict.NO_DATA
    assert "served 3 requests" in verdict.message


def test_a_success_rate_is_higher_is_better_in_the_comparison() -> None:
    metric = Metric("ok", template="request-success-rate", max_increase=1.0)
    passed = judge(metric, {"canary": Result(99.5), "stable": Result(99.0)})
    failed = judge(metric, {"canary": Result(97.0), "stable": Result(99.0)})
    assert (passed.verdict, failed.verdict) == (Verdict.PASSED, Verdict.FAILED)


# ---------------------------------------------------------------------------------- queries
@pytest.mark.parametrize("source", ["nginx", "istio", "gateway", "app"])
@pytest.mark.parametrize(
    "template", ["request-success-rate", "request-error-rate", "request-duration"]
)
def test_built_in_templates_render_for_both_versions_with_the_same_window(
    source: str, template: str
) -> None:
    metric = Metric("m", template=template, source=source, max=1.0, max_increase=1.0, min_samples=5)
    queries = {q.role: q.promql for q in queries_for(metric, example_targets("shop", "web"))}
    assert set(queries) == {"canary", "stable", "canary-samples", "stable-samples"}
    assert "[10s]" in queries["canary"]
    assert queries["canary"] != queries["stable"]
    assert "{{" not in queries["canary"]


# ---------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("metric", "field", "words"),
    [
        ({"name": "m", "thresholdRange": {"max": 1}}, "metrics[0]", "exactly one of template"),
        ({"name": "m", "template": "request-error-rate"}, "metrics[0]", "nothing to judge"),
        (
            ERRORS | {"thresholdRange": {"min": 5, "max": 1}},
            "metrics[0].thresholdRange",
            "min 5 is above max 1",
        ),
        (
            {"name": "m", "query": "sum(x{a='{{ nope }}'})", "thresholdRange": {"max": 1}},
            "metrics[0].query",
            "'nope' is undefined",
        ),
        (
            {"name": "m", "query": "sum(x)", "thresholdRange": {"max": 1}, "minSamples": 3},
            "metrics[0].minSamples",
            "built-in templates only",
        ),
        (ERRORS | {"source": "gateway-mesh"}, "metrics[0].source", ""),
    ],
)
def test_invalid_analysis_is_refused_naming_the_metric_field(
    metric: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidSpec) as caught:
        validate_properties(props(metric))
    text = str(caught.value)
    assert f"canary.steps[0].analysis.{field}" in text, text
    assert words in text


def test_a_template_the_ingress_class_cannot_serve_is_refused() -> None:
    properties = props(ERRORS)
    properties["canary"]["trafficRoutings"] = [{"type": "ingress", "ingressClass": "aliyun-alb"}]
    with pytest.raises(InvalidSpec, match="set source: app"):
        validate_properties(properties)


def test_two_metrics_of_one_analysis_cannot_share_a_name() -> None:
    with pytest.raises(InvalidSpec, match="also the name of metrics"):
        validate_properties(props(ERRORS, ERRORS))


def test_the_analysis_status_round_trips() -> None:
    rel = Release(props(ERRORS), lambda name, role: Result(1.0))
    rel.tick()
    rel.run(12)
    raw = rel.status.to_dict()
    again = RolloutStatus.from_dict(raw, T0)
    assert again.to_dict() == raw
    assert raw["measurements"][0]["value"] == "1"
    assert again == rel.status


@pytest.mark.parametrize("answer", [Result(1.0), Result(None), Result(error="timeout")])
def test_the_analysis_status_has_no_null_the_api_server_would_drop(answer: Result) -> None:
    # A null inside a status list is dropped by the API server; a status carrying one never
    # equals what the server kept, so every pass would write it again.
    rel = Release(props(ERRORS), lambda name, role: answer)
    rel.tick()
    rel.run(3)
    raw = rel.status.to_dict()
    for key in ("analysis", "measurements", "plan", "timeline", "conditions"):
        for item in raw.get(key) or ():
            assert None not in item.values(), (key, item)


def test_kubectl_progressive_status_shows_the_measurements_as_a_table() -> None:
    rel = Release(props(ERRORS), lambda name, role: Result(1.02))
    rel.tick()
    rel.run(20)
    cr = {
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"workloadRef": {"kind": "StatefulSet", "name": "web"}, "revision": {"name": "v2"}},
        "status": rel.status.to_dict(),
    }
    text = status_cli.render(cr, "shop")
    assert "METRIC  STEP  VALUE  STABLE  THRESHOLD  VERDICT  TIME" in text
    assert "errors  1     1.02   -       max 5      Passed" in text


# ---------------------------------------------------------------------------------- webhooks
def _hooked(kind: str) -> Any:
    properties = props()
    properties["canary"]["webhooks"] = [{"name": "check", "type": kind, "url": "http://gate"}]
    return properties


def _tick_with_hooks(rel: Release, ok: bool, seconds: float = 0) -> d.Decision:
    rel.now += timedelta(seconds=seconds)
    answers = {
        hook.name: d.HookAnswer(ok, "HTTP 200" if ok else "HTTP 500: not today")
        for hook, _ in d.due_webhooks(rel.status, rel.rollout, rel.now)
    }
    obs = d.Observation(VIEW, canary_ready=2, webhooks=answers)
    decision = d.decide(rel.status, rel.rollout, obs, NO_OPS, rel.now)
    rel.status = decision.status
    rel.actions.extend(decision.actions)
    return decision


def test_a_rollout_webhook_answering_500_holds_its_step_and_200_lets_it_go() -> None:
    rel = Release(_hooked("rollout"), lambda name, role: Result(1.0))
    for _ in range(3):
        _tick_with_hooks(rel, ok=False, seconds=10)
    assert rel.status.current_step == 1
    assert "waiting for the rollout webhook check (HTTP 500: not today)" in (
        rel.status.message or ""
    )
    assert rel.status.measurements[-1].verdict == "Failed"
    _tick_with_hooks(rel, ok=True, seconds=10)
    _tick_with_hooks(rel, ok=True)
    assert rel.status.current_step == 2


def test_a_pre_rollout_webhook_holds_the_first_pod_until_it_answers_2xx() -> None:
    rel = Release(_hooked("pre-rollout"), lambda name, role: Result(1.0))
    rel.status = replace(
        rel.status, step_state=StepState.UPGRADING, traffic_step=0, waiting_since=None
    )
    empty = replace(VIEW, new_pods=0, new_ready=0, old_pods=10)

    def tick(ok: bool, seconds: float) -> d.Decision:
        rel.now += timedelta(seconds=seconds)
        due = d.due_webhooks(rel.status, rel.rollout, rel.now)
        answers = {h.name: d.HookAnswer(ok, "HTTP 503") for h, _ in due}
        obs = d.Observation(empty, webhooks=answers)
        decision = d.decide(rel.status, rel.rollout, obs, NO_OPS, rel.now)
        rel.status = decision.status
        return decision

    for _ in range(3):
        decision = tick(False, 10)
        assert not any(isinstance(a, d.ScaleTo) for a in decision.actions)
    decision = tick(True, 10)
    decision = tick(True, 0)
    assert any(isinstance(a, d.ScaleTo) for a in decision.actions)


def test_post_rollout_webhooks_are_told_when_the_release_completed() -> None:
    rel = Release(_hooked("post-rollout"), lambda name, role: Result(1.0))
    rel.status = replace(rel.status, current_step=2, traffic_step=2)
    full = replace(VIEW, new_pods=10, new_ready=10, old_pods=0)
    for seconds in (0, 6, 6, 1, 1):
        rel.now += timedelta(seconds=seconds)
        obs = d.Observation(full, canary_ready=10, handed_back=True)
        decision = d.decide(rel.status, rel.rollout, obs, NO_OPS, rel.now)
        rel.status = decision.status
        rel.actions.extend(decision.actions)
        if rel.status.phase is Phase.HEALTHY:
            break
    told = [a for a in rel.actions if isinstance(a, d.NotifyWebhook)]
    assert rel.status.phase is Phase.HEALTHY
    assert len(told) == 1
    assert told[0].body["type"] == "post-rollout"


def test_prometheus_credentials_are_read_from_the_secret_and_a_missing_key_is_named() -> None:
    token = {"data": {"token": "czNjcmV0Cg=="}}  # "s3cret\n": a trailing newline is dropped
    assert auth_headers(token, "bearer", "p") == {"Authorization": "Bearer s3cret"}
    basic = {"data": {"username": "YWxpY2U=", "password": "cHc="}}  # alice / pw
    assert auth_headers(basic, "basic", "p") == {"Authorization": "Basic YWxpY2U6cHc="}
    assert "needs the keys username and password" in str(auth_headers(token, "basic", "p"))
    assert "not found" in str(auth_headers(None, "bearer", "p"))
