"""Level-based reconcile of one ProgressiveRollout: read everything, take at most one step forward.

Every call reads the CR, the workload and its pods, compares them with ``status`` and performs the
idempotent action that moves the release on. State lives only in ``status`` (and in the workload
itself), so a controller restart or a kill -9 resumes exactly where it was: the action of the
current step is repeated, which changes nothing, and no step is skipped.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from vela_progressive.core.diagnosis import classify
from vela_progressive.core.model import PlannedStep, ReleaseMode, Strategy, TrafficRouting, WaitKind
from vela_progressive.core.planner import (
    describe_step,
    failure_threshold_pods,
    plan,
    plan_to_status,
)
from vela_progressive.core.release import (
    ROLLBACK_IN_BATCHES_ANNOTATION,
    Operations,
    Phase,
    StepState,
    deadline_passed,
    iso,
    parse_iso,
    record,
    set_condition,
    wait_remaining,
)
from vela_progressive.core.validation import InvalidSpec, Problem, validate_properties
from vela_progressive.core.workloads import SUPPORTED_KINDS, WorkloadView
from vela_progressive.shell.events import EventSink
from vela_progressive.shell.kube import Kube
from vela_progressive.shell.traffic.manager import TrafficError
from vela_progressive.shell.workloads import WorkloadAdapter, WorkloadMissing, adapter_for

Obj = dict[str, Any]
log = logging.getLogger("vela_progressive.reconciler")

#: Requeue delays (seconds): while pods move, while waiting for people, when idle. Changes of
#: the rollout and of its workload wake the loop at once (watch events), so these are only the
#: safety net of a level-based controller.
ACTIVE, WAITING, IDLE = 1.0, 15.0, 300.0


@dataclass(frozen=True)
class RouteContext:
    """Everything a traffic provider needs to know about the release in progress."""

    namespace: str
    workload: str
    canary_selector: dict[str, str]
    stable_selector: dict[str, str]
    disable_canary_service: bool
    owner_references: tuple[Obj, ...] = ()


class TrafficPort(Protocol):
    """What the reconciler needs from traffic routing (see shell/traffic.py)."""

    async def prepare(self, routings: tuple[TrafficRouting, ...], ctx: RouteContext) -> None:
        """Create the canary Service(s) and pin the stable one(s) to the stable pods."""
        ...

    async def canary_ready(self, routings: tuple[TrafficRouting, ...], ctx: RouteContext) -> int:
        """Ready endpoints behind the canary Service(s) (a large number when there is none)."""
        ...

    async def route(
        self, routings: tuple[TrafficRouting, ...], ctx: RouteContext, step: PlannedStep
    ) -> None:
        """Move every routing to the step's weight and matches, all or nothing."""
        ...

    async def restore(self, routings: tuple[TrafficRouting, ...], ctx: RouteContext) -> None:
        """Put every routing and Service back exactly as it was before the release."""
        ...


@dataclass
class Outcome:
    status: Obj
    requeue: float
    changed: bool = True


def owner_reference(cr: Obj) -> Obj:
    """The rollout as owner of the objects a release creates (not blocking the owner's deletion:
    the finalizer hands everything back first)."""
    meta = cr["metadata"]
    return {
        "apiVersion": cr["apiVersion"],
        "kind": cr["kind"],
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": False,
    }


@dataclass
class Pass:
    """Everything one reconcile pass knows; ``view`` is refreshed after the pass acts."""

    cr: Obj
    status: Obj
    adapter: WorkloadAdapter
    view: WorkloadView
    strategy: Strategy
    ctx: RouteContext
    steps: tuple[PlannedStep, ...]
    ops: Operations
    now: datetime


