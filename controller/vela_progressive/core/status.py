"""The typed status of a ProgressiveRollout: what the decision function reads and returns.

Every field here is documented in the CRD (``templates/crd/progressive-rollout.crd.yaml.j2``);
``RolloutStatus.from_dict`` / ``to_dict`` round-trip the CR's ``status``. Collections are tuples
and the decision function works on a shallow copy, so a status is never changed in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

Obj = dict[str, Any]

TIMELINE_LIMIT = 50
_E = TypeVar("_E", bound=StrEnum)
_ISO = "%Y-%m-%dT%H:%M:%SZ"


class Phase(StrEnum):
    INITIALIZING = "Initializing"
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    FAILED = "Failed"
    ABORTED = "Aborted"


class StepState(StrEnum):
    UPGRADING = "Upgrading"
    TRAFFIC = "TrafficRouting"
    WAITING = "Waiting"
    APPROVAL = "WaitingApproval"
    ANALYSIS = "Analyzing"
    COMPLETED = "Completed"


class Gate(StrEnum):
    """Which analysis a metric run belongs to."""

    #: ``canary.steps[].analysis``: must pass before the step goes on.
    STEP = "step"
    #: ``canary.analysis``: measured in the background; a failure applies onFailure.
    BACKGROUND = "background"
    #: ``canary.webhooks``: an HTTP gate; ``passed`` is 1 once it answered 2xx.
    WEBHOOK = "webhook"


class Ending(StrEnum):
    """How a release is being wound up (``status.ending``)."""

    #: Every step passed: Services unpinned, routes restored, workload handed back.
    COMPLETING = "Completing"
    #: The revision went back to the stable one: routes, then pods (handed back), then Services.
    ROLLING_BACK = "RollingBack"
    #: Abort (asked for, or a failure with ``onFailure: abort``): routes, pods, then Services.
    ABORTING = "Aborting"
    #: The workload lost the hold label (the trait was removed): everything handed back.
    RELEASING = "Releasing"


class Stage(StrEnum):
    """Where an ending stands (``status.endingStage``); each stage acts once, then waits."""

    UNPIN = "UnpinServices"
    ROUTES = "RestoreRoutes"
    PODS = "MovePods"
    SERVICES = "RestoreServices"
    DONE = "Done"


def iso(moment: datetime) -> str:
    """``moment`` as the status writes it (``_ISO``); formatted by hand, as ``strftime`` is
    slow for what every status of every pass goes through.

    >>> iso(datetime(2026, 12, 3, 1, 5, 9)) == datetime(2026, 12, 3, 1, 5, 9).strftime(_ISO)
    True
    """
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def parse_iso(value: object) -> datetime | None:
    """A time the status holds (``_ISO``), or ``None``; the exact form ``iso`` writes is read
    without ``strptime``, which was 2.6% of the controller's CPU at 1,000 releases in flight.

    >>> parse_iso("2026-12-03T01:05:09Z"), parse_iso("2026-12-03T01:05:09")
    (datetime.datetime(2026, 12, 3, 1, 5, 9), None)
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        if len(value) == 20 and value[10] == "T" and value[19] == "Z":
            return datetime.fromisoformat(value[:19])
        return datetime.strptime(value, _ISO)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str
    last_transition_time: datetime

    def to_dict(self) -> Obj:
        return {
            "type": self.type,
            "status": "True" if self.status else "False",
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": iso(self.last_transition_time),
        }

    @classmethod
    def from_dict(cls, raw: Obj, now: datetime) -> Condition:
        return cls(
            type=str(raw.get("type", "")),
            status=raw.get("status") == "True",
            reason=str(raw.get("reason", "")),
            message=str(raw.get("message", "")),
            last_transition_time=parse_iso(raw.get("lastTransitionTime")) or now,
        )


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for an operation, as the controller's admission webhook stamped it
    (``core.identity``): the user and groups of the admission request, never a value the
    client wrote. ``verified`` is False when the stamp is missing, is for another value, or its
    signature is not the controller's; ``problem`` says which."""

    #: ``approve``, ``abort``, ``retry`` ... (the annotation's name after the prefix).
    operation: str
    #: The annotation value acted on, e.g. ``app-v2/1``.
    value: str
    user: str
    groups: tuple[str, ...] = ()
    #: When the API server admitted the change (``None`` without a stamp).
    at: datetime | None = None
    verified: bool = False
    problem: str = ""

    def describe(self) -> str:
        """``alice``, or ``alice (unverified: why)``.

        >>> Actor("approve", "v2/1", "alice", verified=True).describe()
        'alice'
        >>> Actor("approve", "v2/1", "unknown", problem="no stamp").describe()
        'unknown (unverified: no stamp)'
        """
        return self.user if self.verified else f"{self.user} (unverified: {self.problem})"

    def to_dict(self) -> Obj:
        out: Obj = {
            "operation": self.operation,
            "value": self.value,
            "user": self.user,
            "groups": list(self.groups),
            "verified": self.verified,
        }
        if self.at is not None:
            out["at"] = iso(self.at)
        if self.problem:
            out["problem"] = self.problem
        return out

    @classmethod
    def from_dict(cls, raw: Obj) -> Actor:
        groups = raw.get("groups")
        return cls(
            operation=str(raw.get("operation", "")),
            value=str(raw.get("value", "")),
            user=str(raw.get("user", "")),
            groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
            at=parse_iso(raw.get("at")),
            verified=raw.get("verified") is True,
            problem=str(raw.get("problem", "")),
        )


