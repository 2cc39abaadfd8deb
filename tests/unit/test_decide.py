"""The pure decision function: a table of transitions, and properties over random histories.

``decide`` is fed a status, an observation, the operations and the time, and returns the next
status and the actions. The table pins one transition per row; the property test drives a small
simulated workload with random sequences of clock ticks, pods becoming Ready, canary endpoints,
approvals, pauses and aborts, and checks what must hold whatever happens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vela_progressive.core import decide as d
from vela_progressive.core.model import Step, Strategy, TrafficRouting
from vela_progressive.core.release import Operations
from vela_progressive.core.status import Ending, Phase, RolloutStatus, Stage, StepState
from vela_progressive.core.workloads import WorkloadView

T0 = datetime(2026, 12, 1, 12, 0, 0)
NO_OPS = Operations(approved_step=None, paused=False, aborted=False)
ROUTE = TrafficRouting(type="ingress", service="web", ingress_name="web", grace_period_seconds=5)


def strategy(*steps: Step, routed: bool = True, on_failure: str = "abort") -> Strategy:
    return Strategy(
        steps=steps,
        routings=(ROUTE,) if routed else (),
        progress_deadline_seconds=60,
        on_failure=on_failure,
    )


THREE_STEPS = strategy(
    Step(replicas="20%", weight=20), Step(replicas="50%", weight=50), Step(replicas="100%")
)


def rollout(s: Strategy | None = THREE_STEPS, error: str | None = None) -> d.Rollout:
    return d.Rollout(
        name="web",
        namespace="ns",
        application="shop",
        revision="shop-v2",
        kind="StatefulSet",
        generation=1,
        strategy=s,
        spec_error=error,
    )


def view(new: int = 0, ready: int | None = None, old: int = 10, **kw: object) -> WorkloadView:
    base = WorkloadView(
        kind="StatefulSet",
        name="web",
        namespace="ns",
        replicas=10,
        update_revision="v2",
        stable_revision="v1",
        new_pods=new,
        new_ready=new if ready is None else ready,
        old_pods=old,
        held=True,
        settled=True,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def releasing(**kw: object) -> RolloutStatus:
    base = RolloutStatus(
        phase=Phase.PROGRESSING,
        stable_revision="v1",
        canary_revision="v2",
        current_step=1,
        total_steps=3,
        step_state=StepState.UPGRADING,
        step_started_at=T0,
        observed_revision="shop-v2",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


DEFAULT_ROLLOUT = rollout()


def kinds(decision: d.Decision) -> list[str]:
    return [type(a).__name__ for a in decision.actions if not isinstance(a, d.PostEvent)]


# ---------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Row:
    name: str
    status: RolloutStatus
    obs: d.Observation
    ops: Operations = NO_OPS
    now: datetime = T0
    rollout: d.Rollout = DEFAULT_ROLLOUT
    # expectations
    actions: tuple[str, ...] = ()
    phase: Phase | None = None
    state: StepState | None = None
    step: int | None = None
    ending: Ending | None = None
    stage: Stage | None = None
    requeue: float | None = None


ROWS = [
    Row(
        "an invalid spec fails without acting",
        RolloutStatus(),
        d.Observation(view()),
        rollout=rollout(None, "canary.steps[0].weight: needs a trafficRouting"),
        phase=Phase.FAILED,
        requeue=d.IDLE,
    ),
    Row(
        "steps that shrink at the workload's size fail as an invalid spec, acting on nothing",
        RolloutStatus(phase=Phase.HEALTHY, stable_revision="v1"),
        d.Observation(view()),
        rollout=rollout(strategy(Step(replicas=6), Step(replicas="50%"), routed=False)),
        phase=Phase.FAILED,
        requeue=d.IDLE,
    ),
    Row(
        "a missing workload waits",
        RolloutStatus(),
        d.Observation(None, missing="StatefulSet ns/web not found"),
        phase=Phase.INITIALIZING,
        requeue=d.WAITING,
    ),
    Row(
        "an unsettled workload is not judged",
        releasing(),
        d.Observation(view(settled=False)),
        phase=Phase.PROGRESSING,
        state=StepState.UPGRADING,
        requeue=d.ACTIVE,
    ),
    Row(
        "every pod on the current revision is healthy",
        RolloutStatus(),
        d.Observation(view(new=10, old=0, held=False, stable_revision=None)),
        phase=Phase.HEALTHY,
        requeue=d.IDLE,
    ),
    Row(
        "a held template change starts step 1",
        RolloutStatus(phase=Phase.HEALTHY, stable_revision="v1"),
        d.Observation(view()),
        phase=Phase.PROGRESSING,
        state=StepState.UPGRADING,
        step=1,
        requeue=d.NOW,
    ),
    Row(
        "a change the webhook missed is held first",
        RolloutStatus(phase=Phase.HEALTHY, stable_revision="v1"),
        d.Observation(view(held=False)),
        actions=("Hold",),
        phase=Phase.PROGRESSING,
        step=1,
    ),
    Row(
        "the first revision rolling out is handed back",
        RolloutStatus(),
        d.Observation(view(new=3, old=0, stable_revision=None)),
        actions=("HandBack",),
        phase=Phase.INITIALIZING,
    ),
    Row(
        "a released revision whose pods are coming back stays healthy and starts nothing",
        RolloutStatus(phase=Phase.HEALTHY, stable_revision="v2", message="released v2"),
        d.Observation(view(new=7, old=0, held=False, stable_revision=None)),
        actions=(),
        phase=Phase.HEALTHY,
        requeue=d.IDLE,
    ),
    Row(
        "upgrading pins the Services and scales",
        releasing(),
        d.Observation(view()),
        actions=("PrepareServices", "ScaleTo"),
        state=StepState.UPGRADING,
        requeue=d.ACTIVE,
    ),
    Row(
        "upgrading with every input watched waits to be woken, not a pass a second",
        releasing(),
        d.Observation(view(), watched=True),
        actions=("PrepareServices", "ScaleTo"),
        state=StepState.UPGRADING,
        requeue=d.WAITING,
    ),
    Row(
        "upgrading with every input watched still looks again at the progress deadline",
        releasing(),
        d.Observation(view(), watched=True),
        now=T0 + timedelta(seconds=55),
        actions=("PrepareServices", "ScaleTo"),
        state=StepState.UPGRADING,
        requeue=6.0,  # the 60 s deadline, then one ACTIVE so that it has passed
    ),
    Row(
        "an unsettled watched workload waits for its controller's status to wake it",
        releasing(),
        d.Observation(view(settled=False), watched=True),
        state=StepState.UPGRADING,
        requeue=d.WAITING,
    ),
    Row(
        "a route that cannot be applied keeps every pod where it is",
        releasing(),
        d.Observation(view(), traffic_problem="ingress: Ingress ns/web has no rule for web"),
        state=StepState.UPGRADING,
        step=1,
        requeue=d.WAITING,
    ),
    Row(
        "Ready pods move on to traffic",
        releasing(),
        d.Observation(view(new=2, old=8)),
        state=StepState.TRAFFIC,
        requeue=d.NOW,
    ),
    Row(
        "no weight while the canary Service has no Ready endpoint",
        releasing(step_state=StepState.TRAFFIC),
        d.Observation(view(new=2, old=8), canary_ready=0),
        state=StepState.TRAFFIC,
        requeue=d.ACTIVE,
    ),
    Row(
        "a Ready canary endpoint lets the weight move",
        releasing(step_state=StepState.TRAFFIC),
        d.Observation(view(new=2, old=8), canary_ready=2),
        actions=("Route",),
        state=StepState.WAITING,
        requeue=5.0,
    ),
    Row(
        "after the grace period the step waits for approval",
        releasing(step_state=StepState.WAITING, waiting_since=T0, traffic_step=1),
        d.Observation(view(new=2, old=8)),
        state=StepState.APPROVAL,
        requeue=d.WAITING,
    ),
    Row(
        "an approval starts the next step",
        releasing(step_state=StepState.APPROVAL, waiting_since=T0, traffic_step=1),
        d.Observation(view(new=2, old=8)),
        ops=Operations(approved_step=1, paused=False, aborted=False),
        state=StepState.UPGRADING,
        step=2,
        requeue=d.NOW,
    ),
    Row(
        "an approval for another step approves nothing",
        releasing(step_state=StepState.APPROVAL, waiting_since=T0),
        d.Observation(view(new=2, old=8)),
        ops=Operations(approved_step=2, paused=False, aborted=False),
        state=StepState.APPROVAL,
        step=1,
    ),
    Row(
        "a drifted workload goes back to upgrading the same step",
        releasing(step_state=StepState.APPROVAL, waiting_since=T0),
        d.Observation(view(new=1, old=9)),
        actions=("PrepareServices", "ScaleTo"),
        state=StepState.UPGRADING,
        step=1,
    ),
    Row(
        "a pause holds the step",
        releasing(step_state=StepState.WAITING, waiting_since=T0),
        d.Observation(view(new=2, old=8)),
        ops=Operations(approved_step=None, paused=True, aborted=False),
        phase=Phase.PAUSED,
        requeue=d.WAITING,
    ),
    Row(
        "the last step passed starts completing: Services unpinned first",
        releasing(current_step=3, step_state=StepState.WAITING, waiting_since=T0, traffic_step=2),
        d.Observation(view(new=10, old=0)),
        ops=Operations(approved_step=3, paused=False, aborted=False),
        actions=("UnpinServices",),
        ending=Ending.COMPLETING,
        stage=Stage.UNPIN,
        state=StepState.COMPLETED,
    ),
    Row(
        "completing restores the routes after the grace period",
        releasing(
            current_step=3,
            step_state=StepState.COMPLETED,
            ending=Ending.COMPLETING,
            ending_stage=Stage.UNPIN,
            stage_started_at=T0,
        ),
        d.Observation(view(new=10, old=0)),
        now=T0 + timedelta(seconds=5),
        actions=("RestoreRoutes",),
        stage=Stage.ROUTES,
    ),
    Row(
        "completing hands the workload back after the routes settled",
        releasing(
            current_step=3,
            step_state=StepState.COMPLETED,
            ending=Ending.COMPLETING,
            ending_stage=Stage.ROUTES,
            stage_started_at=T0,
        ),
        d.Observation(view(new=10, old=0)),
        now=T0 + timedelta(seconds=5),
        actions=("HandBack",),
        stage=Stage.PODS,
    ),
    Row(
        "a finished hand-back restores the Services, ends healthy and spends the operations",
        releasing(
            current_step=3,
            ending=Ending.COMPLETING,
            ending_stage=Stage.PODS,
            stage_started_at=T0,
        ),
        d.Observation(view(new=10, old=0, held=False), handed_back=True),
        actions=("RestoreServices", "ClearOperations"),
        phase=Phase.HEALTHY,
        requeue=d.IDLE,
    ),
    Row(
        "abort restores the routes and nothing else first",
        releasing(step_state=StepState.WAITING, waiting_since=T0, traffic_step=1),
        d.Observation(view(new=2, old=8)),
        ops=Operations(approved_step=None, paused=False, aborted=True),
        actions=("RestoreRoutes",),
        ending=Ending.ABORTING,
        stage=Stage.ROUTES,
        requeue=5.0,
    ),
    Row(
        "abort moves the pods after the grace period, Services still pinned",
        releasing(ending=Ending.ABORTING, ending_stage=Stage.ROUTES, stage_started_at=T0),
        d.Observation(view(new=2, old=8)),
        ops=Operations(approved_step=None, paused=False, aborted=True),
        now=T0 + timedelta(seconds=5),
        actions=("AbortPods",),
        stage=Stage.PODS,
    ),
    Row(
        "abort restores the Services once every pod is back",
        releasing(ending=Ending.ABORTING, ending_stage=Stage.PODS, stage_started_at=T0),
        d.Observation(view(new=0, old=10)),
        ops=Operations(approved_step=None, paused=False, aborted=True),
        actions=("RestoreServices",),
        phase=Phase.ABORTED,
        stage=Stage.DONE,
    ),
    Row(
        "a finished abort does nothing more",
        releasing(phase=Phase.ABORTED, ending=Ending.ABORTING, ending_stage=Stage.DONE),
        d.Observation(view(new=0, old=10)),
        ops=Operations(approved_step=None, paused=False, aborted=True),
        phase=Phase.ABORTED,
        requeue=d.WAITING,
    ),
    Row(
        "a passed progress deadline fails and aborts (onFailure: abort)",
        releasing(traffic_step=1, step_started_at=T0),
        d.Observation(view(new=2, ready=0, old=8)),
        now=T0 + timedelta(seconds=61),
        actions=("RestoreRoutes",),
        phase=Phase.FAILED,
        ending=Ending.ABORTING,
    ),
    Row(
        "a passed progress deadline holds everything (onFailure: pause)",
        releasing(traffic_step=1, step_started_at=T0),
        d.Observation(view(new=2, ready=0, old=8)),
        now=T0 + timedelta(seconds=61),
        rollout=rollout(replace(THREE_STEPS, on_failure="pause")),
        phase=Phase.FAILED,
        requeue=d.WAITING,
    ),
    Row(
        "a failed abort ends Failed, not Aborted",
        releasing(
            phase=Phase.FAILED,
            failure_reason="Unschedulable",
            ending=Ending.ABORTING,
            ending_stage=Stage.PODS,
        ),
        d.Observation(view(new=0, old=10)),
        actions=("RestoreServices",),
        phase=Phase.FAILED,
        stage=Stage.DONE,
    ),
    Row(
        "retry restarts the failed step",
        releasing(phase=Phase.FAILED, failure_reason="Unschedulable"),
        d.Observation(view(new=0, old=10)),
        ops=Operations(approved_step=None, paused=False, aborted=False, retry=1),
        phase=Phase.PROGRESSING,
        state=StepState.UPGRADING,
        step=1,
    ),
    Row(
        "a retry already made does not retry again",
        releasing(phase=Phase.FAILED, failure_reason="Unschedulable", retries=1),
        d.Observation(view(new=0, old=10)),
        ops=Operations(approved_step=None, paused=False, aborted=False, retry=1),
        phase=Phase.FAILED,
    ),
    Row(
        "a newer revision restores moved routes before restarting at step 1",
        releasing(current_step=2, step_state=StepState.APPROVAL, traffic_step=2),
        d.Observation(view(new=5, old=5, update_revision="v3")),
        actions=("RestoreRoutes",),
        state=StepState.UPGRADING,
        step=1,
    ),
    Row(
        "a revision equal to the stable one rolls back: routes first",
        releasing(current_step=2, step_state=StepState.APPROVAL, traffic_step=2),
        d.Observation(view(new=5, old=5, update_revision="v1")),
        actions=("RestoreRoutes",),
        ending=Ending.ROLLING_BACK,
        stage=Stage.ROUTES,
    ),
    Row(
        "a workload that lost the hold label is handed back (trait removed)",
        releasing(step_state=StepState.APPROVAL, traffic_step=1),
        d.Observation(view(new=2, old=8, governed=False, app_revision="shop-v3")),
        actions=("UnpinServices",),
        ending=Ending.RELEASING,
        stage=Stage.UNPIN,
    ),
    Row(
        "KubeVela not having applied the revision yet is waited for",
        RolloutStatus(phase=Phase.HEALTHY, stable_revision="v1"),
        d.Observation(view(app_revision="shop-v1")),
        phase=Phase.HEALTHY,
        requeue=d.ACTIVE,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_transition(row: Row) -> None:
    before = row.status.to_dict()
    decision = d.decide(row.status, row.rollout, row.obs, row.ops, row.now)
    if row.actions or row.name.startswith(
        ("an invalid", "steps that", "a missing", "an unsettled", "a route", "a released")
    ):
        assert tuple(kinds(decision)) == row.actions
    new = decision.status
    for attr, want in (
        ("phase", row.phase),
        ("step_state", row.state),
        ("current_step", row.step),
        ("ending", row.ending),
        ("ending_stage", row.stage),
    ):
        if want is not None:
            assert getattr(new, attr) == want, attr
    if row.requeue is not None:
        assert decision.requeue == row.requeue
    # The input status is never changed in place.
    assert row.status.to_dict() == before


def test_a_status_round_trips_through_the_custom_resource() -> None:
    decision = d.decide(
        RolloutStatus(phase=Phase.HEALTHY, stable_revision="v1"),
        rollout(),
        d.Observation(view()),
        NO_OPS,
        T0,
    )
    raw = decision.status.to_dict()
    again = RolloutStatus.from_dict(raw, T0 + timedelta(hours=1))
    assert again == decision.status
    assert again.to_dict() == raw


def test_garbage_in_the_status_reads_as_absent() -> None:
    raw = {"phase": "Exploded", "currentStep": "two", "timeline": "x", "conditions": [1, {}]}
    status = RolloutStatus.from_dict(raw, T0)
    assert status.phase is None
    assert status.current_step == 0
    assert status.timeline == ()


def test_the_failure_message_names_the_commands_that_go_on() -> None:
    decision = d.decide(
        releasing(step_started_at=T0),
        rollout(replace(THREE_STEPS, on_failure="pause")),
        d.Observation(view(new=2, ready=0, old=8)),
        NO_OPS,
        T0 + timedelta(seconds=61),
    )
    message = decision.status.message or ""
    assert "kubectl progressive abort shop -n ns" in message
    assert "kubectl progressive retry shop -n ns" in message


# ---------------------------------------------------------------------------------- properties
@dataclass
class Sim:
    """A workload whose pods follow the actions, as kwok's do, one event at a time."""

    view: WorkloadView
    handed_back: bool = False

    def apply(self, action: d.Action) -> None:
        v = self.view
        if isinstance(action, d.ScaleTo):
            old = v.replicas - action.new_pods if action.surge_ready else v.old_pods
            ready = min(v.new_ready, action.new_pods)
            self.view = replace(v, new_pods=action.new_pods, new_ready=ready, old_pods=old)
        elif isinstance(action, d.AbortPods):
            self.view = replace(v, new_pods=0, new_ready=0, old_pods=v.replicas)
        elif isinstance(action, d.HandBack):
            self.view = replace(
                v, held=False, new_pods=v.replicas, new_ready=v.replicas, old_pods=0
            )
            self.handed_back = True
        elif isinstance(action, d.Hold):
            self.view = replace(v, held=True)


