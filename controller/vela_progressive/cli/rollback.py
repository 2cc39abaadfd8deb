"""``kubectl progressive rollback APP``: release the stable revision again, fast by default.

The Application gets the spec of its stable ApplicationRevision back (what
``vela up APP --revision REV`` does). The new revision equals the stable pods, so the controller
restores without batches; ``--in-batches`` asks for a normal step-by-step release instead.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from vela_progressive.cli import rollouts
from vela_progressive.cli.verb import UserError, Verb
from vela_progressive.core.release import ROLLBACK_IN_BATCHES_ANNOTATION
from vela_progressive.shell.kube import Kube

PUBLISH_VERSION = "app.oam.dev/publishVersion"


def _configure(parser: argparse.ArgumentParser) -> None:
    rollouts.add_target_args(parser)
    parser.add_argument(
        "--in-batches", action="store_true", help="roll back step by step instead of at once"
    )


def _run(args: argparse.Namespace) -> int:
    async def body(kube: Kube) -> int:
        cr = await rollouts.find(kube, args)
        ns = cr["metadata"]["namespace"]
        stable = (cr.get("status") or {}).get("stableAppRevision")
        app_name = str((cr["spec"].get("application") or {}).get("name", ""))
        app = app_name and await kube.get("core.oam.dev/v1beta1", "Application", app_name, ns)
        if not app:
            raise UserError(
                f"{rollouts.label(cr)} is not part of a KubeVela Application: "
                "roll back by applying the stable pod template to the workload"
            )
        if not stable:
            raise UserError(f"{rollouts.label(cr)} has no stable revision recorded yet")
        rev = await kube.get("core.oam.dev/v1beta1", "ApplicationRevision", stable, ns)
        if rev is None:
            raise UserError(f"ApplicationRevision {ns}/{stable} no longer exists")
        spec = rev["spec"]["application"]["spec"]
        await rollouts.annotate(
            kube, cr, {ROLLBACK_IN_BATCHES_ANNOTATION: "true" if args.in_batches else None}
        )
        patch: list[dict[str, object]] = [{"op": "replace", "path": "/spec", "value": spec}]
        if PUBLISH_VERSION in (app["metadata"].get("annotations") or {}):
            stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
            key = PUBLISH_VERSION.replace("/", "~1")
            patch.append(
                {
                    "op": "replace",
                    "path": f"/metadata/annotations/{key}",
                    "value": f"rollback-{stable}-{stamp}",
                }
            )
        await kube.patch(
            "core.oam.dev/v1beta1", "Application", app_name, ns, patch, patch_type="json"
        )
        how = "in batches" if args.in_batches else "at once (no batches)"
        print(f"{rollouts.label(cr)}: rolling back to {stable} {how}")
        print(f"next: kubectl progressive status {args.app} -w")
        return 0

    return rollouts.run(args, body)


VERB = Verb("rollback", "release the stable revision again (fast by default)", _configure, _run)
