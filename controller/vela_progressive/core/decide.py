"""The release as a pure state machine: ``decide(status, rollout, observation, ops, now)``.

The shell observes (the workload through its adapter, the canary Service's endpoints when the
step routes traffic), calls :func:`decide`, executes the returned actions in order and writes
the returned status. Nothing here does I/O or reads a clock. A decision assumes its actions
succeed: when one fails, the shell keeps the previous status and tries again, and because every
action is idempotent a repeated decision changes nothing more.

States (``status``): no release (``canaryRevision`` unset: ``Healthy`` or ``Initializing``); a
step (``currentStep``, ``stepState``: ``Upgrading`` → ``TrafficRouting`` → ``Waiting`` /
``WaitingApproval`` → next step); an ending (``ending`` + ``endingStage``), which winds a release
up in a fixed order:

============  ==================================================================================
Completing    Services unpinned → grace → routes restored → grace → workload handed back →
              Services restored (the canary Service goes) → ``Healthy``
RollingBack   routes restored → grace → workload handed back (its controller rolls the stable
              template) → Services restored → ``Healthy``
Aborting      routes restored → grace → pods back to stable (workload kept held) → Services
              restored → ``Aborted`` (or stays ``Failed`` after a failure)
Releasing     the trait was removed: as Completing (the workload's controller rolls the new
              template once handed back)
============  ==================================================================================

Until the pods are back, the stable Service stays pinned to the stable pods: it never selects a
pod of the revision being aborted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from vela_progressive.core.analysis.judge import Result, Verdict, judge
from vela_progressive.core.analysis.queries import Query, Targets, queries_for
from vela_progressive.core.analysis.spec import Metric, Webhook
from vela_progressive.core.diagnosis import classify
from vela_progressive.core.model import Plan, PlannedStep, ReleaseMode, Strategy, WaitKind
from vela_progressive.core.planner import describe_step, failure_threshold_pods, plan_to_status
from vela_progressive.core.planner import plan as make_plan
from vela_progressive.core.release import Operations, deadline_passed, wait_remaining
from vela_progressive.core.rendering import RenderError
from vela_progressive.core.status import (
    MEASUREMENTS_LIMIT,
    Actor,
    Ending,
    Gate,
    Measurement,
    MetricRun,
    Phase,
    RolloutStatus,
    Seen,
    Stage,
    StepState,
    iso,
)
from vela_progressive.core.validation import InvalidSpec
from vela_progressive.core.workloads import WorkloadView

Obj = dict[str, Any]

#: Requeue delays (seconds): act and look again now; while pods move; while waiting for people;
#: when settled. Changes of the rollout and of its workload wake the loop at once (watch events),
#: so ACTIVE and WAITING are only the safety net of a level-based controller. A settled rollout
#: (released, or failed until its spec changes) has nothing that time could change: only a watch
#: event wakes it, so thousands of idle rollouts make no API request. (Kopf's watches resume
#: from their last resourceVersion, and a watch that expired lists again, which wakes every
#: rollout: no change is missed.)
NOW, ACTIVE, WAITING, IDLE = 0.0, 1.0, 15.0, math.inf


def until_woken(obs: Observation) -> float:
    """How long to wait for pods or a workload's controller to move. When every object the pass
    read is watched, their change wakes the loop at once and the timer is only the safety net
    (WAITING); otherwise look again every ACTIVE. (At 1,000 releases in flight, a pass a second
    for each release waiting for its pods took the CPU the releases whose pods were Ready needed:
    docs/benchmarks.md.)"""
    return WAITING if obs.watched else ACTIVE


# ---------------------------------------------------------------------------------- actions
@dataclass(frozen=True)
class Hold:
    """Hold the workload (the webhook missed a template change)."""


@dataclass(frozen=True)
class PrepareServices:
    """Canary Service(s) present, stable Service(s) pinned to the stable pods."""


@dataclass(frozen=True)
class ScaleTo:
    """Run ``new_pods`` pods of the new revision; ``surge_ready``: old pods may now go."""

    new_pods: int
    surge_ready: bool


@dataclass(frozen=True)
class Route:
    """Every routing to the step's weight and matches, all or nothing."""

    step: PlannedStep


@dataclass(frozen=True)
class RestoreRoutes:
    """Every routing object exactly as the user had it (no canary routes)."""


@dataclass(frozen=True)
class UnpinServices:
    """Stable Service(s) select every pod again (the canary Service stays)."""


@dataclass(frozen=True)
class RestoreServices:
    """Stable Service(s) exactly as before, canary Service(s) deleted."""


@dataclass(frozen=True)
class AbortPods:
    """Every pod back on the stable revision; the workload stays held."""


@dataclass(frozen=True)
class HandBack:
    """Hand the workload back to its own controller (the shell reports when it has finished)."""


@dataclass(frozen=True)
class NotifyWebhook:
    """POST the release's description to a post-rollout webhook (told, not asked)."""

    hook: Webhook
    body: Mapping[str, object]


@dataclass(frozen=True)
class ClearOperations:
    """The release is over: its approve, pause, abort and retry annotations are spent."""


@dataclass(frozen=True)
class PostEvent:
    type: str  # Normal | Warning
    reason: str
    message: str


Action = (
    Hold
    | PrepareServices
    | ScaleTo
    | Route
    | RestoreRoutes
    | UnpinServices
    | RestoreServices
    | AbortPods
    | HandBack
    | NotifyWebhook
    | ClearOperations
    | PostEvent
)


