"""Blue-green releases, pure: the steps the trait compiles to, the Deployment style that keeps
the old set whole, the completion order (the old set goes while every request is on the new
one), and which set the status says serves. The real cluster runs it in
tests/integration/test_blue_green.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from vela_progressive.core import decide as d
from vela_progressive.core.model import ReleaseMode, Strategy
from vela_progressive.core.planner import plan
from vela_progressive.core.release import Operations
from vela_progressive.core.status import Ending, Phase, RolloutStatus, Stage, StepState
from vela_progressive.core.validation import validate_properties
from vela_progressive.core.workloads import WorkloadView, registry

T0 = datetime(2026, 12, 1, 12, 0, 0)
NO_OPS = Operations(approved_step=None, paused=False, aborted=False)
TEMPLATE = {"metadata": {"labels": {"app": "pay"}}, "spec": {"containers": [{"image": "v2"}]}}
STYLE = registry.style_for("Deployment", ReleaseMode.BLUE_GREEN)


def strategy(**blue_green: object) -> Strategy:
    props = validate_properties(
        {
            "releaseMode": "blueGreen",
            "blueGreen": blue_green,
            "canary": {
                "steps": [
                    {"replicas": "100%", "matches": [{"headers": [{"name": "x", "value": "g"}]}]}
                ],
                "trafficRoutings": [{"type": "ingress", "ingressName": "pay"}],
            },
        },
        component="pay",
        workload_kind="Deployment",
    )
    return Strategy.from_properties(props, "pay")


def test_the_trait_compiles_to_preview_steps_then_a_switch_that_waits_the_scale_down_delay() -> (
    None
):
    s = strategy(scaleDownDelaySeconds=45)
    assert s.release_mode is ReleaseMode.BLUE_GREEN
    steps = plan(s, "Deployment", 10).steps
    assert [(p.new_pods, p.old_pods, p.peak_pods) for p in steps] == [(10, 10, 20), (10, 10, 20)]
    assert [p.wait.describe() for p in steps] == ["approval", "45s"]
    assert [p.weight for p in steps] == [None, 100]
    assert steps[0].matches, "the preview routes by header"


def test_auto_promotion_replaces_the_approval_of_the_last_preview_step() -> None:
    assert [
        p.wait.describe() for p in plan(strategy(autoPromotionSeconds=20), "Deployment", 4).steps
    ] == [
        "20s",
        "30s",
    ]
    assert plan(strategy(autoPromotion=True), "Deployment", 4).steps[0].wait.describe() == "-"


def test_a_step_keeps_the_stable_replicaset_whole_and_scales_only_the_new_one() -> None:
    obs = STYLE.example("pay", "pay", 10, TEMPLATE, 4, 10)
    view = STYLE.view(obs, None)
    writes = STYLE.scale_to(obs, view, 10, surge_ready=True)
    scaled = {
        w.name: (w.body or {}).get("spec", {}).get("replicas")
        for w in writes
        if w.kind == "ReplicaSet"
    }
    assert list(scaled.values()) == [10], "only the new ReplicaSet moves, to 10"
    assert not any(n.endswith(str(view.stable_revision)) for n in scaled)


def _view(**kw: object) -> WorkloadView:
    base = WorkloadView(
        kind="Deployment",
        name="pay",
        namespace="pay",
        replicas=10,
        update_revision="v2",
        stable_revision="v1",
        new_pods=10,
        new_ready=10,
        old_pods=10,
        held=True,
        settled=True,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _rollout(s: Strategy) -> d.Rollout:
    return d.Rollout("pay", "pay", "pay", "pay-v2", "Deployment", 1, s)


def test_completion_removes_the_old_set_before_the_routes_go_back_to_the_stable_service() -> None:
    s = strategy(scaleDownDelaySeconds=0)
    status = RolloutStatus(
        phase=Phase.PROGRESSING,
        stable_revision="v1",
        canary_revision="v2",
        current_step=2,
        total_steps=2,
        step_state=StepState.WAITING,
        step_started_at=T0,
        waiting_since=T0,
        traffic_step=2,
        current_weight=100,
        observed_revision="pay-v2",
    )
    obs = d.Observation(workload=_view(), canary_ready=10)
    decision = d.decide(status, _rollout(s), obs, NO_OPS, T0 + timedelta(seconds=10))
    assert decision.status.ending is Ending.COMPLETING
    assert decision.status.ending_stage is Stage.PODS
    assert [type(a).__name__ for a in decision.actions if not isinstance(a, d.PostEvent)] == [
        "HandBack"
    ]
    assert decision.status.message.startswith("green (new) serves")
    # handed back (the old ReplicaSet at zero): now the Services and routes
    done = d.Observation(workload=_view(old_pods=0, held=False), handed_back=True)
    later = d.decide(decision.status, _rollout(s), done, NO_OPS, T0 + timedelta(seconds=11))
    assert later.status.ending_stage is Stage.UNPIN
    assert "UnpinServices" in [type(a).__name__ for a in later.actions]


def test_before_the_switch_the_status_says_the_old_set_serves() -> None:
    assert (
        d.serving_set(RolloutStatus(current_weight=0))
        == "blue (old) serves, green (new) in preview"
    )