@dataclass(frozen=True, slots=True)
class Seen:
    """What the release showed when an operation was acted on: pods, traffic, analysis."""

    new_pods: int
    new_ready: int
    replicas: int
    #: Traffic weight on the new version (``None`` without a traffic routing).
    weight: int | None = None
    #: The step's latest measurement per metric, e.g. ``error-rate=0.012 (Passed, < 0.05)``.
    analysis: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for Events and ``kubectl progressive status``.

        >>> Seen(2, 2, 10, 20, ("error-rate=0.01 (Passed, < 0.05)",)).describe()
        '2/10 pods new (2 Ready), weight 20%, error-rate=0.01 (Passed, < 0.05)'
        """
        parts = [f"{self.new_pods}/{self.replicas} pods new ({self.new_ready} Ready)"]
        if self.weight is not None:
            parts.append(f"weight {self.weight}%")
        parts.extend(self.analysis)
        return ", ".join(parts)

    def to_dict(self) -> Obj:
        out: Obj = {"newPods": self.new_pods, "newReady": self.new_ready, "replicas": self.replicas}
        if self.weight is not None:
            out["weight"] = self.weight
        if self.analysis:
            out["analysis"] = list(self.analysis)
        return out

    @classmethod
    def from_dict(cls, raw: Obj) -> Seen:
        analysis = raw.get("analysis")
        return cls(
            new_pods=_int(raw.get("newPods")),
            new_ready=_int(raw.get("newReady")),
            replicas=_int(raw.get("replicas")),
            weight=_opt_int(raw.get("weight")),
            analysis=tuple(str(a) for a in analysis) if isinstance(analysis, list) else (),
        )


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    step: int
    state: str
    started_at: datetime
    message: str
    finished_at: datetime | None = None
    #: Who asked for the operation this entry records (approve, abort, retry).
    by: Actor | None = None
    #: What the release showed at that moment (approvals).
    seen: Seen | None = None

    def to_dict(self) -> Obj:
        out: Obj = {
            "step": self.step,
            "state": self.state,
            "startedAt": iso(self.started_at),
            "message": self.message,
        }
        if self.finished_at is not None:
            out["finishedAt"] = iso(self.finished_at)
        if self.by is not None:
            out["by"] = self.by.to_dict()
        if self.seen is not None:
            out["seen"] = self.seen.to_dict()
        return out

    @classmethod
    def from_dict(cls, raw: Obj, now: datetime) -> TimelineEntry:
        by, seen = raw.get("by"), raw.get("seen")
        return cls(
            step=_int(raw.get("step")),
            state=str(raw.get("state", "")),
            started_at=parse_iso(raw.get("startedAt")) or now,
            message=str(raw.get("message", "")),
            finished_at=parse_iso(raw.get("finishedAt")),
            by=Actor.from_dict(by) if isinstance(by, dict) else None,
            seen=Seen.from_dict(seen) if isinstance(seen, dict) else None,
        )


@dataclass(frozen=True, slots=True)
class MetricRun:
    """Progress of one metric of the analysis running now."""

    name: str
    gate: Gate
    step: int
    passed: int = 0
    failed: int = 0
    no_data: int = 0
    #: Measurements in a row that could not be taken (Prometheus errors).
    errors: int = 0
    next_at: datetime | None = None

    def to_dict(self) -> Obj:
        return {
            "name": self.name,
            "gate": self.gate.value,
            "step": self.step,
            "passed": self.passed,
            "failed": self.failed,
            "noData": self.no_data,
            "errors": self.errors,
            "nextAt": iso(self.next_at) if self.next_at else None,
        }

    @classmethod
    def from_dict(cls, raw: Obj, now: datetime) -> MetricRun:
        return cls(
            name=str(raw.get("name", "")),
            gate=_enum(Gate, raw.get("gate")) or Gate.STEP,
            step=_int(raw.get("step")),
            passed=_int(raw.get("passed")),
            failed=_int(raw.get("failed")),
            no_data=_int(raw.get("noData")),
            errors=_int(raw.get("errors")),
            next_at=parse_iso(raw.get("nextAt")),
        )


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measurement of a metric, as ``kubectl progressive status`` shows it."""

    metric: str
    step: int
    at: datetime
    verdict: str
    value: float | None
    stable: float | None
    threshold: str
    message: str

    def to_dict(self) -> Obj:
        return {
            "metric": self.metric,
            "step": self.step,
            "at": iso(self.at),
            "verdict": self.verdict,
            "value": _quantity(self.value),
            "stable": _quantity(self.stable),
            "threshold": self.threshold,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, raw: Obj, now: datetime) -> Measurement:
        return cls(
            metric=str(raw.get("metric", "")),
            step=_int(raw.get("step")),
            at=parse_iso(raw.get("at")) or now,
            verdict=str(raw.get("verdict", "")),
            value=_float(raw.get("value")),
            stable=_float(raw.get("stable")),
            threshold=str(raw.get("threshold", "")),
            message=str(raw.get("message", "")),
        )