# ---------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Rollout:
    """The spec side of the decision: which revision, for which workload, with what strategy."""

    name: str
    namespace: str
    application: str
    revision: str
    kind: str
    generation: int | None
    #: ``None`` when the spec is invalid (then ``spec_error`` says why).
    strategy: Strategy | None
    spec_error: str | None = None

    def command(self, verb: str) -> str:
        return f"kubectl progressive {verb} {self.application} -n {self.namespace}"


@dataclass(frozen=True)
class Observation:
    """What the shell saw this pass."""

    workload: WorkloadView | None
    #: Why the workload could not be read (when ``workload`` is None).
    missing: str = ""
    #: Ready endpoints behind the canary Service(s); ``None`` when not observed.
    canary_ready: int | None = None
    #: Pods of the new revision (for the reason a step failed).
    new_revision_pods: tuple[Obj, ...] = ()
    #: The last ``HandBack`` of this pass found the workload's controller finished.
    handed_back: bool = False
    #: Why some step's route could not be applied to the routing objects as they are (read
    #: and rendered without writing, before the first pod moves); ``None``: fine or not checked.
    traffic_problem: str | None = None
    #: The measurements that were due (:func:`due_measurements`), by (gate, metric name).
    measurements: Mapping[tuple[Gate, str], Taken] = field(default_factory=dict)
    #: The answers of the webhooks that were due (:func:`due_webhooks`), by name.
    webhooks: Mapping[str, HookAnswer] = field(default_factory=dict)
    #: Every object the pass read about its workload came from a watch-backed copy whose
    #: changes wake the rollout: progress need not be polled for (:func:`until_woken`).
    watched: bool = False


