"""``kubectl progressive abort APP``: traffic back to stable, then every pod back to stable."""

from __future__ import annotations

import argparse

from vela_progressive.cli import rollouts
from vela_progressive.cli.verb import Verb
from vela_progressive.core.release import ABORT_ANNOTATION
from vela_progressive.shell.kube import Kube


def _configure(parser: argparse.ArgumentParser) -> None:
    rollouts.add_target_args(parser)


def _run(args: argparse.Namespace) -> int:
    async def body(kube: Kube) -> int:
        cr = await rollouts.find(kube, args)
        await rollouts.annotate(kube, cr, {ABORT_ANNOTATION: rollouts.revision(cr)})
        print(f"{rollouts.label(cr)}: aborting {rollouts.revision(cr)}")
        print(f"next: kubectl progressive rollback {args.app}  (or release a fixed version)")
        return 0

    return rollouts.run(args, body)


VERB = Verb("abort", "abort the release: traffic, then pods, back to stable", _configure, _run)
