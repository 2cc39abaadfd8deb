"""Advanced DaemonSet (OpenKruise ``apps.kruise.io/v1alpha1``): partition style.

The Advanced DaemonSet has what the native one lacks: ``spec.updateStrategy.rollingUpdate.
partition``, the number of *scheduled pods kept on old revisions* (its controller updates the
other nodes, highest node name first, within ``maxUnavailable``). So:

- held: ``type: RollingUpdate`` with ``partition`` = :data:`HELD_PARTITION` (larger than any
  node count, so a node added while held gets no pod of the new template either); the user's
  own strategy is saved in an annotation and handed back exactly at the end;
- a step of N pods sets ``partition = scheduled pods - N``; the DaemonSet controller moves the
  pods (``rollingUpdateType`` ``Standard`` recreates them; ``Surging`` and ``InPlaceIfPossible``
  are the user's choice and work the same way with a real kubelet);
- abort and hand-back are the native DaemonSet's (:mod:`.daemonset`): its controller, like the
  native one, creates every pod from the *current* template, so an abort puts the stable template
  back (from its ControllerRevision) and deletes the pods not on it, ``maxUnavailable`` at a time,
  while the partition holds everything else still;
- pods carry ``controller-revision-hash`` (the hash alone, as the native DaemonSet's) and the
  DaemonSet keeps ControllerRevisions the same way, so revisions are read as for the native kind.
"""

from __future__ import annotations

import copy
import json

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.workloads.common import (
    CONTROLLER_REVISION_HASH,
    IN_RELEASE,
    ORIGINAL_ANNOTATION,
    TEMPLATE_CHANGED,
    Obj,
    Observed,
    WorkloadView,
    Write,
    annotations_of,
    pod_template_changed,
)
from vela_progressive.core.workloads.daemonset import (
    CONTROLLER_REVISIONS,
    PartitionDaemonSet,
    strategy_of,
)
from vela_progressive.core.workloads.style import RbacRule, WorkloadKind

API_VERSION = "apps.kruise.io/v1alpha1"
#: The partition that holds every pod (and every node to come) on its revision.
HELD_PARTITION = 2**31 - 1


def partition_of(ds: Obj) -> int | None:
    value = (strategy_of(ds).get("rollingUpdate") or {}).get("partition")
    return None if value is None else int(value)


def _held(ds: Obj) -> bool:
    """Held by a release: the strategy saved and a partition in force (a step's or the hold's)."""
    return (
        ORIGINAL_ANNOTATION in annotations_of(ds)
        and strategy_of(ds).get("type", "RollingUpdate") == "RollingUpdate"
        and partition_of(ds) is not None
    )


def _hold_patch(ds: Obj) -> Obj:
    """The merge patch holding every pod (empty: already at :data:`HELD_PARTITION`)."""
    patch: Obj = {}
    strategy = strategy_of(ds)
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or (
        partition_of(ds) != HELD_PARTITION
    ):
        patch["spec"] = {
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"partition": HELD_PARTITION},
            }
        }
    if ORIGINAL_ANNOTATION not in annotations_of(ds):
        saved = json.dumps({"updateStrategy": strategy})
        patch["metadata"] = {"annotations": {ORIGINAL_ANNOTATION: saved}}
    return patch


def hold_rule(old: Obj | None, new: Obj) -> Obj | None:
    """Webhook: a changed pod template is held at :data:`HELD_PARTITION` (strategy saved).

    >>> old = {"spec": {"updateStrategy": {"type": "RollingUpdate"}, "template": {"a": 1}}}
    >>> new = {"spec": {"updateStrategy": {"type": "RollingUpdate"}, "template": {"a": 2}}}
    >>> hold_rule(old, new)["spec"]["updateStrategy"]["rollingUpdate"]
    {'partition': 2147483647}
    >>> hold_rule(old, old) is None
    True
    """
    if not pod_template_changed(old, new):
        if ORIGINAL_ANNOTATION in annotations_of(new) and not _held(new):
            return _hold_patch(new) or None  # a re-apply dropped the hold: put it back
        return None
    return _hold_patch(new) or None


class PartitionAdvancedDaemonSet(PartitionDaemonSet):
    """Each step sets the partition; the Advanced DaemonSet controller moves the pods."""

    api_version = API_VERSION
    holding = (
        f"updateStrategy.rollingUpdate.partition {HELD_PARTITION}, so no pod moves until a "
        "step lowers it"
    )

    def held(self, ds: Obj) -> bool:
        return _held(ds)

    def hold_patch(self, ds: Obj) -> Obj:
        return _hold_patch(ds)

    def _step_patch(self, view: WorkloadView, new_pods: int) -> Obj:
        partition = max(view.replicas - new_pods, 0)
        return {"spec": {"updateStrategy": {"rollingUpdate": {"partition": partition}}}}

    def _step_deletes(self, obs: Observed, view: WorkloadView, new_pods: int) -> list[Write]:
        return []

    def _example_strategy(self, replicas: int, new_pods: int) -> tuple[Obj, Obj | None]:
        standard: Obj = {
            "type": "RollingUpdate",
            "rollingUpdate": {"rollingUpdateType": "Standard", "maxUnavailable": 1, "maxSurge": 0},
        }
        if not new_pods:
            return standard, None
        held = copy.deepcopy(standard)
        held["rollingUpdate"]["partition"] = replicas - new_pods
        return held, standard


ADVANCED_DAEMONSET = WorkloadKind(
    api_version=API_VERSION,
    kind="DaemonSet",
    plural="daemonsets",
    styles={ReleaseMode.BATCH: PartitionAdvancedDaemonSet()},
    default_style=ReleaseMode.BATCH,
    revision_label=CONTROLLER_REVISION_HASH,
    hold=hold_rule,
    hold_when=(TEMPLATE_CHANGED, IN_RELEASE),
    sized_by_nodes=True,
    rbac=(
        RbacRule(
            ("apps.kruise.io",),
            ("daemonsets",),
            ("get", "list", "watch", "patch"),
            "Advanced DaemonSets (OpenKruise): watched when held, held and released through "
            "spec.updateStrategy.rollingUpdate.partition, handed back; an abort puts the stable "
            "pod template back.",
        ),
        CONTROLLER_REVISIONS,
        RbacRule(
            ("",),
            ("pods",),
            ("get", "list", "delete"),
            "An aborted Advanced DaemonSet's pods on the new revision are deleted (within "
            "maxUnavailable) so it recreates them from the stable template.",
        ),
    ),
)