@dataclass(frozen=True)
class HookAnswer:
    """A webhook's answer: 2xx (``ok``) or not, and what it said (or why there was none)."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class Taken:
    """What Prometheus answered for one measurement: a result per query role, and the canary
    query (for messages)."""

    results: Mapping[str, Result]
    query: str = ""


@dataclass(frozen=True)
class Due:
    """A measurement due now: the queries to send (or why they could not be written)."""

    gate: Gate
    metric: Metric
    queries: tuple[Query, ...]
    error: str | None = None


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus
    actions: tuple[Action, ...] = ()
    requeue: float = IDLE


@lru_cache(maxsize=4096)
def plan_for(strategy: Strategy, kind: str, replicas: int) -> Plan:
    """The plan for this strategy and size (the same inputs on every pass of a release)."""
    return make_plan(strategy, kind, replicas)


@lru_cache(maxsize=4096)
def _plan_status(release_plan: Plan) -> tuple[Obj, ...]:
    return tuple(plan_to_status(release_plan))


def needs_canary_endpoints(status: RolloutStatus, rollout: Rollout) -> bool:
    """Whether :func:`decide` will read ``Observation.canary_ready`` (only then observe it)."""
    return bool(
        rollout.strategy is not None
        and rollout.strategy.routings
        and status.canary_revision
        and status.ending is None
        and status.step_state is StepState.TRAFFIC
    )


def needs_traffic_check(status: RolloutStatus, rollout: Rollout) -> bool:
    """Whether :func:`decide` will read ``Observation.traffic_problem``: before the first pod
    of a release moves, every step's route is rendered against the routing objects, so a
    release that could not route traffic never starts."""
    return bool(
        rollout.strategy is not None
        and rollout.strategy.routings
        and status.canary_revision
        and status.ending is None
        and status.phase is Phase.PROGRESSING
        and status.current_step == 1
        and status.step_state is StepState.UPGRADING
        and status.traffic_step == 0
    )


def metric_of(strategy: Strategy, run: MetricRun) -> Metric | None:
    """The declared metric a run measures (``None`` when the spec no longer declares it)."""
    if run.gate is Gate.WEBHOOK:
        return None
    if run.gate is Gate.STEP:
        if not 1 <= run.step <= len(strategy.steps):
            return None
        metrics = strategy.steps[run.step - 1].analysis
    else:
        metrics = strategy.analysis.metrics if strategy.analysis else ()
    return next((m for m in metrics if m.name == run.name), None)


def due_measurements(
    status: RolloutStatus, rollout: Rollout, targets: Targets, now: datetime
) -> tuple[Due, ...]:
    """The measurements :func:`decide` will judge now (the shell sends their queries)."""
    if rollout.strategy is None or status.ending is not None:
        return ()
    out = []
    for run in status.analysis:
        metric = metric_of(rollout.strategy, run)
        if metric is None or run.next_at is None or run.next_at > now:
            continue
        try:
            out.append(Due(run.gate, metric, queries_for(metric, targets)))
        except RenderError as exc:
            out.append(Due(run.gate, metric, (), f"the query does not render: {exc}"))
    return tuple(out)


#: Seconds between calls of a webhook gate that did not pass.
WEBHOOK_RETRY = 10


def due_webhooks(
    status: RolloutStatus, rollout: Rollout, now: datetime
) -> tuple[tuple[Webhook, dict[str, object]], ...]:
    """The webhook gates to call now, with the JSON body to POST."""
    if rollout.strategy is None:
        return ()
    hooks = {h.name: h for h in rollout.strategy.webhooks}
    out = []
    for run in status.analysis:
        hook = hooks.get(run.name)
        if run.gate is not Gate.WEBHOOK or hook is None or run.passed:
            continue
        if run.next_at is None or run.next_at <= now:
            out.append((hook, webhook_body(status, rollout, hook)))
    return tuple(out)


def webhook_body(status: RolloutStatus, rollout: Rollout, hook: Webhook) -> dict[str, object]:
    """What a webhook is told about the release."""
    return {
        "name": rollout.name,
        "namespace": rollout.namespace,
        "application": rollout.application,
        "revision": rollout.revision,
        "webhook": hook.name,
        "type": hook.type,
        "phase": str(status.phase or ""),
        "step": status.current_step,
        "totalSteps": status.total_steps,
        "canaryRevision": status.canary_revision or "",
        "stableRevision": status.stable_revision or "",
    }


def stable_hint(status: RolloutStatus) -> str | None:
    """The stable revision the adapter should assume (the one recorded while releasing)."""
    return status.stable_revision if status.canary_revision else None


# ---------------------------------------------------------------------------------- decide
@dataclass
class _Pass:
    s: RolloutStatus
    rollout: Rollout
    strategy: Strategy
    view: WorkloadView
    obs: Observation
    ops: Operations
    now: datetime
    steps: tuple[PlannedStep, ...]
    actions: list[Action] = field(default_factory=list)

    def act(self, *actions: Action) -> None:
        self.actions.extend(actions)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.actions.append(PostEvent(type_, reason, message))

    def done(self, requeue: float) -> Decision:
        if self.blue_green and self.s.canary_revision and self.strategy.routings:
            serving = serving_set(self.s)
            if not (self.s.message or "").startswith(serving):
                self.s.message = f"{serving}; {self.s.message}"
        return Decision(self.s, tuple(self.actions), requeue)

    @property
    def blue_green(self) -> bool:
        return self.strategy.mode_for(self.view.kind) is ReleaseMode.BLUE_GREEN

    @property
    def grace(self) -> int:
        return max((r.grace_period_seconds for r in self.strategy.routings), default=0)


def decide(
    status: RolloutStatus,
    rollout: Rollout,
    obs: Observation,
    ops: Operations,
    now: datetime,
) -> Decision:
    """The new status and the actions that move the release on, from what was observed."""
    s = status.copy()
    s.observed_generation = rollout.generation
    if rollout.strategy is None:
        return _invalid(s, rollout, rollout.spec_error or "invalid spec", now)
    s.set_condition("InvalidSpec", False, "Valid", "the strategy is valid", now)
    strategy = rollout.strategy
    view = obs.workload
    if view is None:
        s.phase, s.message = Phase.INITIALIZING, f"waiting for the workload: {obs.missing}"
        s.set_condition("Progressing", False, "WorkloadMissing", obs.missing, now)
        return Decision(s, (), WAITING)
    if not view.settled:
        return Decision(s, (), until_woken(obs))
    if not view.governed:
        # The hold label is gone: the trait was removed from the component. Hand everything
        # back as deleting the rollout would, without waiting for KubeVela's next revision
        # (which only comes once the workload is healthy, i.e. handed back).
        if not (s.canary_revision or view.held or s.ending is Ending.RELEASING):
            s.message = "the workload no longer carries the hold label: nothing to release"
            return Decision(s, (), WAITING)
        try:
            steps = plan_for(strategy, rollout.kind, view.replicas).steps
        except InvalidSpec:
            steps = ()  # handing back needs no plan
        p = _Pass(s, rollout, strategy, view, obs, ops, now, steps)
        if s.ending is not Ending.RELEASING:
            _begin_ending(p, Ending.RELEASING, "the trait was removed: handing the workload back")
        return _ending(p)
    if view.app_revision and rollout.revision and view.app_revision != rollout.revision:
        # PreDispatch: the rollout already names the new revision, KubeVela has not applied the
        # workload yet. Judging the old workload now would report the new revision done.
        s.message = f"waiting for KubeVela to apply revision {rollout.revision}"
        return Decision(s, (), until_woken(obs))
    try:
        release_plan = plan_for(strategy, rollout.kind, view.replicas)
    except InvalidSpec as exc:  # e.g. steps that shrink at this workload size
        return _invalid(s, rollout, str(exc.under("spec.strategy")), now)
    s.plan = _plan_status(release_plan)
    s.total_steps = len(release_plan.steps)
    s.observed_revision = rollout.revision
    p = _Pass(s, rollout, strategy, view, obs, ops, now, release_plan.steps)
    if not s.canary_revision:
        return _no_release(p)
    return _in_flight(p)


def _invalid(s: RolloutStatus, rollout: Rollout, message: str, now: datetime) -> Decision:
    """An invalid spec: say which field and how to fix it, and touch nothing."""
    actions: tuple[Action, ...] = ()
    text = f"invalid spec: {message}"
    if s.phase is not Phase.FAILED or s.message != text:
        actions = (PostEvent("Warning", "InvalidSpec", message),)
    s.phase, s.message, s.observed_revision = Phase.FAILED, text, rollout.revision
    s.set_condition("InvalidSpec", True, "InvalidSpec", message, now)
    return Decision(s, actions, IDLE)


def _no_release(p: _Pass) -> Decision:
    s, view, now = p.s, p.view, p.now
    if view.idle:
        if s.phase is Phase.HEALTHY and s.stable_revision == view.update_revision:
            return p.done(IDLE)  # nothing changed: keep the last release's message
        _healthy(p, "all pods run the current revision")
        return p.done(IDLE)
    if view.stable_revision in (None, view.update_revision):
        # The first revision is still rolling out: nothing stable to protect.
        if view.held:
            p.act(HandBack())
        if s.phase is Phase.HEALTHY and s.stable_revision == view.update_revision:
            # The released revision's own pods coming back (deleted, evicted, scaled up): the
            # workload heals itself; their events wake the rollout.
            return p.done(IDLE)
        s.phase, s.message = Phase.INITIALIZING, "the first revision is rolling out"
        return p.done(until_woken(p.obs))
    if not view.held:
        msg = "the hold webhook missed a template change; held by the controller"
        s.set_condition("HoldMissed", True, "HeldByWatch", msg, now)
        p.act(Hold())
        p.event("Warning", "HoldMissed", msg)
    _start(p, view.stable_revision, RELEASE_STARTED)
    return p.done(NOW)


def _in_flight(p: _Pass) -> Decision:
    s, view, ops = p.s, p.view, p.ops
    if view.update_revision != s.canary_revision:
        if view.update_revision == s.stable_revision:
            if ops.rollback_in_batches:
                # The pods serving now become the stable side of a step-by-step rollback.
                _restore_routes_first(p)
                s.canary_revision = None
                s.message = "rollback in batches"
                return p.done(NOW)
            if s.ending is not Ending.ROLLING_BACK:
                _begin_ending(p, Ending.ROLLING_BACK, "rolling back to the stable revision")
            return _ending(p)
        p.event("Normal", "Restarted", f"new revision {p.rollout.revision} arrived: back to step 1")
        _restore_routes_first(p)
        _start(p, s.stable_revision, RELEASE_RESTARTED)
        return p.done(NOW)
    if s.phase is Phase.FAILED and ops.retry is not None and ops.retry == s.retries + 1:
        return _retry(p)
    if s.ending is not None:
        return _ending(p)
    if ops.aborted:
        by = ops.actor("abort", p.rollout.revision)
        message = f"release aborted by {by.describe()}: back to stable"
        _begin_ending(p, Ending.ABORTING, message, by)
        p.event("Warning", "Aborting", message)
        return _ending(p)
    if s.phase is Phase.FAILED:
        return p.done(WAITING)  # onFailure: pause: held as it is until abort or retry
    if ops.paused:
        s.phase, s.message = Phase.PAUSED, f"paused at step {s.current_step}"
        return p.done(WAITING)
    s.phase = Phase.PROGRESSING
    return _step(p)


def _restore_routes_first(p: _Pass) -> None:
    """Before new pods start, no route may point at a canary Service that has none Ready."""
    if p.s.traffic_step:
        p.act(RestoreRoutes())
        p.s.traffic_step = 0
        p.s.current_weight = 0 if p.strategy.routings else None


#: Timeline messages that mark where a release (or a step) begins; ``core.telemetry`` reads the
#: timeline by them.
RELEASE_STARTED = "release started"
#: A newer revision arrived while a release was in flight: it starts again at step 1.
RELEASE_RESTARTED = "new revision: restarted at step 1"
STEP_STARTED = "step started"


def _start(p: _Pass, stable: str | None, message: str) -> None:
    s, now = p.s, p.now
    s.phase = Phase.PROGRESSING
    s.stable_revision = stable or p.view.stable_revision
    s.canary_revision = p.view.update_revision
    s.current_step = 1
    s.step_state = StepState.UPGRADING
    s.step_started_at, s.waiting_since = now, None
    s.ending, s.ending_stage, s.stage_started_at = None, None, None
    s.failure_reason = None
    s.retries = 0
    s.analysis = ()
    s.message = message
    s.set_condition("Progressing", True, "InRolling", message, now)
    s.set_condition("Succeeded", False, "InRolling", message, now)
    s.record(1, StepState.UPGRADING, message, now)
    p.event("Normal", "ReleaseStarted", f"{message}: {p.view.update_revision}")


def _healthy(p: _Pass, message: str) -> None:
    s, now = p.s, p.now
    s.phase, s.step_state = Phase.HEALTHY, StepState.COMPLETED
    s.stable_revision, s.canary_revision = p.view.update_revision, None
    s.ending, s.ending_stage, s.stage_started_at = None, None, None
    s.current_weight, s.traffic_step = None, 0
    s.failure_reason = None
    s.stable_app_revision = s.observed_revision
    s.message = message
    s.set_condition("Progressing", False, "Completed", message, now)
    s.set_condition("Succeeded", True, "Completed", message, now)
    if s.condition("HoldMissed") is not None:
        # The missed hold belonged to the release that just ended.
        s.set_condition("HoldMissed", False, "ReleaseEnded", message, now)


# ---------------------------------------------------------------------------------- steps
def serving_set(s: RolloutStatus) -> str:
    """Which set of a blue-green release gets the requests (its status message starts with it).

    >>> s = RolloutStatus(); s.current_weight = 100
    >>> serving_set(s)
    'green (new) serves, blue (old) kept for rollback'
    >>> s.ending = Ending.ABORTING; serving_set(s)
    'blue (old) serves'
    """
    if s.ending in (Ending.ABORTING, Ending.ROLLING_BACK):
        return "blue (old) serves"
    if s.ending is Ending.COMPLETING:
        return "green (new) serves"
    if s.current_weight == 100:
        return "green (new) serves, blue (old) kept for rollback"
    if s.current_weight:
        return f"blue (old) serves, green (new) gets {s.current_weight}%"
    return "blue (old) serves, green (new) in preview"


def _expected_old(p: _Pass, step: PlannedStep) -> int:
    if p.strategy.mode_for(p.view.kind).keeps_old_set:
        return p.view.replicas
    return p.view.replicas - step.new_pods


def _until_progress(p: _Pass) -> float:
    """While a step's pods move: until woken, and no later than the progress deadline."""
    wait = until_woken(p.obs)
    started, deadline = p.s.step_started_at, p.strategy.progress_deadline_seconds
    if started is None or wait <= ACTIVE:
        return wait
    left = deadline - (p.now - started).total_seconds()
    return min(wait, max(left + ACTIVE, ACTIVE))


