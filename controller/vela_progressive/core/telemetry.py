"""What a reconcile pass did, as metric observations: pure, from two statuses.

The decision function already records every transition of a release in the status (its
timeline, its measurements); this module reads what a pass *added* to them and names it:
a release started, a step passed after N seconds, an approval came after N seconds, a release
ended (and how), a failure, a measurement's verdict, the time to restore after a failed release.
The shell (``shell.metrics``) turns these signals into Prometheus samples; no rule of the
release is repeated here.

Durations come from the timeline's own timestamps (whole seconds), never from a clock, so a
pass that is made again after a crash or a conflict yields the same signals from the same
statuses, and the shell records a pass's signals only once its status is written.

A release's boundaries in the timeline: it starts at an ``Upgrading`` entry of step 1 whose
message is :data:`~vela_progressive.core.decide.RELEASE_STARTED` or
:data:`~vela_progressive.core.decide.RELEASE_RESTARTED`, and ends at a ``Completed`` entry (after
``Completing``: succeeded; after ``RollingBack``: rolled back; after ``Releasing``: released) or an
``Aborted`` entry (failed when the release had failed, else aborted). A restart ends the release
it replaces as superseded. What the timeline no longer holds (it keeps
:data:`~vela_progressive.core.status.TIMELINE_LIMIT` entries) is not measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vela_progressive.core.decide import APPROVED, RELEASE_RESTARTED, RELEASE_STARTED, STEP_STARTED
from vela_progressive.core.status import (
    Ending,
    Measurement,
    Phase,
    RolloutStatus,
    StepState,
    TimelineEntry,
)


class Result(StrEnum):
    """How a release ended (the ``result`` label)."""

    SUCCEEDED = "succeeded"
    #: A failure (gate, deadline) ended it: traffic and pods went back to stable.
    FAILED = "failed"
    #: A person aborted it.
    ABORTED = "aborted"
    #: The revision went back to the stable one (``kubectl progressive rollback``).
    ROLLED_BACK = "rolled_back"
    #: The trait was removed: the workload was handed back.
    RELEASED = "released"
    #: A newer revision (or a rollback in batches) replaced it mid-release.
    SUPERSEDED = "superseded"


#: Results that count as a failed change (DORA change failure rate).
FAILED_CHANGE = frozenset({Result.FAILED, Result.ABORTED, Result.ROLLED_BACK})


@dataclass(frozen=True, slots=True)
class ReleaseStarted:
    pass


@dataclass(frozen=True, slots=True)
class ReleaseEnded:
    result: Result
    #: From the release's start to its end; ``None`` when the timeline no longer holds the start.
    seconds: float | None


@dataclass(frozen=True, slots=True)
class ReleaseFailed:
    """A step failed (gate, deadline): ``reason`` is ``status.failureReason``."""

    reason: str


@dataclass(frozen=True, slots=True)
class StepPassed:
    step: int
    seconds: float


@dataclass(frozen=True, slots=True)
class ApprovalWaited:
    step: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Measured:
    """One analysis measurement and its verdict (``Passed``, ``Failed``, ``NoData``, ``Error``)."""

    metric: str
    verdict: str


@dataclass(frozen=True, slots=True)
class Restored:
    """A release succeeded after failed ones: seconds from the first failure since the last
    successful release (DORA time to restore)."""

    seconds: float


Signal = (
    ReleaseStarted
    | ReleaseEnded
    | ReleaseFailed
    | StepPassed
    | ApprovalWaited
    | Measured
    | Restored
)

_ENDINGS = frozenset(e.value for e in Ending)
_BY_ENDING = {
    Ending.COMPLETING.value: Result.SUCCEEDED,
    Ending.ROLLING_BACK.value: Result.ROLLED_BACK,
    Ending.RELEASING.value: Result.RELEASED,
}
_ABORTED = "Aborted"
_FAILED = Phase.FAILED.value
#: Entries that close a release.
_ENDS = frozenset({StepState.COMPLETED.value, _ABORTED})
#: Entries that say something went wrong with the change.
_FAILURES = frozenset({_FAILED, Ending.ABORTING.value, Ending.ROLLING_BACK.value, _ABORTED})


def signals(before: RolloutStatus, after: RolloutStatus) -> tuple[Signal, ...]:
    """The observations of a pass that turned ``before`` into ``after``.

    >>> from datetime import datetime as dt
    >>> old = RolloutStatus()
    >>> new = RolloutStatus(phase=Phase.PROGRESSING)
    >>> new.record(1, StepState.UPGRADING, RELEASE_STARTED, dt(2026, 1, 1, 12, 0, 0))
    >>> signals(old, new)
    (ReleaseStarted(),)
    >>> later = new.copy()
    >>> later.record(1, StepState.APPROVAL, "waiting for approval", dt(2026, 1, 1, 12, 0, 20))
    >>> later.record(1, APPROVED, "approved by alice", dt(2026, 1, 1, 12, 1, 20))
    >>> later.record(2, StepState.UPGRADING, STEP_STARTED, dt(2026, 1, 1, 12, 1, 21))
    >>> signals(new, later)
    (ApprovalWaited(step=1, seconds=60.0), StepPassed(step=1, seconds=81.0))
    >>> signals(later, later)
    ()
    """
    out: list[Signal] = []
    timeline = after.timeline
    for i in range(_first_new(before.timeline, timeline), len(timeline)):
        out.extend(_entry_signals(timeline, i, after))
    out.extend(Measured(m.metric, m.verdict) for m in _new_measurements(before, after))
    return tuple(out)


def _key(entry: TimelineEntry) -> tuple[object, ...]:
    return (entry.step, entry.state, entry.started_at, entry.message)


def _first_new(before: tuple[TimelineEntry, ...], after: tuple[TimelineEntry, ...]) -> int:
    """Index of the first entry of ``after`` that ``before`` does not hold (``record`` only
    appends, closes the last open entry and drops the oldest)."""
    if not before:
        return 0
    last = _key(before[-1])
    for i in range(len(after) - 1, -1, -1):
        if _key(after[i]) == last:
            return i + 1
    return 0  # the status was replaced as a whole: everything in it is new


def _new_measurements(before: RolloutStatus, after: RolloutStatus) -> tuple[Measurement, ...]:
    if not before.measurements:
        return after.measurements
    last = before.measurements[-1]
    for i in range(len(after.measurements) - 1, -1, -1):
        if after.measurements[i] == last:
            return after.measurements[i + 1 :]
    return after.measurements


def _is_start(entry: TimelineEntry) -> bool:
    return (
        entry.step == 1
        and entry.state == StepState.UPGRADING.value
        and entry.message in (RELEASE_STARTED, RELEASE_RESTARTED)
    )


def _entry_signals(
    timeline: tuple[TimelineEntry, ...], i: int, after: RolloutStatus
) -> list[Signal]:
    entry = timeline[i]
    history = timeline[:i]
    if _is_start(entry):
        out: list[Signal] = []
        if entry.message == RELEASE_RESTARTED and _in_flight(history):
            out.append(ReleaseEnded(Result.SUPERSEDED, _since_start(history, entry)))
        out.append(ReleaseStarted())
        return out
    if entry.state == StepState.UPGRADING.value and entry.message == STEP_STARTED:
        return [StepPassed(entry.step - 1, _step_seconds(history, entry.step - 1, entry))]
    if entry.state == Ending.COMPLETING.value:
        return [StepPassed(entry.step, _step_seconds(history, entry.step, entry))]
    if entry.state == APPROVED:
        return [ApprovalWaited(entry.step, _approval_seconds(history, entry))]
    if entry.state == _FAILED:
        return [ReleaseFailed(after.failure_reason or "Unknown")]
    if entry.state in _ENDS:
        result = _result(timeline, i, after)
        out = [ReleaseEnded(result, _since_start(history, entry))]
        if result is Result.SUCCEEDED:
            failure = _first_failure_since_success(timeline, i)
            if failure is not None:
                out.append(Restored(_seconds(failure, entry)))
        return out
    return []


def _seconds(start: TimelineEntry, end: TimelineEntry) -> float:
    return max(0.0, (end.started_at - start.started_at).total_seconds())


def _in_flight(history: tuple[TimelineEntry, ...]) -> bool:
    """Did a release start after the last one ended?"""
    for entry in reversed(history):
        if entry.state in _ENDS:
            return False
        if _is_start(entry):
            return True
    return False


def _since_start(history: tuple[TimelineEntry, ...], end: TimelineEntry) -> float | None:
    for entry in reversed(history):
        if _is_start(entry):
            return _seconds(entry, end)
        if entry.state in _ENDS:
            return None
    return None


def _step_seconds(history: tuple[TimelineEntry, ...], step: int, end: TimelineEntry) -> float:
    """From the first entry of ``step`` in this release (its start, or a retry) to ``end``."""
    first = end
    for entry in reversed(history):
        if entry.step != step or entry.state in _ENDS:
            break
        first = entry
        if _is_start(entry):
            break
    return _seconds(first, end)


def _approval_seconds(history: tuple[TimelineEntry, ...], approved: TimelineEntry) -> float:
    """From the step's ``WaitingApproval`` to the approval (0 when approved beforehand)."""
    for entry in reversed(history):
        if entry.step != approved.step or entry.state in _ENDS:
            break
        if entry.state == StepState.APPROVAL.value:
            return _seconds(entry, approved)
    return 0.0


