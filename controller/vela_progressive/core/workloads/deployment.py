"""Deployment: the registry entry, the webhook's hold rule, and its three release styles
(:mod:`.deployment_canary`, the default, :mod:`.deployment_partition` and
:mod:`.deployment_bluegreen`)."""

from __future__ import annotations

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.workloads.common import POD_TEMPLATE_HASH, Obj, pod_template_changed
from vela_progressive.core.workloads.deployment_bluegreen import BlueGreenDeployment
from vela_progressive.core.workloads.deployment_canary import CanaryDeployment
from vela_progressive.core.workloads.deployment_partition import PartitionDeployment
from vela_progressive.core.workloads.style import RbacRule, WorkloadKind


def hold_rule(old: Obj | None, new: Obj) -> Obj | None:
    """Webhook: a changed pod template is held by ``spec.paused``."""
    if not pod_template_changed(old, new) or new.get("spec", {}).get("paused"):
        return None
    return {"spec": {"paused": True}}


DEPLOYMENT = WorkloadKind(
    api_version="apps/v1",
    kind="Deployment",
    plural="deployments",
    styles={
        ReleaseMode.CANARY: CanaryDeployment(),
        ReleaseMode.BATCH: PartitionDeployment(),
        ReleaseMode.BLUE_GREEN: BlueGreenDeployment(),
    },
    default_style=ReleaseMode.CANARY,
    revision_label=POD_TEMPLATE_HASH,
    hold=hold_rule,
    rbac=(
        RbacRule(
            ("apps",),
            ("deployments",),
            ("get", "list", "watch", "create", "patch", "delete"),
            "Deployments: watched when held, held (spec.paused) and handed back at the end; the "
            "extra <name>-canary Deployment of canary-style releases is created, kept equal to "
            "the workload's template and deleted.",
        ),
        RbacRule(
            ("apps",),
            ("deployments/finalizers",),
            ("update",),
            "Partition-style releases create the new ReplicaSet with an owner reference "
            "(blockOwnerDeletion) to its Deployment: needed where "
            "OwnerReferencesPermissionEnforcement is on.",
        ),
        RbacRule(
            ("apps",),
            ("replicasets",),
            ("get", "list", "watch", "create", "patch"),
            "Partition-style and blue-green releases scale the old and new ReplicaSets while the "
            "Deployment is paused; a pass reads them from the controller's watch-backed copy.",
        ),
        RbacRule(
            ("",),
            ("pods",),
            ("get", "list", "watch"),
            "Ready pods per revision, from the controller's watch-backed copy: a pod turning "
            "Ready wakes its rollout.",
        ),
    ),
)