def _step(p: _Pass) -> Decision:
    s, view, strategy, now = p.s, p.view, p.strategy, p.now
    total = len(p.steps)
    index = min(max(s.current_step, 1), total)
    step = p.steps[index - 1]
    state = s.step_state or StepState.UPGRADING
    if s.analysis:
        judged = _measure(p, index, total)
        if judged is not None:
            return judged
    expected_old = _expected_old(p, step)
    if state is not StepState.UPGRADING and (
        view.new_pods != step.new_pods or view.old_pods != expected_old
    ):
        # The workload drifted from the step (scaled, pods deleted): bring it back first.
        state = s.step_state = StepState.UPGRADING
        s.step_started_at = now
        s.record(index, state, f"workload changed: {view.replicas} replicas", now)

    if state is StepState.UPGRADING:
        tolerated = failure_threshold_pods(strategy, step.new_pods)
        done = (
            view.new_pods == step.new_pods
            and view.new_ready >= step.new_pods - tolerated
            and view.old_pods == expected_old
        )
        if not done and p.obs.traffic_problem and index == 1 and not s.traffic_step:
            return _traffic_blocked(p, p.obs.traffic_problem)
        if not done and index == 1 and not s.traffic_step and view.new_pods == 0:
            held = _hook_gate(p, 0, "pre-rollout")
            if held is not None:
                return held
        if not done:
            if deadline_passed(s.step_started_at, strategy.progress_deadline_seconds, now):
                reason, why = classify(list(p.obs.new_revision_pods))
                return _fail(p, reason, f"step {index}/{total}: {why}")
            ready = view.new_ready >= step.new_pods - tolerated and view.new_pods >= step.new_pods
            if strategy.routings:
                # Stable Services pinned to the stable pods before any new pod exists.
                p.act(PrepareServices())
            p.act(ScaleTo(step.new_pods, ready))
            s.message = describe_step(step, total, "upgrading pods")
            return p.done(_until_progress(p))
        state = s.step_state = StepState.TRAFFIC
        s.record(index, state, "pods ready", now)
        if strategy.routings:
            return p.done(NOW)  # look at the canary Service's endpoints next

    if state is StepState.TRAFFIC:
        if strategy.routings:
            if step.new_pods > 0 and not p.obs.canary_ready:
                s.message = describe_step(step, total, "waiting for canary endpoints")
                return p.done(ACTIVE)
            p.act(Route(step))
            s.traffic_step = index
        s.current_weight = step.weight if strategy.routings else None
        # Waits count from the moment the traffic change has settled (gracePeriodSeconds).
        state = s.step_state = StepState.WAITING
        s.waiting_since = now + timedelta(seconds=p.grace if strategy.routings else 0)
        s.record(index, state, "traffic moved", now)

    settling = s.waiting_since
    if settling is not None and settling > now:
        left = (settling - now).total_seconds()
        s.message = describe_step(step, total, f"traffic settling ({left:.0f}s)")
        return p.done(left)
    if step.wait.kind is WaitKind.APPROVAL and p.ops.approved_step != index:
        _start_background(p, index)
        s.step_state = StepState.APPROVAL
        s.message = (
            f"{describe_step(step, total, 'waiting for approval')} ({p.rollout.command('approve')})"
        )
        s.record(index, StepState.APPROVAL, "waiting for approval", now)
        return p.done(WAITING)
    if step.wait.kind is WaitKind.APPROVAL:
        _approved(p, index, total)
    _start_background(p, index)
    left = wait_remaining(step, s.waiting_since, now)
    if left > 0:
        s.step_state = StepState.WAITING
        s.message = describe_step(step, total, f"waiting {int(left)}s")
        return p.done(min(left, WAITING))
    gate = strategy.steps[index - 1].analysis
    if gate:
        waiting = _gate(p, index, step, gate)
        if waiting is not None:
            return waiting
    held = _hook_gate(p, index, "rollout")
    if held is None and index >= total:
        held = _hook_gate(p, index, "confirm-promotion")
    if held is not None:
        return held
    if index >= total:
        _begin_ending(p, Ending.COMPLETING, "all steps done")
        return _ending(p)
    s.current_step = index + 1
    s.analysis = tuple(r for r in s.analysis if r.gate is Gate.BACKGROUND)  # gates passed
    s.step_state = StepState.UPGRADING
    s.step_started_at, s.waiting_since = now, None
    s.record(index + 1, StepState.UPGRADING, STEP_STARTED, now)
    p.event("Normal", "StepStarted", f"step {index + 1}/{total}")
    return p.done(NOW)


