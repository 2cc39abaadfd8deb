"""``kubectl progressive``: the kubectl plugin of vela-progressive.

Adding a verb: write ``cli/<verb>.py`` exposing ``VERB = Verb(...)``, import it here and add it
to :data:`VERBS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vela_progressive.cli import abort, approve, pause, plan, rollback, status
from vela_progressive.cli.verb import EXIT_USAGE, UserError, Verb
from vela_progressive.core.validation import InvalidSpec

VERBS: tuple[Verb, ...] = (
    status.VERB,
    approve.VERB,
    pause.PAUSE,
    pause.RESUME,
    abort.VERB,
    rollback.VERB,
    plan.VERB,
)

PROG = "kubectl progressive"


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


def build_parser(verbs: Sequence[Verb] = VERBS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Progressive delivery for KubeVela Applications (vela-progressive).",
    )
    _global_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in verbs:
        child = sub.add_parser(verb.name, help=verb.help, description=verb.description or verb.help)
        verb.configure(child)
        _global_flags(child, suppress=True)
        child.set_defaults(run=verb.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kubectl-progressive`` console script."""
    args = build_parser().parse_args(argv)
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