EVENTS = st.sampled_from(["tick", "tick", "ready", "ready", "approve", "pause", "resume", "abort"])


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, min_size=5, max_size=80), st.booleans(), st.integers(0, 3))
def test_no_step_is_skipped_or_repeated_traffic_follows_ready_pods_and_abort_keeps_its_order(
    events: list[str], endpoints_lag: bool, grace: int
) -> None:
    routing = replace(ROUTE, grace_period_seconds=grace)
    strat = replace(
        strategy(
            Step(replicas="20%", weight=20),
            Step(replicas="50%", weight=50, duration=10),
            Step(replicas="100%", weight=100),
        ),
        routings=(routing,),
    )
    ro = rollout(strat)
    sim = Sim(view())
    status = RolloutStatus(phase=Phase.HEALTHY, stable_revision="v1")
    now = T0
    ops = NO_OPS
    steps_seen: list[int] = []
    aborting_log: list[str] = []
    for event in events:
        if event == "tick":
            now += timedelta(seconds=3)
        elif event == "ready":
            sim.view = replace(sim.view, new_ready=sim.view.new_pods)
        elif event == "approve":
            ops = replace(ops, approved_step=status.current_step)
        elif event == "pause":
            ops = replace(ops, paused=True)
        elif event == "resume":
            ops = replace(ops, paused=False)
        elif event == "abort":
            ops = replace(ops, aborted=True)
        for _ in range(6):  # as the shell: decide again at once while a decision asks to
            ready = sim.view.new_ready if not endpoints_lag or event == "ready" else 0
            obs = d.Observation(sim.view, canary_ready=ready, handed_back=sim.handed_back)
            before = sim.view
            decision = d.decide(status, ro, obs, ops, now)
            for action in decision.actions:
                if isinstance(action, d.Route):
                    step = action.step
                    # Traffic moves only once the step's pods are Ready, with an endpoint.
                    assert before.new_ready >= step.new_pods
                    assert ready > 0 or step.new_pods == 0
                if decision.status.ending is Ending.ABORTING or status.ending is Ending.ABORTING:
                    name = type(action).__name__
                    if name in ("RestoreRoutes", "AbortPods", "RestoreServices", "UnpinServices"):
                        aborting_log.append(name)
                    if name in ("RestoreServices", "UnpinServices"):
                        # The stable Service never selects an aborted pod: pinned until all back.
                        assert before.new_pods == 0
                sim.apply(action)
            if decision.status.current_step != status.current_step:
                steps_seen.append(decision.status.current_step)
            status = decision.status
            if decision.requeue > 0:
                break
    # Steps advance one at a time, from 1, and none is visited twice.
    assert steps_seen == sorted(set(steps_seen))
    assert all(b - a == 1 for a, b in pairwise(steps_seen))
    # Abort: routes, then pods, then Services (each name's first appearance in that order).
    order = [n for i, n in enumerate(aborting_log) if n not in aborting_log[:i]]
    assert order == [n for n in ("RestoreRoutes", "AbortPods", "RestoreServices") if n in order]
    if "AbortPods" in order or "RestoreServices" in order:
        assert order[0] == "RestoreRoutes"
