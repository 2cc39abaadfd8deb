"""``kubectl progressive pause|resume APP``: hold a release at its current step, or go on."""

from __future__ import annotations

import argparse

from vela_progressive.cli import rollouts
from vela_progressive.cli.verb import Verb
from vela_progressive.core.release import PAUSE_ANNOTATION
from vela_progressive.shell.kube import Kube


def _configure(parser: argparse.ArgumentParser) -> None:
    rollouts.add_target_args(parser)


def _set(args: argparse.Namespace, paused: bool) -> int:
    async def body(kube: Kube) -> int:
        cr = await rollouts.find(kube, args)
        value = rollouts.revision(cr) if paused else None
        await rollouts.annotate(kube, cr, {PAUSE_ANNOTATION: value})
        verb = "paused" if paused else "resumed"
        print(f"{rollouts.label(cr)}: {verb} ({rollouts.revision(cr)})")
        nxt = "resume" if paused else "status"
        print(f"next: kubectl progressive {nxt} {args.app}")
        return 0

    return rollouts.run(args, body)


PAUSE = Verb("pause", "hold the release at its current step", _configure, lambda a: _set(a, True))
RESUME = Verb("resume", "continue a paused release", _configure, lambda a: _set(a, False))