@dataclass
class Reconciler:
    kube: Kube
    traffic: TrafficPort
    events: EventSink
    clock: Callable[[], datetime]
    #: Builds the workload adapter (injected so the release logic can be tested with fakes).
    adapters: Callable[[Kube, str, str, str, ReleaseMode, Obj], WorkloadAdapter] = adapter_for

    # ------------------------------------------------------------------ entry points
    async def reconcile(self, cr: Obj) -> Outcome:
        before = cr.get("status") or {}
        status = copy.deepcopy(before)
        try:
            requeue = await self._reconcile(cr, status)
        except TrafficError as exc:
            # Nothing is half-changed (the traffic manager undid its writes); say what failed
            # and try again: the routing object may simply not exist yet.
            message = f"traffic: {exc}"
            if status.get("message") != message:
                await self.events.post(cr, "Warning", "TrafficFailed", message)
            status["message"] = message
            set_condition(status, "TrafficReady", False, "TrafficFailed", str(exc), self.clock())
            requeue = WAITING
        else:
            if any(c["type"] == "TrafficReady" for c in status.get("conditions", [])):
                set_condition(
                    status, "TrafficReady", True, "Routed", "traffic as planned", self.clock()
                )
        return Outcome(status=status, requeue=requeue, changed=status != before)

    async def release(self, cr: Obj) -> bool:
        """The CR (or the trait) is going away: hand the workload back in a consistent state.

        ``True`` once done; call again until then (the workload's controller is finishing).
        """
        try:
            strategy, kind = self._strategy(cr)
        except InvalidSpec:
            return True
        meta = cr["metadata"]
        adapter = self.adapters(
            self.kube,
            kind,
            meta["namespace"],
            cr["spec"]["workloadRef"]["name"],
            strategy.mode_for(kind),
            owner_reference(cr),
        )
        try:
            view = await adapter.observe((cr.get("status") or {}).get("stableRevision"))
        except WorkloadMissing:
            return True
        await self.traffic.restore(strategy.routings, self._ctx(cr, adapter, view, strategy))
        if not await adapter.finalize(view):
            return False
        await self.events.post(cr, "Normal", "Released", "rollout removed: workload handed back")
        return True

    # ------------------------------------------------------------------ internals
    def _strategy(self, cr: Obj) -> tuple[Strategy, str]:
        """The validated strategy and workload kind, or :class:`InvalidSpec` naming the field."""
        spec = cr.get("spec") or {}
        component = (spec.get("application") or {}).get("component") or cr["metadata"]["name"]
        ref = spec.get("workloadRef") or {}
        raw = spec.get("strategy")
        override = raw.get("workloadType") if isinstance(raw, dict) else None
        kind = (override or {}).get("kind") or ref.get("kind", "")
        problems = []
        if not ref.get("name"):
            problems.append(Problem("spec.workloadRef.name", "is missing", "name the workload"))
        if kind not in SUPPORTED_KINDS:
            problems.append(
                Problem(
                    "spec.workloadRef.kind",
                    f"workload kind {kind or '(none)'} is not supported",
                    f"use one of {', '.join(SUPPORTED_KINDS)}",
                )
            )
        if problems:
            raise InvalidSpec(problems, component)
        try:
            props = validate_properties(raw, component=component, workload_kind=kind)
        except InvalidSpec as exc:
            raise exc.under("spec.strategy") from None
        return Strategy.from_properties(props, component), kind

    def _ctx(
        self, cr: Obj, adapter: WorkloadAdapter, view: WorkloadView, strategy: Strategy
    ) -> RouteContext:
        return RouteContext(
            namespace=view.namespace,
            workload=view.name,
            canary_selector=adapter.canary_selector(view),
            stable_selector=adapter.stable_selector(view),
            disable_canary_service=strategy.disable_canary_service,
            owner_references=(owner_reference(cr),),
        )

    async def _reconcile(self, cr: Obj, status: Obj) -> float:
        now = self.clock()
        meta, spec = cr["metadata"], cr.get("spec") or {}
        revision = (spec.get("revision") or {}).get("name", "")
        status["observedGeneration"] = meta.get("generation")
        try:
            strategy, kind = self._strategy(cr)
        except InvalidSpec as exc:
            if status.get("phase") != Phase.FAILED or status.get("message") != str(exc):
                await self.events.post(cr, "Warning", "InvalidSpec", str(exc))
            status.update(
                phase=Phase.FAILED, message=f"invalid spec: {exc}", observedRevision=revision
            )
            set_condition(status, "InvalidSpec", True, "InvalidSpec", str(exc), now)
            return IDLE
        set_condition(status, "InvalidSpec", False, "Valid", "the strategy is valid", now)

        adapter = self.adapters(
            self.kube,
            kind,
            meta["namespace"],
            spec["workloadRef"]["name"],
            strategy.mode_for(kind),
            owner_reference(cr),
        )
        releasing = status.get("canaryRevision")
        try:
            view = await adapter.observe(status.get("stableRevision") if releasing else None)
        except WorkloadMissing as exc:
            status.update(phase=Phase.INITIALIZING, message=f"waiting for the workload: {exc}")
            set_condition(status, "Progressing", False, "WorkloadMissing", str(exc), now)
            return WAITING
        if not view.settled:
            return ACTIVE
        if view.app_revision and revision and view.app_revision != revision:
            # PreDispatch: the rollout already names the new revision, KubeVela has not applied
            # the workload yet. Judging the old workload now would report the new revision done.
            status["message"] = f"waiting for KubeVela to apply revision {revision}"
            return ACTIVE
        ops = Operations.from_annotations(meta.get("annotations") or {}, revision)
        ctx = self._ctx(cr, adapter, view, strategy)
        release_plan = plan(strategy, kind, view.replicas)
        steps = release_plan.steps
        status.update(
            totalSteps=len(steps), plan=plan_to_status(release_plan), observedRevision=revision
        )
        p = Pass(cr, status, adapter, view, strategy, ctx, steps, ops, now)

        # ---- no release in flight
        if not releasing:
            if view.idle:
                if status.get("phase") == Phase.HEALTHY and (
                    status.get("stableRevision") == view.update_revision
                ):
                    return IDLE  # nothing changed: keep the last release's message
                return self._healthy(status, view, now, "all pods run the current revision")
            if view.stable_revision in (None, view.update_revision):
                # The first revision is still rolling out: nothing stable to protect.
                if view.held:
                    await adapter.finalize(view)
                status.update(phase=Phase.INITIALIZING, message="the first revision is rolling out")
                return ACTIVE
            if not view.held:
                if await adapter.hold(view):
                    msg = "the hold webhook missed a template change; held by the controller"
                    set_condition(status, "HoldMissed", True, "HeldByWatch", msg, now)
                    await self.events.post(cr, "Warning", "HoldMissed", msg)
                p.view = await adapter.observe(None)
            return await self._start(p, "release started")

        # ---- a release is in flight
        if view.update_revision != releasing:
            if view.update_revision == status.get("stableRevision"):
                annotations = meta.get("annotations") or {}
                if annotations.get(ROLLBACK_IN_BATCHES_ANNOTATION) == "true":
                    # The pods serving now become the stable side of a step-by-step rollback.
                    p.view = await adapter.observe(None)
                    status["canaryRevision"] = None
                    return await self._start(p, "rollback in batches")
                status["rollingBack"] = True
                return await self._finalize(p)
            await self.events.post(
                cr, "Normal", "Restarted", f"new revision {revision} arrived: back to step 1"
            )
            return await self._start(p, "new revision: restarted at step 1")
        if status.get("rollingBack") or status.get("stepState") == StepState.FINALIZING:
            return await self._finalize(p)
        if ops.aborted or status.get("phase") == Phase.ABORTED:
            return await self._abort(p)
        if status.get("phase") == Phase.FAILED:
            return WAITING
        if ops.paused:
            status.update(phase=Phase.PAUSED, message=f"paused at step {status['currentStep']}")
            return WAITING
        status["phase"] = Phase.PROGRESSING
        return await self._step(p)

    def _healthy(self, status: Obj, view: WorkloadView, now: datetime, message: str) -> float:
        status.update(
            phase=Phase.HEALTHY,
            stepState=StepState.COMPLETED,
            stableRevision=view.update_revision,
            canaryRevision=None,
            rollingBack=None,
            trafficRestoredAt=None,
            stableAppRevision=status.get("observedRevision"),
            message=message,
        )
        set_condition(status, "Progressing", False, "Completed", message, now)
        set_condition(status, "Succeeded", True, "Completed", message, now)
        if any(c["type"] == "HoldMissed" for c in status.get("conditions", [])):
            # The missed hold belonged to the release that just ended.
            set_condition(status, "HoldMissed", False, "ReleaseEnded", message, now)
        return IDLE

    async def _start(self, p: Pass, message: str) -> float:
        cr, status, view, now = p.cr, p.status, p.view, p.now
        stable = status.get("stableRevision") if status.get("canaryRevision") else None
        status.update(
            phase=Phase.PROGRESSING,
            stableRevision=stable or view.stable_revision,
            canaryRevision=view.update_revision,
            currentStep=1,
            stepState=StepState.UPGRADING,
            stepStartedAt=iso(now),
            waitingSince=None,
            rollingBack=None,
            trafficRestoredAt=None,
            message=message,
        )
        set_condition(status, "Progressing", True, "InRolling", message, now)
        set_condition(status, "Succeeded", False, "InRolling", message, now)
        record(status, 1, StepState.UPGRADING, message, now)
        await self.events.post(cr, "Normal", "ReleaseStarted", f"{message}: {view.update_revision}")
        return ACTIVE

    async def _step(self, p: Pass) -> float:
        cr, status, adapter, view, strategy = p.cr, p.status, p.adapter, p.view, p.strategy
        ctx, steps, ops, now = p.ctx, p.steps, p.ops, p.now
        index = int(status.get("currentStep") or 1)
        step = steps[min(index, len(steps)) - 1]
        total = len(steps)
        state = status.get("stepState") or StepState.UPGRADING
        status["currentWeight"] = step.weight
        expected_old = view.replicas - step.new_pods
        if strategy.mode_for(view.kind) is ReleaseMode.CANARY:
            expected_old = view.replicas
        if state != StepState.UPGRADING and (
            view.new_pods != step.new_pods or view.old_pods != expected_old
        ):
            # The workload drifted from the step (scaled, pods deleted): bring it back first.
            state = StepState.UPGRADING
            status.update(stepState=state, stepStartedAt=iso(now))
            record(status, index, state, f"workload changed: {view.replicas} replicas", now)

        if state == StepState.UPGRADING:
            # Stable Services pinned to the stable pods before any new pod exists.
            await self.traffic.prepare(strategy.routings, ctx)
            tolerated = failure_threshold_pods(strategy, step.new_pods)
            ready = view.new_ready >= step.new_pods - tolerated and view.new_pods >= step.new_pods
            await adapter.scale_to(view, step.new_pods, surge_ready=ready)
            view = await adapter.observe(status.get("stableRevision"))
            done = (
                view.new_pods == step.new_pods
                and view.new_ready >= step.new_pods - tolerated
                and view.old_pods == expected_old
            )
            if not done:
                if deadline_passed(
                    parse_iso(status.get("stepStartedAt")), strategy.progress_deadline_seconds, now
                ):
                    reason, why = classify(await adapter.new_revision_pods(view))
                    return await self._fail(cr, status, reason, f"step {index}/{total}: {why}", now)
                status["message"] = describe_step(step, total, "upgrading pods")
                return ACTIVE
            state = StepState.TRAFFIC
            status["stepState"] = state
            record(status, index, state, "pods ready", now)

        if state == StepState.TRAFFIC:
            if strategy.routings:
                if (
                    step.new_pods > 0
                    and await self.traffic.canary_ready(strategy.routings, ctx) == 0
                ):
                    status["message"] = describe_step(step, total, "waiting for canary endpoints")
                    return ACTIVE
                await self.traffic.route(strategy.routings, ctx, step)
            # Waits count from the moment the traffic change has settled (gracePeriodSeconds).
            grace = max((r.grace_period_seconds for r in strategy.routings), default=0)
            state = StepState.WAITING
            status.update(stepState=state, waitingSince=iso(now + timedelta(seconds=grace)))
            record(status, index, state, "traffic moved", now)

        if state in (StepState.WAITING, StepState.APPROVAL):
            settling = parse_iso(status.get("waitingSince"))
            if settling is not None and settling > now:
                left = (settling - now).total_seconds()
                status["message"] = describe_step(step, total, f"traffic settling ({left:.0f}s)")
                return left
            if step.wait.kind is WaitKind.APPROVAL and ops.approved_step != index:
                app = (cr["spec"].get("application") or {}).get("name") or cr["metadata"]["name"]
                approve = f"kubectl progressive approve {app} -n {cr['metadata']['namespace']}"
                status.update(
                    stepState=StepState.APPROVAL,
                    message=f"{describe_step(step, total, 'waiting for approval')} ({approve})",
                )
                record(status, index, StepState.APPROVAL, "waiting for approval", now)
                return WAITING
            left = wait_remaining(step, parse_iso(status.get("waitingSince")), now)
            if left > 0:
                status["message"] = describe_step(step, total, f"waiting {int(left)}s")
                return min(left, WAITING)
            if index >= total:
                status.update(stepState=StepState.FINALIZING, message="finalizing")
                record(status, index, StepState.FINALIZING, "all steps done", now)
                return ACTIVE
            status.update(
                currentStep=index + 1,
                stepState=StepState.UPGRADING,
                stepStartedAt=iso(now),
                waitingSince=None,
            )
            record(status, index + 1, StepState.UPGRADING, "step started", now)
            await self.events.post(cr, "Normal", "StepStarted", f"step {index + 1}/{total}")
            return 0.0
        return ACTIVE

    @staticmethod
    def _grace_left(status: Obj, key: str, strategy: Strategy, now: datetime) -> float:
        """Seconds until the traffic change recorded under ``key`` has settled
        (``gracePeriodSeconds`` of the routings, the largest one)."""
        grace = max((r.grace_period_seconds for r in strategy.routings), default=0)
        started = parse_iso(status.get(key))
        if started is None:
            status[key] = iso(now)
            started = now
        return max(grace - (now - started).total_seconds(), 0.0)

    async def _finalize(self, p: Pass) -> float:
        cr, status, adapter, view, now = p.cr, p.status, p.adapter, p.view, p.now
        strategy, ctx = p.strategy, p.ctx
        # Traffic first goes back to the (unpinned) stable Service, then the workload rolls.
        if not status.get("trafficRestoredAt"):  # once per release: later passes only wait
            await self.traffic.restore(strategy.routings, ctx)
        left = self._grace_left(status, "trafficRestoredAt", strategy, now)
        if left > 0:
            status["message"] = f"traffic back on the stable Service; pods move in {left:.0f}s"
            return left
        if not await adapter.finalize(view):
            status["message"] = (
                "rolling back to the stable revision" if status.get("rollingBack") else "finalizing"
            )
            return ACTIVE
        message = (
            "rolled back to the stable revision"
            if status.get("rollingBack")
            else "release completed"
        )
        record(status, int(status.get("currentStep") or 0), StepState.COMPLETED, message, now)
        await self.events.post(cr, "Normal", "Completed", message)
        status["currentWeight"] = None
        return self._healthy(status, view, now, message)

    async def _abort(self, p: Pass) -> float:
        cr, status, adapter, view, now = p.cr, p.status, p.adapter, p.view, p.now
        strategy, ctx = p.strategy, p.ctx
        step = int(status.get("currentStep") or 0)
        if not status.get("trafficRestoredAt"):
            await self.events.post(cr, "Warning", "Aborting", "release aborted: back to stable")
            record(status, step, "Aborting", "traffic back to stable first", now)
        # Traffic back to stable first, then (after the grace period) the pods.
        if not status.get("trafficRestoredAt"):  # once per release: later passes only wait
            await self.traffic.restore(strategy.routings, ctx)
        status["currentWeight"] = 0
        left = self._grace_left(status, "trafficRestoredAt", strategy, now)
        if left > 0:
            status["message"] = f"aborting: traffic back on stable; pods move in {left:.0f}s"
            return left
        await adapter.abort(view)
        view = await adapter.observe(status.get("stableRevision"))
        if view.new_pods > 0 or view.old_pods < view.replicas:
            status["message"] = (
                f"aborting: {view.new_pods} pod(s) of the new revision still running, "
                f"{view.old_pods}/{view.replicas} stable"
            )
            return ACTIVE
        msg = (
            "aborted: every pod back on the stable revision; "
            "roll back (kubectl progressive rollback) or release a new version"
        )
        if status.get("phase") != Phase.ABORTED:
            record(status, step, "Aborted", "every pod back on stable", now)
        status.update(phase=Phase.ABORTED, message=msg)
        set_condition(status, "Progressing", False, "Aborted", msg, now)
        return WAITING

    async def _fail(self, cr: Obj, status: Obj, reason: str, message: str, now: datetime) -> float:
        status.update(phase=Phase.FAILED, message=message, failureReason=reason)
        set_condition(status, "Progressing", False, reason, message, now)
        record(status, int(status.get("currentStep") or 0), Phase.FAILED, message, now)
        await self.events.post(cr, "Warning", reason, message)
        log.warning("release failed", extra={"rollout": cr["metadata"]["name"], "reason": reason})
        return WAITING
