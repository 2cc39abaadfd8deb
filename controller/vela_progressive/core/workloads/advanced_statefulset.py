"""Advanced StatefulSet (OpenKruise ``apps.kruise.io/v1beta1``, also served as ``v1alpha1``):
partition style, exactly as the native StatefulSet (:mod:`.statefulset`).

Its ``spec.updateStrategy.rollingUpdate.partition`` has the native meaning: pods with an ordinal
at or above it run the update revision; pods carry ``controller-revision-hash`` = the revision
name (``status.updateRevision``). What it adds (``maxUnavailable`` for parallel updates,
``podUpdatePolicy`` ``InPlaceIfPossible``, ``paused``, reserved ordinals) is the user's and is
handed back untouched: the release changes only ``type`` and ``partition`` and saves them first.
"""

from __future__ import annotations

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.workloads.common import (
    CONTROLLER_REVISION_HASH,
    SCALED_UP,
    TEMPLATE_CHANGED,
)
from vela_progressive.core.workloads.statefulset import PartitionStatefulSet, hold_rule
from vela_progressive.core.workloads.style import RbacRule, WorkloadKind

API_VERSION = "apps.kruise.io/v1beta1"

ADVANCED_STATEFULSET = WorkloadKind(
    api_version=API_VERSION,
    other_versions=("apps.kruise.io/v1alpha1",),
    kind="StatefulSet",
    plural="statefulsets",
    styles={ReleaseMode.BATCH: PartitionStatefulSet(API_VERSION)},
    default_style=ReleaseMode.BATCH,
    revision_label=CONTROLLER_REVISION_HASH,
    hold=hold_rule,
    hold_when=(TEMPLATE_CHANGED, SCALED_UP),
    ordinal_pods=True,
    rbac=(
        RbacRule(
            ("apps.kruise.io",),
            ("statefulsets",),
            ("get", "list", "watch", "patch"),
            "Advanced StatefulSets (OpenKruise): watched when held; the release moves "
            "spec.updateStrategy.rollingUpdate.partition.",
        ),
        RbacRule(
            ("",),
            ("pods",),
            ("get", "list", "delete"),
            "An Advanced StatefulSet's pods that its controller would never replace (an aborted "
            "release's, a superseded revision's) are deleted so it recreates them.",
        ),
    ),
)