#: Timeline state of an approval acted on (who, when, what they saw).
APPROVED = "Approved"


def _approved(p: _Pass, index: int, total: int) -> None:
    """Record the approval of step ``index`` once (per approval value): who approved, when, and
    what the release showed (pods, traffic, the step's latest measurements), in the timeline
    and an Event; an approval whose stamp does not verify is recorded as unverified (it counts:
    RBAC decided who may approve, the stamp only says who did)."""
    s, view = p.s, p.view
    value = f"{p.rollout.revision}/{index}"
    if any(e.state == APPROVED and e.by and e.by.value == value for e in s.timeline):
        return
    latest = {m.metric: m for m in s.measurements if m.step == index}
    seen = Seen(
        new_pods=view.new_pods,
        new_ready=view.new_ready,
        replicas=view.replicas,
        weight=s.current_weight,
        analysis=tuple(
            f"{m.metric}={m.to_dict()['value'] or '-'} ({m.verdict}, {m.threshold})"
            for m in latest.values()
        ),
    )
    by = p.ops.actor("approve", value)
    when = f" at {iso(by.at)}" if by.at else ""
    message = f"step {index}/{total} approved by {by.describe()}{when}; saw {seen.describe()}"
    s.record(index, APPROVED, f"approved by {by.describe()}", p.now, by=by, seen=seen)
    if by.verified:
        p.event("Normal", "Approved", message)
    else:
        p.event("Warning", "ApprovedUnverified", message)


