"""``kubectl progressive approve APP``: let the step that waits for approval go on."""

from __future__ import annotations

import argparse
from typing import Any

from vela_progressive.cli import rollouts
from vela_progressive.cli.verb import Verb
from vela_progressive.core.release import APPROVE_ANNOTATION
from vela_progressive.core.status import StepState
from vela_progressive.shell.kube import Kube


def _configure(parser: argparse.ArgumentParser) -> None:
    rollouts.add_target_args(parser)


def approval(cr: dict[str, Any], app: str) -> tuple[str | None, str]:
    """The approve annotation's value for the step that waits, or ``None`` and why not.

    The value names the revision the waiting step belongs to (``status.observedRevision``). A
    status written for an older revision than the spec's (the controller has not picked up the
    newer one yet) approves nothing: its step is not the newer revision's step.
    """
    status = cr.get("status") or {}
    step, total = status.get("currentStep", 0), status.get("totalSteps", 0)
    label = rollouts.label(cr)
    if status.get("stepState") != StepState.APPROVAL:
        return None, (
            f"{label}: step {step}/{total} is not waiting for approval "
            f"(phase {status.get('phase', '?')}, state {status.get('stepState', '?')}); "
            f"see: kubectl progressive status {app}"
        )
    observed, wanted = status.get("observedRevision"), rollouts.revision(cr)
    if observed != wanted:
        return None, (
            f"{label}: the step waiting for approval is {observed}'s, but the rollout now asks "
            f"for {wanted} and the controller has not picked it up yet; nothing approved. "
            f"Wait for {wanted}'s step: kubectl progressive status {app} -w"
        )
    return f"{wanted}/{step}", f"{label}: approved step {step}/{total}"


def _run(args: argparse.Namespace) -> int:
    async def body(kube: Kube) -> int:
        cr = await rollouts.find(kube, args)
        value, message = approval(cr, args.app)
        if value is None:
            print(message)
            return 1
        await rollouts.annotate(kube, cr, {APPROVE_ANNOTATION: value})
        print(message)
        print(f"next: kubectl progressive status {args.app} -w")
        return 0

    return rollouts.run(args, body)


VERB = Verb("approve", "approve the step waiting for approval", _configure, _run)
