"""``kubectl progressive approve APP``: let the step that waits for approval go on."""

from __future__ import annotations

import argparse

from vela_progressive.cli import rollouts
from vela_progressive.cli.verb import Verb
from vela_progressive.core.release import APPROVE_ANNOTATION
from vela_progressive.core.status import StepState
from vela_progressive.shell.kube import Kube


def _configure(parser: argparse.ArgumentParser) -> None:
    rollouts.add_target_args(parser)


def _run(args: argparse.Namespace) -> int:
    async def body(kube: Kube) -> int:
        cr = await rollouts.find(kube, args)
        status = cr.get("status") or {}
        step, total = status.get("currentStep", 0), status.get("totalSteps", 0)
        if status.get("stepState") != StepState.APPROVAL:
            print(
                f"{rollouts.label(cr)}: step {step}/{total} is not waiting for approval "
                f"(phase {status.get('phase', '?')}, state {status.get('stepState', '?')}); "
                f"see: kubectl progressive status {args.app}"
            )
            return 1
        await rollouts.annotate(kube, cr, {APPROVE_ANNOTATION: f"{rollouts.revision(cr)}/{step}"})
        print(f"{rollouts.label(cr)}: approved step {step}/{total}")
        print(f"next: kubectl progressive status {args.app} -w")
        return 0

    return rollouts.run(args, body)


VERB = Verb("approve", "approve the step waiting for approval", _configure, _run)