# ---------------------------------------------------------------------------------- analysis
def _start_background(p: _Pass, index: int) -> None:
    """``canary.analysis`` starts measuring once step ``startingStep`` has its pods and traffic."""
    background = p.strategy.analysis
    s = p.s
    if background is None or index < background.starting_step:
        return
    if any(r.gate is Gate.BACKGROUND for r in s.analysis):
        return
    runs = tuple(
        MetricRun(m.name, Gate.BACKGROUND, index, next_at=p.now + timedelta(seconds=m.interval))
        for m in background.metrics
    )
    s.analysis = (*s.analysis, *runs)
    s.record(index, "Analysis", "background analysis started", p.now)


def _gate(p: _Pass, index: int, step: PlannedStep, gate: tuple[Metric, ...]) -> Decision | None:
    """The step's analysis: ``None`` once every metric passed ``count`` times."""
    s, now, total = p.s, p.now, len(p.steps)
    runs = [r for r in s.analysis if r.gate is Gate.STEP and r.step == index]
    if s.step_state is not StepState.ANALYSIS or len(runs) != len(gate):
        others = tuple(r for r in s.analysis if not (r.gate is Gate.STEP and r.step == index))
        runs = [
            MetricRun(m.name, Gate.STEP, index, next_at=now + timedelta(seconds=m.interval))
            for m in gate
        ]
        s.analysis = (*others, *runs)
        s.step_state = StepState.ANALYSIS
        s.record(index, StepState.ANALYSIS, "analysis started", now)
    progress = []
    done = True
    for run, metric in zip(runs, gate, strict=True):
        progress.append(f"{metric.name} {run.passed}/{metric.count}")
        done = done and run.passed >= metric.count
    if done:
        s.analysis = tuple(r for r in s.analysis if not (r.gate is Gate.STEP and r.step == index))
        s.record(index, StepState.ANALYSIS, "analysis passed", now)
        return None
    s.message = describe_step(step, total, f"analyzing ({', '.join(progress)} passed)")
    return p.done(_next_due(s, now))


def _hook_gate(p: _Pass, step: int, kind: str) -> Decision | None:
    """Webhooks of ``kind`` for ``step``: ``None`` once every one answered 2xx; a non-2xx
    answer or a timeout holds the gate (asked again every ``WEBHOOK_RETRY`` seconds)."""
    hooks = [h for h in p.strategy.webhooks if h.type == kind]
    if not hooks:
        return None
    s, now = p.s, p.now
    mine = {r.name: r for r in s.analysis if r.gate is Gate.WEBHOOK and r.step == step}
    runs = []
    waiting: list[str] = []
    for hook in hooks:
        run = mine.get(hook.name) or MetricRun(hook.name, Gate.WEBHOOK, step, next_at=now)
        answer = p.obs.webhooks.get(hook.name)
        if answer is not None and not run.passed and (run.next_at is None or run.next_at <= now):
            run = replace(
                run,
                passed=int(answer.ok),
                failed=run.failed + (not answer.ok),
                next_at=None if answer.ok else now + timedelta(seconds=WEBHOOK_RETRY),
            )
            s.measurements = (
                *s.measurements,
                Measurement(
                    metric=f"webhook/{hook.name}",
                    step=step,
                    at=now,
                    verdict=(Verdict.PASSED if answer.ok else Verdict.FAILED).value,
                    value=None,
                    stable=None,
                    threshold="2xx",
                    message=answer.detail,
                ),
            )[-MEASUREMENTS_LIMIT:]
            if not answer.ok:
                p.event("Warning", "WebhookRefused", f"{kind} webhook {hook.name}: {answer.detail}")
        runs.append(run)
        if not run.passed:
            detail = next(
                (m.message for m in reversed(s.measurements) if m.metric == f"webhook/{hook.name}"),
                "",
            )
            waiting.append(f"{hook.name} ({detail})" if detail and run.failed else hook.name)
    others = tuple(r for r in s.analysis if not (r.gate is Gate.WEBHOOK and r.step == step))
    s.analysis = (*others, *runs)
    if not waiting:
        return None
    s.message = f"step {p.s.current_step}/{len(p.steps)}: waiting for the {kind} webhook " + (
        ", ".join(waiting)
    )
    due = [r.next_at for r in runs if not r.passed and r.next_at is not None]
    soonest = min(((d - now).total_seconds() for d in due), default=0.0)
    return p.done(max(soonest, 0.0) if soonest > 0 else NOW)


def _next_due(s: RolloutStatus, now: datetime) -> float:
    due = [r.next_at for r in s.analysis if r.next_at is not None]
    if not due:
        return ACTIVE
    return max(min((d - now).total_seconds() for d in due), ACTIVE)