def _ending_before(timeline: tuple[TimelineEntry, ...], i: int) -> str | None:
    for entry in reversed(timeline[:i]):
        if entry.state in _ENDINGS:
            return entry.state
        if _is_start(entry):
            return None
    return None


def _result(timeline: tuple[TimelineEntry, ...], i: int, after: RolloutStatus) -> Result:
    if timeline[i].state == _ABORTED:
        failed = after.phase is Phase.FAILED or any(
            e.state == _FAILED for e in _since_release_start(timeline, i)
        )
        return Result.FAILED if failed else Result.ABORTED
    return _BY_ENDING.get(_ending_before(timeline, i) or "", Result.SUCCEEDED)


def _since_release_start(timeline: tuple[TimelineEntry, ...], i: int) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    for entry in reversed(timeline[:i]):
        entries.append(entry)
        if _is_start(entry) or entry.state in _ENDS:
            break
    return entries


def _first_failure_since_success(
    timeline: tuple[TimelineEntry, ...], i: int
) -> TimelineEntry | None:
    """The earliest sign of a failed change after the last successful release before ``i``."""
    first: TimelineEntry | None = None
    for j in range(i - 1, -1, -1):
        entry = timeline[j]
        if entry.state == StepState.COMPLETED.value and _result(timeline, j, _NEUTRAL) is (
            Result.SUCCEEDED
        ):
            break
        if entry.state in _FAILURES:
            first = entry
    return first


#: A status that says nothing: earlier endings are judged by the timeline alone.
_NEUTRAL = RolloutStatus()
