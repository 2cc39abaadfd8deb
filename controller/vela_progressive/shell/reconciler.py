"""The shell of one ProgressiveRollout's release: observe → decide → act.

A reconcile pass reads the CR, observes the workload through its adapter (and the canary
Service's endpoints when the step routes traffic), asks the pure decision function
(:func:`vela_progressive.core.decide.decide`) for the new status and the actions, and executes
the actions in order. When an action fails, the status of that decision is not kept: the pass
reports the failure and the next pass decides again from what it observes. State lives only in
``status`` (and in the workload itself), and every action is idempotent, so a controller restart
or a kill -9 resumes exactly where it was: no step is skipped or repeated.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from vela_progressive.core import decide as act
from vela_progressive.core import identity, telemetry
from vela_progressive.core.analysis.judge import Result
from vela_progressive.core.analysis.spec import Metric
from vela_progressive.core.analysis.targets import targets_for
from vela_progressive.core.decide import (
    ENDING_STAGES,
    Action,
    Decision,
    Observation,
    Rollout,
    Taken,
    decide,
    due_measurements,
    due_webhooks,
    needs_canary_endpoints,
    needs_traffic_check,
    plan_for,
    stable_hint,
    traffic_failed,
    traffic_ok,
)
from vela_progressive.core.model import ReleaseMode, Strategy
from vela_progressive.core.release import Operations, spent_operations
from vela_progressive.core.status import Ending, Gate, RolloutStatus, Stage
from vela_progressive.core.telemetry import Signal
from vela_progressive.core.traffic import TrafficContext
from vela_progressive.core.validation import InvalidSpec, Problem, validate_properties
from vela_progressive.core.workloads import WorkloadView, registry
from vela_progressive.shell import webhooks
from vela_progressive.shell.events import EventSink
from vela_progressive.shell.kube import Kube, KubeError
from vela_progressive.shell.metrics import Subject
from vela_progressive.shell.prometheus import Prometheus, auth_headers
from vela_progressive.shell.traffic.manager import TrafficError
from vela_progressive.shell.traffic.port import TrafficPort
from vela_progressive.shell.workloads import WorkloadAdapter, WorkloadMissing, adapter_for

Obj = dict[str, Any]
log = logging.getLogger("vela_progressive.reconciler")

#: Decisions taken in one pass at most while each asks to look again at once (a state change
#: that has nothing to wait for, e.g. pods Ready → route traffic → start waiting).
MAX_DECISIONS_PER_PASS = 6
#: Validated strategies kept (one per rollout generation).
STRATEGY_CACHE_SIZE = 4096


@dataclass
class Outcome:
    status: Obj
    requeue: float
    changed: bool = True
    #: Events of the pass, to announce once ``status`` is written (:meth:`Reconciler.announce`):
    #: a pass that fails before is made again, and its Events would be posted twice.
    events: tuple[act.PostEvent, ...] = ()
    #: Whose pass it was, and what it did (``core.telemetry``): recorded once ``status`` is.
    subject: Subject | None = None
    signals: tuple[Signal, ...] = ()
    #: The server's answers to the status writes the pass made before acting (oldest first):
    #: the release loop goes on from the last one when ``status`` is what it already holds.
    written: tuple[Obj, ...] = ()


def _events(actions: tuple[Action, ...]) -> list[act.PostEvent]:
    return [a for a in actions if isinstance(a, act.PostEvent)]


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


def strategy_of(cr: Obj) -> tuple[Strategy, str]:
    """The validated strategy and the workload kind's registry key, or :class:`InvalidSpec`
    naming the field."""
    spec = cr.get("spec") or {}
    component = (spec.get("application") or {}).get("component") or cr["metadata"]["name"]
    ref = spec.get("workloadRef") or {}
    raw = spec.get("strategy")
    override = raw.get("workloadType") if isinstance(raw, dict) else None
    target = override if isinstance(override, dict) and override.get("kind") else ref
    api_version, kind = str(target.get("apiVersion") or "apps/v1"), str(target.get("kind") or "")
    entry = registry.find_type(api_version, kind)
    problems = []
    if not ref.get("name"):
        problems.append(Problem("spec.workloadRef.name", "is missing", "name the workload"))
    if entry is None:
        problems.append(
            Problem(
                "spec.workloadRef.kind",
                f"workload kind {kind or '(none)'} is not supported (apiVersion {api_version})",
                f"use one of {', '.join(registry.served_types())}",
            )
        )
    if problems or entry is None:
        raise InvalidSpec(problems, component)
    try:
        props = validate_properties(raw, component=component, workload_kind=entry.key)
    except InvalidSpec as exc:
        raise exc.under("spec.strategy") from None
    return Strategy.from_properties(props, component), entry.key


@dataclass
class Reconciler:
    kube: Kube
    traffic: TrafficPort
    events: EventSink
    clock: Callable[[], datetime]
    #: Builds the workload adapter (injected so the shell can be tested with fakes).
    adapters: Callable[[Kube, str, str, str, ReleaseMode, Obj], WorkloadAdapter] = adapter_for
    #: Where analysis queries go.
    prometheus: Prometheus = field(default_factory=Prometheus)
    #: The key the admission webhook signs operation stamps with (``core.identity``); empty:
    #: no webhook, every operation reads as unverified.
    stamp_key: bytes = b""
    #: (uid, generation) -> validated strategy and kind, or the error: a spec is validated once
    #: per generation, not on every pass.
    _strategies: OrderedDict[tuple[str, int | None], tuple[Strategy | None, str, str | None]] = (
        field(default_factory=OrderedDict)
    )
    #: Writes of each rollout (namespace, name) made by its passes other than status writes:
    #: the release loop reads the rollout again after a pass that wrote it (``shell.rollouts``).
    writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: The answers to each rollout's status writes in the pass under way (``Outcome.written``).
    _answers: dict[tuple[str, str], list[Obj]] = field(default_factory=dict)

    # ------------------------------------------------------------------ entry points
    async def reconcile(self, cr: Obj) -> Outcome:
        now = self.clock()
        before = cr.get("status") or {}
        status = RolloutStatus.from_dict(before, now)
        rollout = self._rollout(cr)
        meta = cr["metadata"]
        annotations = meta.get("annotations") or {}
        where = identity.rollout_id(meta.get("namespace", ""), meta["name"])
        by = identity.actors(annotations, self.stamp_key, where)
        ops = Operations.from_annotations(annotations, rollout.revision, by)
        pending: list[act.PostEvent] = []
        loop = (meta.get("namespace", ""), meta["name"])
        answers = self._answers[loop] = []
        try:
            decision = await self._pass(cr, status, rollout, ops, now, pending)
        finally:
            del self._answers[loop]
        after = decision.status.to_dict()
        # Compared with what the server holds now: the pass' own last status write, if any (a
        # step's status is written before its pods move, and usually is the pass' last word).
        held = (answers[-1].get("status") or {}) if answers else before
        changed = any(held.get(key) != value for key, value in after.items())
        return Outcome(
            status=after,
            requeue=decision.requeue,
            changed=changed,
            events=tuple(pending),
            subject=Subject(rollout.namespace, rollout.application, rollout.name),
            signals=telemetry.signals(status, decision.status),
            written=tuple(answers),
        )

    async def announce(self, cr: Obj, events: tuple[act.PostEvent, ...]) -> None:
        """Post the Events of a pass whose status is written."""
        for event in events:
            await self.events.post(cr, event.type, event.reason, event.message)

    async def release(self, cr: Obj) -> bool:
        """The CR is going away: hand the workload back in a consistent state.

        Same order as a completed release: stable Services select every pod, routes restored,
        the workload handed back, then Services restored. ``True`` once done; call again until
        then (the workload's controller is finishing).
        """
        rollout = self._rollout(cr)
        if rollout.strategy is None or await self._namespace_ending(rollout.namespace):
            return True
        adapter = self._adapter(cr, rollout)
        status = RolloutStatus.from_dict(cr.get("status"), self.clock())
        try:
            view = await adapter.observe(stable_hint(status))
        except WorkloadMissing:
            return True
        ctx = self._ctx(cr, adapter, view, rollout.strategy)
        routings = rollout.strategy.routings
        # The order of a release whose trait was removed, without its grace periods.
        for stage in ENDING_STAGES[Ending.RELEASING]:
            if stage is Stage.PODS:
                if not await adapter.finalize(view):
                    return False
            elif routings and stage is Stage.UNPIN:
                await self.traffic.unpin_services(routings, ctx)
            elif routings and stage is Stage.ROUTES:
                await self.traffic.restore_routes(routings, ctx)
            elif routings and stage is Stage.SERVICES:
                await self.traffic.restore_services(routings, ctx)
        await self.events.post(cr, "Normal", "Released", "rollout removed: workload handed back")
        return True

    async def _namespace_ending(self, namespace: str) -> bool:
        """Whether the rollout goes with its namespace: its workload goes too, and there is
        nothing to hand back to (the namespace's ReplicaSets and pods are being deleted, and
        nothing new may be created in it, so a hand-back would wait for ever)."""
        try:
            found = await self.kube.get("v1", "Namespace", namespace)
        except KubeError as exc:
            log.warning("reading namespace %s: %s; handing the workload back", namespace, exc)
            return False
        return bool(found and found["metadata"].get("deletionTimestamp"))

    # ------------------------------------------------------------------ the pass
    async def _pass(
        self,
        cr: Obj,
        status: RolloutStatus,
        rollout: Rollout,
        ops: Operations,
        now: datetime,
        pending: list[act.PostEvent],
    ) -> Decision:
        """One pass; its Events go to ``pending`` (posted once the status recording them is)."""
        if rollout.strategy is None:
            decision = decide(status, rollout, Observation(None), ops, now)
            pending += _events(decision.actions)
            return decision
        adapter = self._adapter(cr, rollout)
        handed_back = False
        traffic_moved = False
        decision = Decision(status, (), 0.0)
        written = status
        for left in reversed(range(MAX_DECISIONS_PER_PASS)):
            obs, ctx = await self._observe(cr, adapter, status, rollout, handed_back, now)
            decision = decide(status, rollout, obs, ops, now)
            recorded: tuple[act.PostEvent, ...] = ()
            ahead: RolloutStatus | None = None
            if _moves_pods(decision) and _milestone(decision.status) != _milestone(written):
                # Status before action: whoever reads the rollout (people, the CLI, a sampler)
                # never sees pods of a step or an ending the status does not show yet.
                await self._write_status(cr, decision.status)
                written = decision.status
                # What the pass decided before is in the status now: its Events may go, once
                # the pods have moved (an Event is no reason to keep a step waiting).
                recorded = tuple(pending)
                pending.clear()
            else:
                ahead = _status_ahead(adapter, obs, decision, rollout, ops, now, left, written)
            so_far: tuple[act.PostEvent, ...] = ()
            if ahead is not None:  # the Events decided so far are in the status written ahead
                so_far = tuple(pending)
                pending.clear()
            writes = adapter.writes
            try:
                moving = self._act(cr, adapter, obs.workload, ctx, rollout, decision, pending)
                if ahead is None:
                    handed_back = await moving
                else:
                    # The step these pod moves lead to is known: its status is written while
                    # they are made, not after (one API round trip less between two steps).
                    handed_back = await self._writing_status(cr, ahead, moving)
                    written, recorded = ahead, so_far
            except TrafficError as exc:
                # Nothing is half-changed (the traffic manager undid its writes); say what failed
                # and try again: the routing object may simply not exist yet.
                failed = traffic_failed(status, str(exc), now)
                pending += _events(failed.actions)
                return failed
            finally:
                await self.announce(cr, recorded)
            traffic_moved = traffic_moved or any(
                isinstance(a, act.Route | act.RestoreRoutes | act.PrepareServices)
                for a in decision.actions
            )
            status = decision.status
            # Writes whose answers are in the watch-backed copies may have finished the step
            # (old pods a scaled-down ReplicaSet no longer wants count as gone): decide again
            # from what they left now, not when the workload's controller reports.
            again = obs.watched and (adapter.writes != writes or ahead is not None)
            if decision.requeue > 0 and not handed_back and not again:
                break
        if traffic_moved:
            traffic_ok(decision.status, now)
        return decision

    async def _write_status(self, cr: Obj, status: RolloutStatus) -> None:
        meta = cr["metadata"]
        written = await self.kube.patch(
            cr["apiVersion"],
            cr["kind"],
            meta["name"],
            meta["namespace"],
            {"status": status.to_dict()},
            subresource="status",
        )
        # The write moved the resourceVersion. While the annotations are still the ones this
        # pass read, a later guarded write of the pass (clearing spent operations) may use the
        # new one; an operation written meanwhile keeps the old one, so that write conflicts.
        after = (written or {}).get("metadata") or {}
        if after.get("resourceVersion") and after.get("annotations") == meta.get("annotations"):
            meta["resourceVersion"] = after["resourceVersion"]
        answers = self._answers.get((meta["namespace"], meta["name"]))
        if answers is not None and written:
            answers.append(written)

    async def _writing_status(
        self, cr: Obj, status: RolloutStatus, moving: Coroutine[Any, Any, bool]
    ) -> bool:
        """Write ``status`` while ``moving`` runs; ``moving``'s answer once both are done, or
        the first failure."""
        wrote, moved = await asyncio.gather(
            self._write_status(cr, status), moving, return_exceptions=True
        )
        for failure in (wrote, moved):
            if isinstance(failure, BaseException):
                raise failure
        assert isinstance(moved, bool)
        return moved

    async def _observe(
        self,
        cr: Obj,
        adapter: WorkloadAdapter,
        status: RolloutStatus,
        rollout: Rollout,
        handed_back: bool,
        now: datetime,
    ) -> tuple[Observation, TrafficContext | None]:
        try:
            view = await adapter.observe(stable_hint(status))
        except WorkloadMissing as exc:
            return Observation(None, missing=str(exc)), None
        assert rollout.strategy is not None
        ctx = self._ctx(cr, adapter, view, rollout.strategy)
        ready = None
        if needs_canary_endpoints(status, rollout):
            ready = await self.traffic.canary_ready(rollout.strategy.routings, ctx)
        measurements = await self._measurements(status, rollout, view, ctx, now)
        hooks = due_webhooks(status, rollout, now)
        answers = await asyncio.gather(*(webhooks.call(hook, body) for hook, body in hooks))
        problem = None
        if needs_traffic_check(status, rollout):
            steps = plan_for(rollout.strategy, rollout.kind, view.replicas).steps
            problem = await self.traffic.check(rollout.strategy.routings, ctx, steps)
        pods = tuple(await adapter.new_revision_pods(view))
        obs = Observation(
            view,
            canary_ready=ready,
            new_revision_pods=pods,
            handed_back=handed_back,
            traffic_problem=problem,
            measurements=measurements,
            webhooks={hook.name: a for (hook, _), a in zip(hooks, answers, strict=True)},
            watched=adapter.watched,
        )
        return obs, ctx

    async def _measurements(
        self,
        status: RolloutStatus,
        rollout: Rollout,
        view: WorkloadView,
        ctx: TrafficContext,
        now: datetime,
    ) -> dict[tuple[Gate, str], Taken]:
        """Send the queries of the measurements that are due, all at once."""
        if not status.analysis or rollout.strategy is None:
            return {}
        try:
            steps = plan_for(rollout.strategy, rollout.kind, view.replicas).steps
        except InvalidSpec:
            return {}
        step = steps[min(max(status.current_step, 1), len(steps)) - 1]
        targets = targets_for(
            rollout.strategy,
            view,
            canary_selector=ctx.canary_selector,
            stable_selector=ctx.stable_selector,
            new_pods=step.new_pods,
        )
        dues = due_measurements(status, rollout, targets, now)
        taken: dict[tuple[Gate, str], Taken] = {}
        for due in dues:
            headers = await self._credentials(due.metric, view.namespace)
            error = headers if isinstance(headers, str) else due.error
            if error is not None or isinstance(headers, str):
                taken[(due.gate, due.metric.name)] = Taken({"canary": Result(error=error)})
                continue
            answers = await asyncio.gather(
                *(
                    self.prometheus.query(q.promql, due.metric.prometheus_address, headers)
                    for q in due.queries
                )
            )
            results = {q.role: a for q, a in zip(due.queries, answers, strict=True)}
            canary = next((q.promql for q in due.queries if q.role == "canary"), "")
            taken[(due.gate, due.metric.name)] = Taken(results, canary)
        return taken

    async def _credentials(self, metric: Metric, namespace: str) -> dict[str, str] | str:
        """Headers for the metric's Prometheus, or why they cannot be had (an error result)."""
        if metric.auth_secret is None:
            return {}
        try:
            secret = await self.kube.get("v1", "Secret", metric.auth_secret, namespace)
        except KubeError as exc:
            if exc.status == 403:
                return (
                    f"the controller may not read Secret {namespace}/{metric.auth_secret}: "
                    "grant its ServiceAccount get on it (a Role, see docs/analysis.md)"
                )
            return f"Secret {namespace}/{metric.auth_secret}: {exc}"
        return auth_headers(secret, metric.auth_type, metric.auth_secret)

    async def _act(
        self,
        cr: Obj,
        adapter: WorkloadAdapter,
        view: WorkloadView | None,
        ctx: TrafficContext | None,
        rollout: Rollout,
        decision: Decision,
        pending: list[act.PostEvent],
    ) -> bool:
        """Execute the actions in order (Events into ``pending``); ``True`` when a hand-back
        found the workload finished."""
        handed_back = False
        assert rollout.strategy is not None
        routings = rollout.strategy.routings
        for action in decision.actions:
            if isinstance(action, act.PostEvent):
                pending.append(action)
                continue
            if isinstance(action, act.ClearOperations):
                await self._clear_operations(cr)
                continue
            assert view is not None, "workload actions need a workload"
            assert ctx is not None
            match action:
                case act.Hold():
                    await adapter.hold(view)
                case act.PrepareServices():
                    await self.traffic.prepare(routings, ctx)
                case act.ScaleTo(new_pods=n, surge_ready=ready):
                    await adapter.scale_to(view, n, surge_ready=ready)
                case act.Route(step=step):
                    await self.traffic.route(routings, ctx, step)
                case act.RestoreRoutes():
                    await self.traffic.restore_routes(routings, ctx)
                case act.UnpinServices():
                    await self.traffic.unpin_services(routings, ctx)
                case act.RestoreServices():
                    await self.traffic.restore_services(routings, ctx)
                case act.AbortPods():
                    await adapter.abort(view)
                case act.HandBack():
                    handed_back = await adapter.finalize(view)
                case act.NotifyWebhook(hook=hook, body=body):
                    answer = await webhooks.call(hook, body)
                    kind = "Normal" if answer.ok else "Warning"
                    pending.append(
                        act.PostEvent(
                            kind, "WebhookNotified", f"{hook.type} {hook.name}: {answer.detail}"
                        )
                    )
        return handed_back

    async def _clear_operations(self, cr: Obj) -> None:
        meta = cr["metadata"]
        spent = spent_operations(meta.get("annotations") or {})
        if spent:
            self.writes[meta["namespace"], meta["name"]] += 1
            patch: Obj = {"annotations": spent}
            if meta.get("resourceVersion"):  # an operation written since the read: a conflict
                patch["resourceVersion"] = meta["resourceVersion"]
            await self.kube.patch(
                cr["apiVersion"], cr["kind"], meta["name"], meta["namespace"], {"metadata": patch}
            )

    # ------------------------------------------------------------------ helpers
    def _rollout(self, cr: Obj) -> Rollout:
        meta, spec = cr["metadata"], cr.get("spec") or {}
        key = (str(meta.get("uid", meta["name"])), meta.get("generation"))
        cached = self._strategies.get(key)
        if cached is None:
            try:
                valid, kind = strategy_of(cr)
                cached = (valid, kind, None)
            except InvalidSpec as exc:
                cached = (None, "", str(exc))
            self._strategies[key] = cached
            while len(self._strategies) > STRATEGY_CACHE_SIZE:
                self._strategies.popitem(last=False)
        strategy, kind, error = cached
        return Rollout(
            name=meta["name"],
            namespace=meta.get("namespace", ""),
            application=(spec.get("application") or {}).get("name") or meta["name"],
            revision=(spec.get("revision") or {}).get("name", ""),
            kind=kind,
            generation=meta.get("generation"),
            strategy=strategy,
            spec_error=error,
        )

    def _adapter(self, cr: Obj, rollout: Rollout) -> WorkloadAdapter:
        assert rollout.strategy is not None
        return self.adapters(
            self.kube,
            rollout.kind,
            cr["metadata"]["namespace"],
            cr["spec"]["workloadRef"]["name"],
            rollout.strategy.mode_for(rollout.kind),
            owner_reference(cr),
        )

    def _ctx(
        self, cr: Obj, adapter: WorkloadAdapter, view: WorkloadView, strategy: Strategy
    ) -> TrafficContext:
        return TrafficContext(
            namespace=view.namespace,
            workload=view.name,
            canary_selector=adapter.canary_selector(view),
            stable_selector=adapter.stable_selector(view),
            disable_canary_service=strategy.disable_canary_service,
            owner_references=(owner_reference(cr),),
        )


def _moves_pods(decision: Decision) -> bool:
    return any(isinstance(a, act.ScaleTo | act.AbortPods | act.HandBack) for a in decision.actions)


def _status_ahead(
    adapter: WorkloadAdapter,
    obs: Observation,
    decision: Decision,
    rollout: Rollout,
    ops: Operations,
    now: datetime,
    within: int,
    written: RolloutStatus,
) -> RolloutStatus | None:
    """The status of the next decision that moves pods, when ``decision``'s only write is a
    :class:`~vela_progressive.core.decide.ScaleTo` taking old pods down (its new pods are
    Ready) and the reads are watched: decided from the view its writes will leave
    (``WorkloadAdapter.foresee``), through the decisions that only change the status (a step
    done, the next one started). ``None`` when none is in reach of the ``within`` decisions the
    pass has left (it must come to that decision itself), or when its status is at the
    milestone already ``written``.

    The pass decides again from what it observes once the writes are made, and acts only on
    that decision; what is written ahead is its status, which leads its pods as every status
    write does. Should the writes fail, the status shows the next step with the pods still on
    this one, and the next pass moves them there: a step's writes are computed from the pods
    as they are, whichever step they are on.
    """
    moves = [a for a in decision.actions if not isinstance(a, act.PostEvent)]
    view = obs.workload
    if not obs.watched or view is None or len(moves) != 1:
        return None
    scale = moves[0]
    if not isinstance(scale, act.ScaleTo) or not scale.surge_ready:
        # New pods still to come: the foreseen view is this one, and so is the decision.
        return None
    foreseen = adapter.foresee(
        view,
        scale.new_pods,
        surge_ready=scale.surge_ready,
        stable_hint=stable_hint(decision.status),
    )
    # Only the pods are foreseen: what a gate would need observed afresh (canary endpoints,
    # measurements, webhook answers) is left out, so a gated step is never written ahead.
    seen = replace(obs, workload=foreseen, canary_ready=None, measurements={}, webhooks={})
    for _ in range(within):
        decision = decide(decision.status, rollout, seen, ops, now)
        if any(not isinstance(a, act.PostEvent) for a in decision.actions):
            moves_on = _moves_pods(decision) and _milestone(decision.status) != _milestone(written)
            return decision.status if moves_on else None
        if decision.requeue > 0:
            return None
    return None


def _milestone(status: RolloutStatus) -> tuple[object, ...]:
    """What a reader compares pods with: the step, its state, the ending and its stage."""
    return (status.current_step, status.step_state, status.ending, status.ending_stage)
