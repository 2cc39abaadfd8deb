"""What a pass did, as metric signals (``core.telemetry``), from releases driven through the real
decision function, one pass at a time as the shell does it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_decide import NO_OPS, T0, Sim, rollout, strategy, view

from vela_progressive.core import decide as d
from vela_progressive.core import telemetry as t
from vela_progressive.core.model import Step
from vela_progressive.core.release import Operations
from vela_progressive.core.status import Phase, RolloutStatus, StepState

S = TypeVar("S")
TWO_APPROVALS = strategy(
    Step(replicas="20%", weight=20), Step(replicas="50%", weight=50), Step(replicas="100%")
)


@dataclass
class World:
    """A release driven pass by pass; each pass's signals kept as the shell would record them."""

    strategy_: object = TWO_APPROVALS
    sim: Sim = field(default_factory=lambda: Sim(view()))
    status: RolloutStatus = field(
        default_factory=lambda: RolloutStatus(phase=Phase.HEALTHY, stable_revision="v1")
    )
    ops: Operations = NO_OPS
    now: datetime = T0
    signals: list[t.Signal] = field(default_factory=list)

    def passes(self, n: int = 1, ready: bool = True) -> None:
        ro = rollout(self.strategy_)  # type: ignore[arg-type]
        for _ in range(n):
            before = self.status
            status = before
            for _ in range(6):
                if ready:
                    self.sim.view = replace(self.sim.view, new_ready=self.sim.view.new_pods)
                obs = d.Observation(
                    self.sim.view,
                    canary_ready=self.sim.view.new_ready,
                    handed_back=self.sim.handed_back,
                )
                decision = d.decide(status, ro, obs, self.ops, self.now)
                for action in decision.actions:
                    self.sim.apply(action)
                status = decision.status
                if decision.requeue > 0:
                    break
            self.status = status
            self.signals.extend(t.signals(before, status))

    def later(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def approve(self) -> None:
        self.ops = replace(self.ops, approved_step=self.status.current_step)

    def new_revision(self, revision: str) -> None:
        """KubeVela applied a new revision: the workload's update revision moves on."""
        v = self.sim.view
        self.sim = Sim(
            replace(
                v,
                stable_revision=self.status.stable_revision or v.stable_revision,
                update_revision=revision,
                new_pods=0,
                new_ready=0,
                old_pods=v.replicas,
                held=True,
            )
        )
        self.ops = NO_OPS

    def kinds(self) -> list[str]:
        return [type(s).__name__ for s in self.signals]

    def of(self, kind: type[S]) -> list[S]:
        return [s for s in self.signals if isinstance(s, kind)]


def released_with_approvals(w: World, wait: float = 40) -> None:
    w.passes()  # release started, step 1 pods
    for _ in range(2):
        w.later(10)
        w.passes(2)  # traffic moved, grace over: waiting for approval
    for _ in range(2):
        w.later(wait)
        w.approve()
        w.passes(3)
        for _ in range(2):
            w.later(10)
            w.passes(3)
    for _ in range(6):  # the last step and the completion's grace periods
        w.later(10)
        w.passes(2)


def test_a_completed_release_starts_once_passes_every_step_and_ends_succeeded() -> None:
    w = World()
    released_with_approvals(w)
    assert w.status.phase is Phase.HEALTHY
    assert w.of(t.ReleaseStarted) == [t.ReleaseStarted()]
    assert [s.step for s in w.of(t.StepPassed)] == [1, 2, 3]
    (ended,) = w.of(t.ReleaseEnded)
    assert ended.result is t.Result.SUCCEEDED
    total = (w.now - T0).total_seconds()
    assert ended.seconds is not None
    assert 0 < ended.seconds <= total
    assert not w.of(t.Restored), "nothing failed before: nothing to restore"


def test_the_approval_wait_is_from_waiting_for_approval_to_the_approval() -> None:
    w = World()
    released_with_approvals(w, wait=40)
    waits = w.of(t.ApprovalWaited)
    # Step 2 waited from its WaitingApproval, 10 s before the driver's second wait began.
    assert [(s.step, s.seconds) for s in waits] == [(1, 40.0), (2, 50.0)]
    # A step's duration holds its approval wait.
    first = w.of(t.StepPassed)[0]
    assert first.seconds >= 40


def test_the_same_pass_recorded_twice_signals_nothing_the_second_time() -> None:
    w = World()
    released_with_approvals(w)
    assert t.signals(w.status, w.status) == ()
    # A status read back from the custom resource (second-resolution timestamps) is the same.
    again = RolloutStatus.from_dict(w.status.to_dict(), w.now)
    assert t.signals(again, w.status) == ()


def failed_at_the_deadline(w: World) -> None:
    w.passes(ready=False)  # the new pods never get Ready
    w.later(61)  # progressDeadlineSeconds: 60
    w.passes(ready=False)
    for _ in range(4):  # abort: routes, grace, pods back, Services
        w.later(10)
        w.passes(ready=False)


def test_a_release_that_misses_its_deadline_fails_and_ends_failed() -> None:
    w = World()
    failed_at_the_deadline(w)
    assert w.status.phase is Phase.FAILED
    assert w.of(t.ReleaseFailed) == [t.ReleaseFailed(w.status.failure_reason or "")]
    assert w.status.failure_reason
    (ended,) = w.of(t.ReleaseEnded)
    assert ended.result is t.Result.FAILED


def test_the_next_successful_release_restores_from_the_first_failure() -> None:
    w = World()
    failed_at_the_deadline(w)
    failed_entry = next(e for e in w.status.timeline if e.state == Phase.FAILED.value)
    w.later(300)
    w.new_revision("v3")
    released_with_approvals(w)
    ends = [s.result for s in w.of(t.ReleaseEnded)]
    assert ends == [t.Result.FAILED, t.Result.SUCCEEDED]
    (restored,) = w.of(t.Restored)
    done = w.status.timeline[-1]
    assert done.state == StepState.COMPLETED.value
    assert restored.seconds == (done.started_at - failed_entry.started_at).total_seconds()


def test_a_person_aborting_ends_the_release_aborted_not_failed() -> None:
    w = World()
    w.passes()
    w.later(10)
    w.passes(2)
    w.ops = replace(w.ops, aborted=True)
    for _ in range(4):
        w.passes(2)
        w.later(10)
    assert w.status.phase is Phase.ABORTED
    assert [s.result for s in w.of(t.ReleaseEnded)] == [t.Result.ABORTED]
    assert not w.of(t.ReleaseFailed)


def test_a_newer_revision_mid_release_supersedes_it_and_starts_another() -> None:
    w = World()
    w.passes()
    w.later(10)
    w.passes(2)
    w.new_revision("v3")
    w.passes()
    assert w.kinds()[-2:] == ["ReleaseEnded", "ReleaseStarted"]
    assert w.of(t.ReleaseEnded)[0].result is t.Result.SUPERSEDED
    assert len(w.of(t.ReleaseStarted)) == 2


def test_each_analysis_measurement_is_counted_once_with_its_verdict() -> None:
    from vela_progressive.core.status import Measurement  # noqa: PLC0415

    def taken(n: int, verdict: str) -> Measurement:
        return Measurement("errors", 1, T0 + timedelta(seconds=n), verdict, 0.1, None, "< 5", "")

    before = RolloutStatus(measurements=(taken(0, "Passed"),))
    after = replace(before, measurements=(taken(0, "Passed"), taken(5, "Failed")))
    assert t.signals(before, after) == (t.Measured("errors", "Failed"),)
    assert t.signals(after, after) == ()


EVENTS = st.sampled_from(
    ["tick", "tick", "tick", "stall", "approve", "pause", "resume", "abort", "revision"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(EVENTS, min_size=5, max_size=60))
def test_whatever_happens_a_release_ends_at_most_once_and_no_duration_is_negative(
    events: list[str],
) -> None:
    w = World()
    revision = 2
    stalled = False
    for event in events:
        if event == "tick":
            w.later(7)
        elif event == "stall":
            stalled = not stalled
        elif event == "approve":
            w.approve()
        elif event == "pause":
            w.ops = replace(w.ops, paused=True)
        elif event == "resume":
            w.ops = replace(w.ops, paused=False)
        elif event == "abort":
            w.ops = replace(w.ops, aborted=True)
        elif event == "revision":
            revision += 1
            w.new_revision(f"v{revision}")
        w.passes(ready=not stalled)
    started = len(w.of(t.ReleaseStarted))
    ended = len(w.of(t.ReleaseEnded))
    assert ended <= started <= ended + 1
    for s in w.signals:
        seconds = getattr(s, "seconds", 0.0)
        assert seconds is None or seconds >= 0