def _measure(p: _Pass, index: int, total: int) -> Decision | None:
    """Judge the measurements taken this pass; a failure or an inconclusive analysis decides."""
    s, now = p.s, p.now
    runs = list(s.analysis)
    failed: tuple[Metric, str, str] | None = None
    stuck: tuple[Metric, str] | None = None
    for i, run in enumerate(runs):
        metric = metric_of(p.strategy, run)
        taken = p.obs.measurements.get((run.gate, run.name))
        if metric is None:
            continue
        if taken is not None and run.next_at is not None and run.next_at <= now:
            verdict = judge(metric, dict(taken.results))
            counted = replace(
                run,
                passed=run.passed + (verdict.verdict is Verdict.PASSED),
                failed=run.failed + (verdict.verdict is Verdict.FAILED),
                no_data=run.no_data + (verdict.verdict is Verdict.NO_DATA),
                errors=run.errors + 1 if verdict.verdict is Verdict.ERROR else 0,
                next_at=now + timedelta(seconds=metric.interval),
            )
            runs[i] = counted
            s.measurements = (
                *s.measurements,
                Measurement(
                    metric=metric.name,
                    step=index,
                    at=now,
                    verdict=verdict.verdict.value,
                    value=verdict.value,
                    stable=verdict.stable,
                    threshold=metric.threshold_text(),
                    message=verdict.message,
                ),
            )[-MEASUREMENTS_LIMIT:]
            if verdict.verdict is Verdict.FAILED and counted.failed > metric.failure_limit:
                failed = failed or (metric, verdict.message, taken.query)
            if verdict.verdict is Verdict.ERROR and counted.errors > metric.inconclusive_limit:
                stuck = stuck or (metric, verdict.message)
        elif run.errors > metric.inconclusive_limit:
            stuck = stuck or (metric, "the last measurements could not be taken")
    s.analysis = tuple(runs)
    if failed is not None:
        metric, why, query = failed
        return _fail(
            p,
            "AnalysisFailed",
            f"step {index}/{total}: metric {metric.name}: {why} ({metric.threshold_text()}); "
            f"query: {query}",
        )
    if stuck is not None:
        metric, why = stuck
        message = (
            f"step {index}/{total}: analysis inconclusive: metric {metric.name}: {why}; "
            f"measuring again every {metric.interval}s, the release goes on when a measurement "
            f"works; or {p.rollout.command('abort')}"
        )
        if s.phase is not Phase.PAUSED:
            p.event("Warning", "AnalysisInconclusive", message)
        s.phase, s.message = Phase.PAUSED, message
        s.set_condition("Progressing", True, "AnalysisInconclusive", message, now)
        return p.done(_next_due(s, now))
    return None


def _traffic_blocked(p: _Pass, problem: str) -> Decision:
    """The routes cannot be applied: no pod moves until they can (checked again each pass)."""
    s = p.s
    message = f"traffic: {problem}; no pod moves until this is fixed"
    if s.message != message:
        p.event("Warning", "TrafficFailed", message)
    s.message = message
    s.set_condition("TrafficReady", False, "TrafficFailed", problem, p.now)
    return p.done(WAITING)


# ---------------------------------------------------------------------------------- failure
def _fail(p: _Pass, reason: str, message: str) -> Decision:
    s, now = p.s, p.now
    s.phase, s.failure_reason = Phase.FAILED, reason
    s.set_condition("Progressing", False, reason, message, now)
    s.record(s.current_step, Phase.FAILED, message, now)
    p.event("Warning", reason, message)
    if p.strategy.on_failure == "abort":
        s.message = f"{message}; aborting: traffic back to stable, then pods"
        _begin_ending(p, Ending.ABORTING, f"failed ({reason}): back to stable")
        return _ending(p)
    s.message = _paused_failure(p, message)
    return p.done(WAITING)


def _paused_failure(p: _Pass, message: str) -> str:
    return (
        f"{message}; held as it is for investigation (onFailure: pause): "
        f"{p.rollout.command('abort')} to go back to stable, or "
        f"{p.rollout.command('retry')} to try the step again"
    )


def _retry(p: _Pass) -> Decision:
    """``kubectl progressive retry``: the failed step starts again (pods first)."""
    s, now = p.s, p.now
    s.retries += 1
    s.analysis = ()  # measured afresh
    s.phase, s.failure_reason = Phase.PROGRESSING, None
    s.ending, s.ending_stage, s.stage_started_at = None, None, None
    s.step_state, s.step_started_at, s.waiting_since = StepState.UPGRADING, now, None
    by = p.ops.actor("retry", f"{p.rollout.revision}/{s.retries}")
    message = f"retrying step {s.current_step} (retry {s.retries}, asked by {by.describe()})"
    s.message = message
    s.set_condition("Progressing", True, "Retrying", message, now)
    s.record(s.current_step, StepState.UPGRADING, message, now, by=by)
    p.event("Normal", "Retrying", message)
    return p.done(NOW)


# ---------------------------------------------------------------------------------- endings
#: The order each ending goes in (the shell's hand-back on deletion follows ``RELEASING``).
#: A blue-green release completes pods first: the old set goes while every request still goes
#: to the new one, then the stable Service selects the new pods and the routes return to it.
BLUE_GREEN_COMPLETION = (Stage.PODS, Stage.UNPIN, Stage.ROUTES, Stage.SERVICES, Stage.DONE)

ENDING_STAGES: dict[Ending, tuple[Stage, ...]] = {
    Ending.COMPLETING: (Stage.UNPIN, Stage.ROUTES, Stage.PODS, Stage.SERVICES, Stage.DONE),
    Ending.ROLLING_BACK: (Stage.ROUTES, Stage.PODS, Stage.SERVICES, Stage.DONE),
    Ending.ABORTING: (Stage.ROUTES, Stage.PODS, Stage.SERVICES, Stage.DONE),
    Ending.RELEASING: (Stage.UNPIN, Stage.ROUTES, Stage.PODS, Stage.SERVICES, Stage.DONE),
}


def _begin_ending(p: _Pass, ending: Ending, message: str, by: Actor | None = None) -> None:
    s = p.s
    s.ending, s.ending_stage, s.stage_started_at = ending, None, None
    s.analysis = ()  # nothing is measured while a release winds up
    if ending is Ending.COMPLETING:
        s.step_state = StepState.COMPLETED
        s.set_condition("Progressing", True, "Finalizing", message, p.now)
    s.record(s.current_step, ending.value, message, p.now, by=by)


