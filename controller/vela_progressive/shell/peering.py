"""The Kopf peering replicas of one shard stand by in (``core.placement``)."""

from __future__ import annotations

from vela_progressive.shell.kube import Kube, KubeError

PEERING_API = "kopf.dev/v1"


async def ensure_peering(kube: Kube, name: str) -> None:
    """Make the ``ClusterKopfPeering`` if it is missing: Kopf only patches its keep-alive into
    an existing one, and without it every replica would drive every rollout."""
    body = {"apiVersion": PEERING_API, "kind": "ClusterKopfPeering", "metadata": {"name": name}}
    try:
        await kube.create(body)
    except KubeError as exc:
        if exc.status != 409:  # 409: it exists, as it does after the first replica
            raise KubeError(
                exc.status,
                exc.reason,
                f"cannot make the ClusterKopfPeering {name} ({exc}): install the addon with "
                "replicas > 1 (Kopf's CRD and the role for it), or unset VP_PEERING to run a "
                "single replica",
            ) from exc
