"""``kubectl progressive``: the kubectl plugin of vela-progressive.

Adding a verb: write ``cli/<verb>.py`` exposing ``VERB = Verb(...)`` and add one
:class:`VerbRef` line to :data:`VERBS`. Verb modules are imported only when their verb runs,
so the offline ``plan`` never pays for the Kubernetes client the cluster verbs import.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from vela_progressive.cli.verb import EXIT_USAGE, UserError, Verb
from vela_progressive.core.validation import InvalidSpec

PROG = "kubectl progressive"


@dataclass(frozen=True)
class VerbRef:
    """A registered verb: its name, one help line, and where its :class:`Verb` lives."""

    name: str
    help: str
    #: ``module:attribute`` of the Verb, e.g. ``vela_progressive.cli.plan:VERB``.
    target: str

    def load(self) -> Verb:
        module, _, attribute = self.target.partition(":")
        verb = getattr(importlib.import_module(module), attribute or "VERB")
        if not isinstance(verb, Verb) or verb.name != self.name:
            raise TypeError(f"{self.target} is not the Verb {self.name!r}")
        return verb


VERBS: tuple[VerbRef, ...] = (
    VerbRef(
        "status",
        "show the release: steps, pods, traffic, waits, next command",
        "vela_progressive.cli.status:VERB",
    ),
    VerbRef(
        "approve", "approve the step waiting for approval", "vela_progressive.cli.approve:VERB"
    ),
    VerbRef("pause", "hold the release at its current step", "vela_progressive.cli.pause:PAUSE"),
    VerbRef("resume", "continue a paused release", "vela_progressive.cli.pause:RESUME"),
    VerbRef(
        "abort",
        "abort the release: traffic, then pods, back to stable",
        "vela_progressive.cli.abort:VERB",
    ),
    VerbRef("retry", "start the failed step again", "vela_progressive.cli.retry:VERB"),
    VerbRef(
        "rollback",
        "release the stable revision again (fast by default)",
        "vela_progressive.cli.rollback:VERB",
    ),
    VerbRef(
        "plan",
        "preview a release offline: pods, traffic and waits per step",
        "vela_progressive.cli.plan:VERB",
    ),
)


def _global_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """``-n/--namespace`` and ``--kubeconfig``, accepted before or after the verb."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "-n",
        "--namespace",
        default=default,
        help="namespace of the release (default: the Application's, else the context's)",
    )
    parser.add_argument(
        "--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG)"
    )


def chosen_verb(argv: Sequence[str], names: Sequence[str]) -> str | None:
    """The verb named on the command line (the first argument that is not a global flag).

    >>> chosen_verb(["-n", "prod", "plan", "app.yaml"], ["plan", "status"])
    'plan'
    >>> chosen_verb(["--kubeconfig=k", "-h"], ["plan"]) is None
    True
    """
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-n", "--namespace", "--kubeconfig"):
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in names else None
    return None


def build_parser(
    verbs: Sequence[VerbRef | Verb] = VERBS, *, load: Sequence[str] | None = None
) -> argparse.ArgumentParser:
    """The argument parser; only the verbs named in ``load`` (default: all) get their own
    arguments, the others are listed with their help line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Progressive delivery for KubeVela Applications (vela-progressive).",
    )
    _global_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for entry in verbs:
        if isinstance(entry, VerbRef) and (load is not None and entry.name not in load):
            sub.add_parser(entry.name, help=entry.help)
            continue
        verb = entry.load() if isinstance(entry, VerbRef) else entry
        child = sub.add_parser(verb.name, help=verb.help, description=verb.description or verb.help)
        verb.configure(child)
        _global_flags(child, suppress=True)
        child.set_defaults(run=verb.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kubectl-progressive`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = chosen_verb(args_list, [v.name for v in VERBS])
    args = build_parser(load=[chosen] if chosen else []).parse_args(args_list)
    try:
        code: int = args.run(args)
    except InvalidSpec as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