def _enter(p: _Pass, stage: Stage) -> None:
    """Enter ``stage`` and emit its one action (repeated only if this decision is not kept)."""
    s = p.s
    s.ending_stage, s.stage_started_at = stage, p.now
    if not p.strategy.routings and stage in (Stage.UNPIN, Stage.ROUTES, Stage.SERVICES):
        return
    if stage is Stage.UNPIN:
        p.act(UnpinServices())
    elif stage is Stage.ROUTES:
        p.act(RestoreRoutes())
        s.traffic_step, s.current_weight = 0, 0
    elif stage is Stage.SERVICES:
        p.act(RestoreServices())


def _ending(p: _Pass) -> Decision:
    s, view, now = p.s, p.view, p.now
    assert s.ending is not None
    stages = ENDING_STAGES[s.ending]
    if s.ending is Ending.COMPLETING and p.blue_green:
        stages = BLUE_GREEN_COMPLETION
    first = s.ending_stage is not Stage.DONE
    if s.ending_stage is None or s.ending_stage not in stages:
        _enter(p, stages[0])
    while True:
        stage = s.ending_stage
        assert stage is not None
        if stage in (Stage.UNPIN, Stage.ROUTES):
            started = s.stage_started_at or now
            left = p.grace - (now - started).total_seconds() if p.strategy.routings else 0
            if left > 0:
                s.message = _ending_message(p, f"pods move in {left:.0f}s")
                return p.done(left)
        elif stage is Stage.PODS:
            if s.ending is Ending.ABORTING:
                back = view.new_pods == 0 and view.old_pods >= view.replicas
                if not back:
                    p.act(AbortPods())
                    s.message = _ending_message(
                        p,
                        f"{view.new_pods} pod(s) of the new revision still running, "
                        f"{view.old_pods}/{view.replicas} stable",
                    )
                    return p.done(until_woken(p.obs))
            elif not p.obs.handed_back:
                p.act(HandBack())
                s.message = _ending_message(p, "handing the workload back to its controller")
                return p.done(until_woken(p.obs))
        elif stage is Stage.DONE:
            return _ended(p, first)
        _enter(p, stages[stages.index(stage) + 1])


def _failure(s: RolloutStatus) -> str:
    """What failed, as the failure recorded it (the Progressing condition's message)."""
    cond = s.condition("Progressing")
    what = cond.message if cond is not None and cond.reason == s.failure_reason else ""
    return f"failed ({s.failure_reason}): {what}" if what else f"failed ({s.failure_reason})"


def _ending_message(p: _Pass, detail: str) -> str:
    ending = p.s.ending
    if ending is Ending.ABORTING:
        prefix = "aborting: traffic back on stable"
        if p.s.phase is Phase.FAILED and p.s.failure_reason:
            prefix = f"{_failure(p.s)}; aborting: traffic back on stable"
        return f"{prefix}; {detail}"
    if ending is Ending.ROLLING_BACK:
        return f"rolling back to the stable revision; {detail}"
    if ending is Ending.RELEASING:
        return f"the trait was removed: handing the workload back; {detail}"
    if p.blue_green and p.s.ending_stage is Stage.PODS:
        return f"finalizing: the old set goes; {detail}"
    return f"finalizing: traffic back on the stable Service; {detail}"


def _ended(p: _Pass, first: bool) -> Decision:
    s, now = p.s, p.now
    if s.ending is Ending.ABORTING:
        # The ending stays recorded (stage Done) so a standing abort is not run again; a retry,
        # a rollback or a newer revision starts something new.
        s.current_weight = 0 if p.strategy.routings else None
        if s.phase is Phase.FAILED:
            s.message = (
                f"{_failure(s)}; traffic and every pod are back on the stable revision: release "
                f"a fixed version, or {p.rollout.command('retry')}"
            )
        else:
            s.message = (
                "aborted: every pod back on the stable revision; roll back "
                f"({p.rollout.command('rollback')}) or release a new version"
            )
            s.phase = Phase.ABORTED
            s.set_condition("Progressing", False, "Aborted", s.message, now)
        if first:
            s.record(s.current_step, "Aborted", "every pod back on stable", now)
            p.event("Normal", "Aborted", "traffic and every pod back on the stable revision")
        return p.done(WAITING)
    messages: dict[Ending | None, str] = {
        Ending.COMPLETING: "release completed",
        Ending.ROLLING_BACK: "rolled back to the stable revision",
        Ending.RELEASING: "the trait was removed: workload handed back to its controller",
    }
    message = messages[s.ending]
    if s.ending is Ending.COMPLETING:
        for hook in p.strategy.webhooks:
            if hook.type == "post-rollout":
                p.act(NotifyWebhook(hook, webhook_body(s, p.rollout, hook)))
    s.record(s.current_step, StepState.COMPLETED, message, now)
    p.event("Normal", "Completed" if s.ending is Ending.COMPLETING else "Released", message)
    p.act(ClearOperations())
    _healthy(p, message)
    return p.done(IDLE)


def traffic_failed(status: RolloutStatus, message: str, now: datetime) -> Decision:
    """A traffic action failed (nothing half-applied): say so, keep the state, retry later."""
    s = status.copy()
    text = f"traffic: {message}"
    actions: tuple[Action, ...] = ()
    if s.message != text:
        actions = (PostEvent("Warning", "TrafficFailed", text),)
    s.message = text
    s.set_condition("TrafficReady", False, "TrafficFailed", message, now)
    return Decision(s, actions, WAITING)


def traffic_ok(status: RolloutStatus, now: datetime) -> None:
    """After a pass whose traffic actions succeeded: a reported failure is over."""
    if status.condition("TrafficReady") is not None:
        status.set_condition("TrafficReady", True, "Routed", "traffic as planned", now)
