"""Pure rules of a release: operations requested on the CR, waits and deadlines.

The shell passes ``now`` in; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vela_progressive.core.model import ANNOTATION_PREFIX, PlannedStep, WaitKind
from vela_progressive.core.status import Actor

Obj = dict[str, Any]

APPROVE_ANNOTATION = f"{ANNOTATION_PREFIX}/approve"
PAUSE_ANNOTATION = f"{ANNOTATION_PREFIX}/pause"
ABORT_ANNOTATION = f"{ANNOTATION_PREFIX}/abort"
#: "true": a rollback to the stable revision runs the steps instead of restoring at once.
ROLLBACK_IN_BATCHES_ANNOTATION = f"{ANNOTATION_PREFIX}/rollback-in-batches"
#: ``<revision>/<n>``: the n-th retry of the failed step (``kubectl progressive retry``).
RETRY_ANNOTATION = f"{ANNOTATION_PREFIX}/retry"
#: Who asked for each operation (``core.identity``), as canonical JSON
#: ``{"<operation>": {"value", "user", "groups", "at", "mac"}, ...}``; spent with the
#: operations it vouches for.
STAMP_ANNOTATION = f"{ANNOTATION_PREFIX}/operated-by"
#: Operations scoped to a revision by name. They are spent when the release ends: KubeVela
#: gives the next revision after a rollback the name of the one rolled back from (it numbers
#: from the revision it went back to), so a standing abort would hit an unrelated release.
OPERATION_ANNOTATIONS = (
    APPROVE_ANNOTATION,
    PAUSE_ANNOTATION,
    ABORT_ANNOTATION,
    RETRY_ANNOTATION,
    STAMP_ANNOTATION,
)


def spent_operations(annotations: dict[str, str]) -> dict[str, None]:
    """The merge patch that removes every operation annotation present.

    >>> spent_operations({ABORT_ANNOTATION: "app-v9", "team": "a"})
    {'rollout.vela-progressive.io/abort': None}
    """
    return {key: None for key in OPERATION_ANNOTATIONS if key in annotations}


@dataclass(frozen=True)
class Operations:
    """What the user asked for through the CR's annotations, for the revision being released."""

    approved_step: int | None
    paused: bool
    aborted: bool
    #: The retry asked for (``n`` of ``<revision>/<n>``); a retry acts once, when n is one more
    #: than the retries already made (``status.retries``).
    retry: int | None = None
    #: A rollback to the stable revision runs the steps instead of restoring at once.
    rollback_in_batches: bool = False
    #: Who asked for each operation, by operation name (``core.identity.actors``).
    by: Mapping[str, Actor] = field(default_factory=dict)

    @classmethod
    def from_annotations(
        cls, annotations: dict[str, str], revision: str, by: Mapping[str, Actor] | None = None
    ) -> Operations:
        """Operations scoped to ``revision``; a command for an older revision is ignored.

        >>> ops = Operations.from_annotations({
        ...     APPROVE_ANNOTATION: "app-v2/1", PAUSE_ANNOTATION: "app-v1"}, "app-v2")
        >>> ops.approved_step, ops.paused, ops.aborted
        (1, False, False)
        """
        return cls(
            approved_step=_scoped_number(annotations.get(APPROVE_ANNOTATION), revision),
            paused=annotations.get(PAUSE_ANNOTATION) == revision,
            aborted=annotations.get(ABORT_ANNOTATION) == revision,
            retry=_scoped_number(annotations.get(RETRY_ANNOTATION), revision),
            rollback_in_batches=annotations.get(ROLLBACK_IN_BATCHES_ANNOTATION) == "true",
            by=by or {},
        )

    def actor(self, operation: str, value: str) -> Actor:
        """Who asked for ``operation`` (set to ``value``); unknown and unverified when the
        stamp is missing.

        >>> Operations(None, False, False).actor("abort", "app-v2").describe()
        'unknown (unverified: no stamp)'
        """
        return self.by.get(operation) or Actor(operation, value, "unknown", problem="no stamp")


def _scoped_number(value: str | None, revision: str) -> int | None:
    """``n`` of a ``<revision>/<n>`` annotation value naming ``revision``, else ``None``.

    >>> _scoped_number("app-v2/3", "app-v2"), _scoped_number("app-v1/3", "app-v2")
    (3, None)
    """
    rev, _, number = (value or "").rpartition("/")
    return int(number) if rev == revision and number.isdigit() else None


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
