"""Pure rules of a release: operations requested on the CR, waits, deadlines and status records.

The shell passes ``now`` in; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vela_progressive.core.model import ANNOTATION_PREFIX, PlannedStep, WaitKind

Obj = dict[str, Any]

APPROVE_ANNOTATION = f"{ANNOTATION_PREFIX}/approve"
PAUSE_ANNOTATION = f"{ANNOTATION_PREFIX}/pause"
ABORT_ANNOTATION = f"{ANNOTATION_PREFIX}/abort"
#: "true": a rollback to the stable revision runs the steps instead of restoring at once.
ROLLBACK_IN_BATCHES_ANNOTATION = f"{ANNOTATION_PREFIX}/rollback-in-batches"

TIMELINE_LIMIT = 50


class Phase:
    INITIALIZING = "Initializing"
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    FAILED = "Failed"
    ABORTED = "Aborted"


class StepState:
    UPGRADING = "Upgrading"
    TRAFFIC = "TrafficRouting"
    WAITING = "Waiting"
    APPROVAL = "WaitingApproval"
    FINALIZING = "Finalizing"
    COMPLETED = "Completed"


@dataclass(frozen=True)
class Operations:
    """What the user asked for through the CR's annotations, for the revision being released."""

    approved_step: int | None
    paused: bool
    aborted: bool

    @classmethod
    def from_annotations(cls, annotations: dict[str, str], revision: str) -> Operations:
        """Operations scoped to ``revision``; a command for an older revision is ignored.

        >>> ops = Operations.from_annotations({
        ...     APPROVE_ANNOTATION: "app-v2/1", PAUSE_ANNOTATION: "app-v1"}, "app-v2")
        >>> ops.approved_step, ops.paused, ops.aborted
        (1, False, False)
        """
        approved = None
        rev, _, step = annotations.get(APPROVE_ANNOTATION, "").rpartition("/")
        if rev == revision and step.isdigit():
            approved = int(step)
        return cls(
            approved_step=approved,
            paused=annotations.get(PAUSE_ANNOTATION) == revision,
            aborted=annotations.get(ABORT_ANNOTATION) == revision,
        )


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")


def wait_remaining(step: PlannedStep, waiting_since: datetime | None, now: datetime) -> float:
    """Seconds left of a timed wait (0 when it is over or the step has no timed wait).

    >>> from vela_progressive.core.model import Wait
    >>> s = PlannedStep(1, 2, 8, 20, (), Wait(WaitKind.DURATION, 60))
    >>> t0 = datetime(2026, 1, 1)
    >>> wait_remaining(s, t0, t0 + timedelta(seconds=45))
    15.0
    >>> wait_remaining(s, t0, t0 + timedelta(seconds=90))
    0.0
    """
    if step.wait.kind is not WaitKind.DURATION or waiting_since is None:
        return 0.0
    end = waiting_since + timedelta(seconds=step.wait.seconds)
    return max((end - now).total_seconds(), 0.0)


def deadline_passed(started: datetime | None, deadline_seconds: int, now: datetime) -> bool:
    """Whether a step started at ``started`` has run out of time.

    >>> t0 = datetime(2026, 1, 1)
    >>> deadline_passed(t0, 600, t0 + timedelta(seconds=601)), deadline_passed(None, 1, t0)
    (True, False)
    """
    return started is not None and (now - started).total_seconds() > deadline_seconds


def set_condition(
    status: Obj, kind: str, state: bool, reason: str, message: str, now: datetime
) -> None:
    """Upsert a condition; ``lastTransitionTime`` moves only when the status flips."""
    conditions: list[Obj] = status.setdefault("conditions", [])
    value = "True" if state else "False"
    for cond in conditions:
        if cond["type"] == kind:
            if cond["status"] != value:
                cond["lastTransitionTime"] = iso(now)
            cond.update(status=value, reason=reason, message=message)
            return
    conditions.append(
        {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": iso(now),
        }
    )


def record(status: Obj, step: int, state: str, message: str, now: datetime) -> None:
    """Append to the timeline, closing the previous open entry."""
    timeline: list[Obj] = status.setdefault("timeline", [])
    if timeline and not timeline[-1].get("finishedAt"):
        if timeline[-1]["step"] == step and timeline[-1]["state"] == state:
            return
        timeline[-1]["finishedAt"] = iso(now)
    timeline.append({"step": step, "state": state, "startedAt": iso(now), "message": message})
    del timeline[:-TIMELINE_LIMIT]