def _quantity(value: float | None) -> str | None:
    """Measured values are written as strings (CRDs have no float that round-trips exactly)."""
    return None if value is None else f"{value:.6g}"


def _float(value: object) -> float | None:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


#: Measurements kept in the status (the newest).
MEASUREMENTS_LIMIT = 20


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _enum(kind: type[_E], value: object) -> _E | None:
    try:
        return kind(value) if isinstance(value, str) else None
    except ValueError:
        return None


#: status key -> attribute, in the order they are written.
_CAMEL = {
    "phase": "phase",
    "message": "message",
    "observedGeneration": "observed_generation",
    "observedRevision": "observed_revision",
    "stableRevision": "stable_revision",
    "canaryRevision": "canary_revision",
    "stableAppRevision": "stable_app_revision",
    "currentStep": "current_step",
    "totalSteps": "total_steps",
    "stepState": "step_state",
    "currentWeight": "current_weight",
    "trafficStep": "traffic_step",
    "stepStartedAt": "step_started_at",
    "waitingSince": "waiting_since",
    "ending": "ending",
    "endingStage": "ending_stage",
    "stageStartedAt": "stage_started_at",
    "failureReason": "failure_reason",
    "retries": "retries",
    "plan": "plan",
    "analysis": "analysis",
    "measurements": "measurements",
    "conditions": "conditions",
    "timeline": "timeline",
}
#: Keys older controllers wrote; written as null so a merge patch removes them.
_RETIRED = ("rollingBack", "trafficRestoredAt")


_T = TypeVar("_T")


def _kept(item: Obj) -> Obj:
    """A list item as the API server keeps it: without its ``null`` fields, which the server
    drops. A status that differs from what the server kept only by them would be written again
    on every pass.

    >>> _kept({"name": "errors", "nextAt": None})
    {'name': 'errors'}
    """
    return {k: v for k, v in item.items() if v is not None}


