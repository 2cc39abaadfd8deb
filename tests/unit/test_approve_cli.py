"""``kubectl progressive approve``: which step it approves, and when it approves nothing."""

from __future__ import annotations

from typing import Any

from vela_progressive.cli.approve import approval


def rollout(spec_revision: str, observed: str, state: str, step: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "web"},
        "spec": {
            "application": {"name": "shop", "component": "web"},
            "revision": {"name": spec_revision},
        },
        "status": {
            "observedRevision": observed,
            "currentStep": step,
            "totalSteps": 3,
            "stepState": state,
            "phase": "Progressing",
        },
    }


def test_approve_names_the_revision_and_step_that_wait() -> None:
    value, message = approval(rollout("web-v5", "web-v5", "WaitingApproval"), "shop")
    assert value == "web-v5/2"
    assert message == "shop/web: approved step 2/3"


def test_a_status_of_an_older_revision_approves_nothing_and_says_to_wait() -> None:
    # The spec moved to v5 while the controller was away: step 2 waiting is v4's, and v5
    # starts over at step 1. Approving "web-v5/2" would approve a step v5 has not reached.
    value, message = approval(rollout("web-v5", "web-v4", "WaitingApproval"), "shop")
    assert value is None
    assert "the step waiting for approval is web-v4's" in message
    assert "kubectl progressive status shop -w" in message


def test_a_step_that_does_not_wait_for_approval_approves_nothing() -> None:
    value, message = approval(rollout("web-v5", "web-v5", "Waiting"), "shop")
    assert value is None
    assert "step 2/3 is not waiting for approval (phase Progressing, state Waiting)" in message
