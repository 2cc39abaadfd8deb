"""``kubectl progressive retry APP``: start the failed step again.

A release that failed (progress deadline, later a failed gate) either went back to stable
(``onFailure: abort``) or was held as it was (``onFailure: pause``); retry runs the failed step
again from its pods. The annotation value counts retries (``<revision>/<n>``), so one command
retries once, however often KubeVela re-applies the rollout.
"""

from __future__ import annotations

import argparse

from vela_progressive.cli import rollouts
from vela_progressive.cli.verb import Verb
from vela_progressive.core.release import RETRY_ANNOTATION
from vela_progressive.core.status import Phase
from vela_progressive.shell.kube import Kube


def _configure(parser: argparse.ArgumentParser) -> None:
    rollouts.add_target_args(parser)


def _run(args: argparse.Namespace) -> int:
    async def body(kube: Kube) -> int:
        cr = await rollouts.find(kube, args)
        status = cr.get("status") or {}
        if status.get("phase") != Phase.FAILED or status.get("observedRevision") != (
            rollouts.revision(cr)
        ):
            print(
                f"{rollouts.label(cr)}: nothing to retry (phase {status.get('phase', '?')}); "
                f"see: kubectl progressive status {args.app}"
            )
            return 1
        attempt = int(status.get("retries") or 0) + 1
        value = f"{rollouts.revision(cr)}/{attempt}"
        await rollouts.annotate(kube, cr, {RETRY_ANNOTATION: value})
        step, total = status.get("currentStep", 0), status.get("totalSteps", 0)
        print(f"{rollouts.label(cr)}: retrying step {step}/{total} (retry {attempt})")
        print(f"next: kubectl progressive status {args.app} -w")
        return 0

    return rollouts.run(args, body)


VERB = Verb("retry", "start the failed step again", _configure, _run)