def _items(raw: object, read: Callable[[Obj, datetime], _T], now: datetime) -> tuple[_T, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(read(item, now) for item in raw if isinstance(item, dict))


@dataclass(slots=True)
class RolloutStatus:
    """``status`` of a ProgressiveRollout (see the CRD for what each field means)."""

    phase: Phase | None = None
    message: str | None = None
    observed_generation: int | None = None
    observed_revision: str | None = None
    stable_revision: str | None = None
    canary_revision: str | None = None
    stable_app_revision: str | None = None
    current_step: int = 0
    total_steps: int = 0
    step_state: StepState | None = None
    current_weight: int | None = None
    #: The step whose route the routing objects carry; 0: routes as the user had them.
    traffic_step: int = 0
    step_started_at: datetime | None = None
    waiting_since: datetime | None = None
    ending: Ending | None = None
    ending_stage: Stage | None = None
    stage_started_at: datetime | None = None
    failure_reason: str | None = None
    retries: int = 0
    plan: tuple[Obj, ...] = ()
    #: The metrics being measured now (step gate and background).
    analysis: tuple[MetricRun, ...] = ()
    #: The last measurements (newest last).
    measurements: tuple[Measurement, ...] = ()
    conditions: tuple[Condition, ...] = ()
    timeline: tuple[TimelineEntry, ...] = field(default_factory=tuple)

    # ------------------------------------------------------------------ round trip
    @classmethod
    def from_dict(cls, raw: Obj | None, now: datetime) -> RolloutStatus:
        """Read a CR's status; anything malformed reads as absent (never raises)."""
        raw = raw if isinstance(raw, dict) else {}
        conditions = raw.get("conditions")
        timeline = raw.get("timeline")
        plan = raw.get("plan")
        return cls(
            phase=_enum(Phase, raw.get("phase")),
            message=_opt_str(raw.get("message")),
            observed_generation=_opt_int(raw.get("observedGeneration")),
            observed_revision=_opt_str(raw.get("observedRevision")),
            stable_revision=_opt_str(raw.get("stableRevision")),
            canary_revision=_opt_str(raw.get("canaryRevision")),
            stable_app_revision=_opt_str(raw.get("stableAppRevision")),
            current_step=_int(raw.get("currentStep")),
            total_steps=_int(raw.get("totalSteps")),
            step_state=_enum(StepState, raw.get("stepState")),
            current_weight=_opt_int(raw.get("currentWeight")),
            traffic_step=_int(raw.get("trafficStep")),
            step_started_at=parse_iso(raw.get("stepStartedAt")),
            waiting_since=parse_iso(raw.get("waitingSince")),
            ending=_enum(Ending, raw.get("ending")),
            ending_stage=_enum(Stage, raw.get("endingStage")),
            stage_started_at=parse_iso(raw.get("stageStartedAt")),
            failure_reason=_opt_str(raw.get("failureReason")),
            retries=_int(raw.get("retries")),
            plan=tuple(p for p in plan if isinstance(p, dict)) if isinstance(plan, list) else (),
            analysis=_items(raw.get("analysis"), MetricRun.from_dict, now),
            measurements=_items(raw.get("measurements"), Measurement.from_dict, now),
            conditions=tuple(
                Condition.from_dict(c, now) for c in conditions or () if isinstance(c, dict)
            )
            if isinstance(conditions, list)
            else (),
            timeline=tuple(
                TimelineEntry.from_dict(t, now) for t in timeline or () if isinstance(t, dict)
            )
            if isinstance(timeline, list)
            else (),
        )

    def to_dict(self) -> Obj:
        """The CR's status; unset fields are ``None`` so a merge patch removes them."""
        out: Obj = {}
        for key, attr in _CAMEL.items():
            value = getattr(self, attr)
            if isinstance(value, datetime):
                value = iso(value)
            elif attr == "plan":
                value = [_kept(p) for p in value] if value else None
            elif attr in ("conditions", "timeline", "analysis", "measurements"):
                value = [_kept(v.to_dict()) for v in value] if value else None
            elif isinstance(value, StrEnum):
                value = value.value
            out[key] = value
        for key in _RETIRED:
            out[key] = None
        return out

    def copy(self) -> RolloutStatus:
        return replace(self)

    # ------------------------------------------------------------------ records
    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def set_condition(
        self, kind: str, state: bool, reason: str, message: str, now: datetime
    ) -> None:
        """Upsert a condition; ``lastTransitionTime`` moves only when the status flips."""
        old = self.condition(kind)
        since = now if old is None or old.status != state else old.last_transition_time
        new = Condition(kind, state, reason, message, since)
        if old is None:
            self.conditions = (*self.conditions, new)
        elif old != new:
            self.conditions = tuple(new if c.type == kind else c for c in self.conditions)

    def record(
        self,
        step: int,
        state: str,
        message: str,
        now: datetime,
        by: Actor | None = None,
        seen: Seen | None = None,
    ) -> None:
        """Append to the timeline, closing the previous open entry (the same open entry twice
        is recorded once)."""
        timeline = list(self.timeline)
        if timeline and timeline[-1].finished_at is None:
            last = timeline[-1]
            if last.step == step and last.state == state:
                return
            timeline[-1] = replace(last, finished_at=now)
        timeline.append(TimelineEntry(step, state, now, message, None, by, seen))
        self.timeline = tuple(timeline[-TIMELINE_LIMIT:])


#: Every key of ``status`` the controller owns (the CRD documents each one).
STATUS_KEYS = tuple(_CAMEL)
assert {f.name for f in fields(RolloutStatus)} == set(_CAMEL.values())
