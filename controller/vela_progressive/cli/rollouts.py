"""Finding the ProgressiveRollout of an Application component and sending it operations."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from vela_progressive.cli.verb import UserError
from vela_progressive.core.access import refusal
from vela_progressive.core.model import API_GROUP, API_VERSION, KIND
from vela_progressive.shell.kube import Kube, KubeError

Obj = dict[str, Any]
T = TypeVar("T")
CR_API = f"{API_GROUP}/{API_VERSION}"


def add_target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", metavar="APP", help="Application name (or the rollout's name)")
    parser.add_argument(
        "-c", "--component", help="component (needed when the app has several rollouts)"
    )


def run(args: argparse.Namespace, body: Callable[[Kube], Awaitable[T]]) -> T:
    """Connect with the global flags, run ``body``, close; API errors become user errors."""

    async def main() -> T:
        try:
            kube = await Kube.connect(getattr(args, "kubeconfig", None))
        except Exception as exc:  # kubeconfig problems: tell the user what to fix
            raise UserError(
                f"cannot load a kubeconfig ({exc}); set KUBECONFIG or pass --kubeconfig"
            ) from exc
        try:
            return await body(kube)
        except KubeError as exc:
            if exc.status == 403:  # RBAC: say what the verb needs and whom to ask
                verb = str(getattr(args, "verb", "") or "")
                raise UserError(refusal(verb, namespace_of(args), exc.message)) from exc
            raise UserError(f"the API server refused: {exc}") from exc
        finally:
            await kube.close()

    return asyncio.run(main())


def namespace_of(args: argparse.Namespace) -> str:
    return getattr(args, "namespace", None) or "default"


async def find(kube: Kube, args: argparse.Namespace) -> Obj:
    """The single rollout of ``APP`` (and ``-c COMPONENT``), or a user error saying what to pass."""
    ns = namespace_of(args)
    items = await kube.list(CR_API, KIND, ns)
    matches = [
        cr
        for cr in items
        if (cr.get("spec", {}).get("application") or {}).get("name") == args.app
        and (args.component is None or cr["spec"]["application"].get("component") == args.component)
    ]
    if not matches:
        matches = [cr for cr in items if cr["metadata"]["name"] == args.app]
    if not matches:
        raise UserError(
            f"no progressive rollout for {args.app!r} in namespace {ns}: "
            "check the name and -n NAMESPACE (list them with: kubectl get vpr -A)"
        )
    if len(matches) > 1:
        comps = ", ".join(sorted(cr["spec"]["application"]["component"] for cr in matches))
        raise UserError(f"{args.app} has several rollouts ({comps}): pick one with -c COMPONENT")
    return matches[0]


async def annotate(kube: Kube, cr: Obj, values: dict[str, str | None]) -> Obj:
    meta = cr["metadata"]
    return await kube.patch(
        CR_API,
        KIND,
        meta["name"],
        meta["namespace"],
        {"metadata": {"annotations": values}},
    )


def label(cr: Obj) -> str:
    app = cr.get("spec", {}).get("application") or {}
    if app.get("name"):
        return f"{app['name']}/{app.get('component', cr['metadata']['name'])}"
    return str(cr["metadata"]["name"])


def revision(cr: Obj) -> str:
    return str((cr.get("spec", {}).get("revision") or {}).get("name", ""))
