"""Who asked for an operation: the admission webhook's stamp (core.identity), its verification,
the decision recording approvals with identity and snapshot (core.decide), and what people see
(the CLI's refusal and status)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import pytest
from tests.unit.test_decide import T0, releasing, rollout, view

from vela_progressive.cli.status import operations, render
from vela_progressive.core import decide as d
from vela_progressive.core import identity
from vela_progressive.core.access import OPERATOR, VIEWER, refusal
from vela_progressive.core.identity import Requester, actor, actors, stamp
from vela_progressive.core.release import (
    APPROVE_ANNOTATION,
    PAUSE_ANNOTATION,
    STAMP_ANNOTATION,
    Operations,
)
from vela_progressive.core.status import (
    Actor,
    Measurement,
    RolloutStatus,
    Seen,
    StepState,
    TimelineEntry,
)

KEY = b"k" * 32
WEB = identity.rollout_id("ns", "web")
ALICE = Requester("alice", ("devs", "system:authenticated"))
AT = datetime(2026, 12, 1, 11, 59, 30)


def stamped(old: dict[str, str], new: dict[str, str], who: Requester = ALICE) -> dict[str, str]:
    """``new`` as the webhook lets it through."""
    value = stamp(old, new, who, AT, KEY, WEB)
    out = {k: v for k, v in new.items() if k != STAMP_ANNOTATION}
    if value is not None:
        out[STAMP_ANNOTATION] = value
    return out


# ---------------------------------------------------------------------------------- the stamp
def test_an_approval_is_stamped_with_the_requesting_user_and_verifies() -> None:
    ann = stamped({}, {APPROVE_ANNOTATION: "shop-v2/1"})
    who = actor(ann, "approve", "shop-v2/1", KEY, WEB)
    assert who == Actor("approve", "shop-v2/1", "alice", ALICE.groups, AT, verified=True)


def test_a_stamp_the_client_sends_is_replaced_by_the_controllers() -> None:
    forged = json.dumps({"approve": {"value": "shop-v2/1", "user": "boss", "mac": "00"}})
    ann = stamped({}, {APPROVE_ANNOTATION: "shop-v2/1", STAMP_ANNOTATION: forged})
    assert actor(ann, "approve", "shop-v2/1", KEY, WEB).user == "alice"


def test_a_request_that_changes_no_operation_keeps_the_stored_stamp_whatever_it_sends() -> None:
    before = stamped({}, {APPROVE_ANNOTATION: "shop-v2/1"})
    eve = Requester("eve")
    tampered = {**before, STAMP_ANNOTATION: before[STAMP_ANNOTATION].replace("alice", "eve")}
    after = stamped(before, tampered, eve)
    assert after[STAMP_ANNOTATION] == before[STAMP_ANNOTATION]
    removed = stamped(before, {APPROVE_ANNOTATION: "shop-v2/1"}, eve)
    assert removed[STAMP_ANNOTATION] == before[STAMP_ANNOTATION]


def test_each_operation_keeps_its_own_entry_and_a_removal_is_stamped_too() -> None:
    approved = stamped({}, {APPROVE_ANNOTATION: "shop-v2/1"})
    paused = stamped(approved, {**approved, PAUSE_ANNOTATION: "shop-v2"}, Requester("bob"))
    resumed = {k: v for k, v in paused.items() if k != PAUSE_ANNOTATION}
    resumed = stamped(paused, resumed, Requester("carol"))
    entries = json.loads(resumed[STAMP_ANNOTATION])
    assert entries["approve"]["user"] == "alice"
    assert (entries["pause"]["user"], entries["pause"]["value"]) == ("carol", None)
    assert set(actors(resumed, KEY, WEB)) == {"approve"}  # only annotations present are read


@pytest.mark.parametrize(
    ("annotations", "value", "key", "rollout_id", "problem"),
    [
        ({APPROVE_ANNOTATION: "shop-v2/1"}, "shop-v2/1", KEY, WEB, identity.NO_STAMP),
        ({STAMP_ANNOTATION: "{not json"}, "shop-v2/1", KEY, WEB, identity.NO_STAMP),
        ("stamped", "shop-v2/2", KEY, WEB, identity.OTHER_VALUE),
        ("stamped", "shop-v2/1", b"another key", WEB, identity.FORGED),
        ("stamped", "shop-v2/1", KEY, "ns/other", identity.FORGED),
        ("stamped", "shop-v2/1", b"", WEB, identity.NO_KEY),
        ("renamed", "shop-v2/1", KEY, WEB, identity.FORGED),
    ],
    ids=[
        "no stamp",
        "malformed stamp",
        "stamp for another value",
        "signed with another key",
        "copied from another rollout",
        "controller without a key",
        "user name changed after signing",
    ],
)
def test_a_stamp_that_does_not_verify_is_unverified_and_says_why(
    annotations: dict[str, str] | str, value: str, key: bytes, rollout_id: str, problem: str
) -> None:
    ann = stamped({}, {APPROVE_ANNOTATION: "shop-v2/1"})
    if annotations == "renamed":
        ann[STAMP_ANNOTATION] = ann[STAMP_ANNOTATION].replace('"alice"', '"boss"')
    elif isinstance(annotations, dict):
        ann = annotations
    who = actor(ann, "approve", value, key, rollout_id)
    assert not who.verified
    assert who.problem == problem


# ---------------------------------------------------------------------------------- the decision
WAITING_FOR_APPROVAL = releasing(
    step_state=StepState.APPROVAL,
    waiting_since=T0,
    traffic_step=1,
    current_weight=20,
    measurements=(
        Measurement("error-rate", 1, T0, "Failed", 0.2, None, "< 0.05", ""),
        Measurement("error-rate", 1, T0, "Passed", 0.0123, None, "< 0.05", ""),
        Measurement("latency", 0, T0, "Passed", 1.0, None, "< 2", "an earlier step's"),
    ),
)


def approve(by: Actor | None, status: RolloutStatus = WAITING_FOR_APPROVAL) -> d.Decision:
    ops = Operations(1, False, False, by={"approve": by} if by else {})
    return d.decide(status, rollout(), d.Observation(view(new=2, old=8)), ops, T0)


def test_an_approval_is_recorded_with_who_when_and_what_the_release_showed() -> None:
    alice = Actor("approve", "shop-v2/1", "alice", ("devs",), AT, verified=True)
    decision = approve(alice)
    (entry,) = [e for e in decision.status.timeline if e.state == d.APPROVED]
    assert (entry.step, entry.by) == (1, alice)
    assert entry.seen == Seen(2, 2, 10, 20, ("error-rate=0.0123 (Passed, < 0.05)",))
    (event,) = [a for a in decision.actions if isinstance(a, d.PostEvent)][:1]
    assert (event.type, event.reason) == ("Normal", "Approved")
    assert "step 1/3 approved by alice at 2026-12-01T11:59:30Z" in event.message
    assert "2/10 pods new (2 Ready), weight 20%, error-rate=0.0123" in event.message


def test_an_unverified_approval_still_counts_and_is_reported_as_unverified() -> None:
    decision = approve(None)
    assert decision.status.current_step == 2
    (entry,) = [e for e in decision.status.timeline if e.state == d.APPROVED]
    assert entry.by is not None
    assert not entry.by.verified
    (event,) = [a for a in decision.actions if isinstance(a, d.PostEvent)][:1]
    assert (event.type, event.reason) == ("Warning", "ApprovedUnverified")
    assert "approved by unknown (unverified: no stamp)" in event.message


def test_an_approval_is_recorded_once_however_often_it_is_acted_on() -> None:
    alice = Actor("approve", "shop-v2/1", "alice", verified=True)
    first = approve(alice)
    again = approve(alice, replace(WAITING_FOR_APPROVAL, timeline=first.status.timeline))
    assert [e.state for e in again.status.timeline].count(d.APPROVED) == 1
    assert not [a for a in again.actions if isinstance(a, d.PostEvent) and "approved" in a.message]


def test_an_abort_names_who_asked() -> None:
    bob = Actor("abort", "shop-v2", "bob", verified=True)
    ops = Operations(None, False, True, by={"abort": bob})
    decision = d.decide(
        releasing(step_state=StepState.WAITING, waiting_since=T0, traffic_step=1),
        rollout(),
        d.Observation(view(new=2, old=8)),
        ops,
        T0,
    )
    (entry,) = [e for e in decision.status.timeline if e.state == "Aborting"]
    assert entry.by == bob
    assert "release aborted by bob" in entry.message


def test_who_and_what_they_saw_round_trip_through_the_status() -> None:
    entry = TimelineEntry(
        1,
        d.APPROVED,
        T0,
        "approved",
        None,
        Actor("approve", "v/1", "a", ("g",), AT, True),
        Seen(1, 1, 4, None, ("m=1 (Passed, < 2)",)),
    )
    status = RolloutStatus(timeline=(entry,))
    assert RolloutStatus.from_dict(status.to_dict(), T0).timeline == (entry,)


# ---------------------------------------------------------------------------------- the CLI
def test_kubectl_progressive_status_shows_who_approved_and_what_they_saw() -> None:
    decision = approve(Actor("approve", "shop-v2/1", "alice", (), AT, verified=True))
    header, row = operations(decision.status.to_dict())[0].splitlines()
    assert header.split() == ["OPERATION", "STEP", "BY", "AT", "SAW"]
    assert row.startswith("approve    1     alice  2026-12-01T11:59:30Z  2/10 pods new")
    cr = {
        "metadata": {"name": "web"},
        "spec": {"workloadRef": {"kind": "StatefulSet", "name": "web"}},
        "status": decision.status.to_dict(),
    }
    assert "alice" in render(cr, "shop")


def test_a_refused_verb_says_what_it_needs_and_which_role_to_ask_for() -> None:
    server = 'User "bob" cannot patch resource "progressiverollouts" in the namespace "shop"'
    text = refusal("approve", "shop", server)
    assert server in text
    assert "approve needs get, list, watch, patch on progressiverollouts." in text
    assert f"--clusterrole={OPERATOR.name}" in text
    assert VIEWER.name in refusal("status", "shop", server)
