"""StatefulSet: partition style only (``updateStrategy.rollingUpdate.partition`` per step).

Pods with an ordinal at or above the partition run the update revision. Holding means
``partition = replicas``. Abort sets the partition back to ``replicas`` and deletes the pods that
do not run the stable revision: the StatefulSet controller recreates every pod below the
partition from the current (stable) revision.

Under ``podManagementPolicy: OrderedReady`` the StatefulSet controller never replaces a pod that
is not Ready (the documented "forced rollback" case): a pod of a superseded revision that cannot
start would block every later change. So pods of a superseded revision are deleted when they are
below the partition or not Ready (mid-release), and when the workload is handed back (a
completed release, or a rollback to the stable template) the pods that are not Ready and not on
the update revision are deleted: the StatefulSet controller recreates them from it.
"""

from __future__ import annotations

import copy
import json

from vela_progressive.core.model import HOLD_LABEL, ReleaseMode
from vela_progressive.core.workloads.common import (
    CONTROLLER_REVISION_HASH,
    ORIGINAL_ANNOTATION,
    SCALED_UP,
    TEMPLATE_CHANGED,
    Obj,
    Observed,
    OwnPods,
    WorkloadView,
    Writes,
    is_ready,
    labels_of,
    patch_of,
    pod_template_changed,
    settled,
    template_hash,
    view_of,
)
from vela_progressive.core.workloads.deployment_partition import pod, stable_example_template
from vela_progressive.core.workloads.style import RbacRule, WorkloadKind


def partition_of(sts: Obj) -> int:
    strategy = sts["spec"].get("updateStrategy") or {}
    return int((strategy.get("rollingUpdate") or {}).get("partition", 0) or 0)


def _partition_spec(partition: int) -> Obj:
    return {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}}


def _saved_strategy(sts: Obj) -> Obj:
    return {
        "annotations": {
            ORIGINAL_ANNOTATION: json.dumps(
                {"updateStrategy": sts.get("spec", {}).get("updateStrategy", {})}
            )
        }
    }


def _replicas(sts: Obj) -> int:
    return int(sts.get("spec", {}).get("replicas", 1))


def hold_rule(old: Obj | None, new: Obj) -> Obj | None:
    """Webhook: a changed pod template is held at ``partition = replicas`` (strategy saved).

    A scale-up in a release is held too. The StatefulSet controller creates each new ordinal
    on the update revision when it is at or above the partition, before the release could move
    the partition: so the partition rises to the new replica count in the same update (the new
    ordinals start on the current revision) and the release's next step lowers it again.

    >>> mid = {"metadata": {"annotations": {ORIGINAL_ANNOTATION: "{}"}},
    ...        "spec": {"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 1}}}}
    >>> scaled = {**mid, "spec": {**mid["spec"], "replicas": 4}}
    >>> hold_rule(mid, scaled)["spec"]["updateStrategy"]["rollingUpdate"]
    {'partition': 4}
    >>> hold_rule(scaled, mid) is None  # a scale-down removes the highest ordinals: no new pod
    True
    """
    if not pod_template_changed(old, new):
        if old is not None and _replicas(new) > _replicas(old):
            return _scale_up_hold(new)
        return None
    assert old is not None
    replicas = _replicas(new)
    if partition_of({"spec": new.get("spec", {})}) >= replicas:
        return None
    held: Obj = {"spec": _partition_spec(replicas)}
    annotations = new.get("metadata", {}).get("annotations") or {}
    if ORIGINAL_ANNOTATION not in annotations:
        held["metadata"] = _saved_strategy(old)
    return held


def _scale_up_hold(new: Obj) -> Obj | None:
    """The partition for a scale-up of a StatefulSet in a release (its strategy saved), when a
    new ordinal would otherwise start on the update revision. Partition 0 (the last step) lets
    every pod run it: nothing to hold."""
    annotations = new.get("metadata", {}).get("annotations") or {}
    partition = partition_of({"spec": new.get("spec", {})})
    if ORIGINAL_ANNOTATION not in annotations or not 0 < partition < _replicas(new):
        return None
    return {"spec": _partition_spec(_replicas(new))}


def _ordinal(pod: Obj) -> int:
    return int(pod["metadata"]["name"].rsplit("-", 1)[-1])


def _revision(pod: Obj) -> str | None:
    return labels_of(pod).get(CONTROLLER_REVISION_HASH)


class PartitionStatefulSet(OwnPods):
    """The partition style of a StatefulSet; ``api_version``: ``apps/v1``, or the Advanced
    StatefulSet's ``apps.kruise.io/v1beta1`` (same partition semantics and revision labels)."""

    mode = ReleaseMode.BATCH
    companions: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, api_version: str = "apps/v1") -> None:
        self.api_version = api_version

    # ------------------------------------------------------------------ observe (OwnPods)
    def view(self, obs: Observed, stable_hint: str | None) -> WorkloadView:
        sts = obs.workload
        status = sts.get("status", {})
        replicas = int(sts["spec"].get("replicas", 1))
        update = status.get("updateRevision", "") if settled(sts) else ""
        stable = stable_hint or status.get("currentRevision")
        new = [p for p in obs.pods if _revision(p) == update]
        annotations = sts["metadata"].get("annotations") or {}
        return view_of(
            sts,
            update=update,
            stable=stable,
            new=new,
            live_pods=len(obs.pods),
            held=ORIGINAL_ANNOTATION in annotations or partition_of(sts) >= replicas > 0,
        )

    def new_revision_pods(self, obs: Observed, view: WorkloadView) -> list[Obj]:
        return [p for p in obs.pods if _revision(p) == view.update_revision]

    # ------------------------------------------------------------------ compute
    def _set_partition(self, obs: Observed, partition: int, why: str) -> Writes:
        sts = obs.workload
        patch: Obj = {"spec": _partition_spec(partition)}
        if ORIGINAL_ANNOTATION not in (sts["metadata"].get("annotations") or {}):
            patch["metadata"] = _saved_strategy(sts)
        if partition_of(sts) != partition or "metadata" in patch:
            return (patch_of(sts, patch, why),)
        return ()

    def hold(self, obs: Observed, view: WorkloadView) -> Writes:
        sts = obs.workload
        annotations = sts["metadata"].get("annotations") or {}
        if partition_of(sts) >= view.replicas and ORIGINAL_ANNOTATION in annotations:
            return ()
        partition = max(partition_of(sts), view.replicas)
        return self._set_partition(
            obs, partition, f"hold StatefulSet {obs.name}: partition {partition} (no pod moves)"
        )

    def scale_to(
        self, obs: Observed, view: WorkloadView, new_pods: int, *, surge_ready: bool
    ) -> Writes:
        partition = max(view.replicas - new_pods, 0)
        ahead = self._ahead(obs, view, partition)
        if ahead and partition < partition_of(obs.workload):
            # Lowered now, the partition would move more pods while the ones ahead are still
            # there (a scale-up held at the new replica count leaves them): first they go.
            partition = partition_of(obs.workload)
        writes = list(
            self._set_partition(
                obs, partition, f"pods with ordinal >= {partition} run the new revision"
            )
        )
        if not view.update_revision:
            return tuple(writes)
        # Pods of a superseded revision (a newer one arrived mid-release): below the partition
        # the StatefulSet controller never updates them, and one that is not Ready blocks it
        # under OrderedReady. Deleted, they come back on the stable or the update revision.
        keep = {view.stable_revision, view.update_revision}
        superseded = [
            p
            for p in obs.pods
            if _revision(p) not in keep and (_ordinal(p) < partition or not is_ready(p))
        ]
        writes += self._delete(superseded, "a superseded revision")
        writes += self._delete(ahead, "ahead of the step")
        return tuple(writes)

    @staticmethod
    def _ahead(obs: Observed, view: WorkloadView, partition: int) -> list[Obj]:
        """Pods ahead of the step: below ``partition`` yet on the update revision. A change that
        reached the StatefulSet unheld (the hold webhook was down) moved them, or a scale-up
        raised the partition above them. The StatefulSet controller leaves them there; deleted,
        they come back on its current revision, so the step's count holds. Only when that
        revision differs: a rollback in batches has both the same and must not recreate pods
        for nothing."""
        current = obs.workload.get("status", {}).get("currentRevision")
        if not view.update_revision or not current or current == view.update_revision:
            return []
        return [
            p for p in obs.pods if _revision(p) == view.update_revision and _ordinal(p) < partition
        ]

    def abort(self, obs: Observed, view: WorkloadView) -> Writes:
        writes = list(self._set_partition(obs, view.replicas, "abort: no pod on the new revision"))
        if view.stable_revision:
            away = [p for p in obs.pods if _revision(p) != view.stable_revision]
        else:
            away = self.new_revision_pods(obs, view)
        writes += self._delete(away, "abort: recreated from the stable revision")
        return tuple(writes)

    def finalize(self, obs: Observed, view: WorkloadView) -> tuple[Writes, bool]:
        sts = obs.workload
        annotations = sts["metadata"].get("annotations") or {}
        if ORIGINAL_ANNOTATION in annotations:
            original = json.loads(annotations[ORIGINAL_ANNOTATION]).get("updateStrategy") or {}
            partition = int((original.get("rollingUpdate") or {}).get("partition", 0) or 0)
            patch = {
                "metadata": {"annotations": {ORIGINAL_ANNOTATION: None}},
                "spec": {
                    "updateStrategy": {
                        "type": original.get("type", "RollingUpdate"),
                        "rollingUpdate": {"partition": partition},
                    }
                },
            }
            why = f"hand {obs.name} back: its own update strategy (partition {partition})"
            return (patch_of(sts, patch, why),), False
        if view.settled and view.update_revision:
            # The forced rollback: a pod that is not Ready and not on the update revision is
            # never replaced by the StatefulSet controller under OrderedReady.
            stuck = [
                p for p in obs.pods if _revision(p) != view.update_revision and not is_ready(p)
            ]
            if stuck:
                return tuple(self._delete(stuck, "not Ready on a superseded revision")), False
        status = sts.get("status", {})
        done = (
            view.settled
            and status.get("updatedReplicas", 0) == view.replicas
            and status.get("readyReplicas", 0) == view.replicas
            and status.get("currentRevision") == status.get("updateRevision")
        )
        return (), done

    def canary_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        return {CONTROLLER_REVISION_HASH: view.update_revision}

    def stable_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        return {CONTROLLER_REVISION_HASH: view.stable_revision or ""}

    # ------------------------------------------------------------------ examples
    def example(
        self, namespace: str, name: str, replicas: int, template: Obj, new_pods: int, old_pods: int
    ) -> Observed:
        """``new_pods`` = 0: the StatefulSet as the UPDATE of its template leaves it (not held,
        partition 0); else held mid-release at ``partition = replicas - new_pods`` (its own
        strategy saved). It has no surge: ``old_pods`` is ignored (``replicas - new_pods``).
        """
        stable = f"{name}-{template_hash(stable_example_template(template))}"
        update = f"{name}-{template_hash(template)}"
        original = _partition_spec(0)
        sts: Obj = {
            "apiVersion": self.api_version,
            "kind": "StatefulSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"<uid of {name}>",
                "generation": 1,
                "resourceVersion": "1",
                "labels": {HOLD_LABEL: "true"},
            },
            "spec": {
                "replicas": replicas,
                "serviceName": name,
                "selector": {"matchLabels": dict(labels_of(template))},
                "template": copy.deepcopy(template),
                **_partition_spec(replicas - new_pods if new_pods else 0),
            },
            "status": {
                "observedGeneration": 1,
                "currentRevision": stable,
                "updateRevision": update,
            },
        }
        if new_pods:
            sts["metadata"]["annotations"] = {ORIGINAL_ANNOTATION: json.dumps(original)}
        pods = []
        for n in range(replicas):
            labels = {
                **labels_of(template),
                CONTROLLER_REVISION_HASH: update if n >= replicas - new_pods else stable,
            }
            pods.append(pod(namespace, f"{name}-{n}", labels, sts))
        return Observed(sts, pods=tuple(pods))


STATEFULSET = WorkloadKind(
    api_version="apps/v1",
    kind="StatefulSet",
    plural="statefulsets",
    styles={ReleaseMode.BATCH: PartitionStatefulSet()},
    default_style=ReleaseMode.BATCH,
    revision_label=CONTROLLER_REVISION_HASH,
    hold=hold_rule,
    hold_when=(TEMPLATE_CHANGED, SCALED_UP),
    ordinal_pods=True,
    rbac=(
        RbacRule(
            ("apps",),
            ("statefulsets",),
            ("get", "list", "watch", "patch"),
            "StatefulSets: watched when held; the release moves spec.updateStrategy partition.",
        ),
        RbacRule(
            ("",),
            ("pods",),
            ("get", "list", "delete"),
            "A StatefulSet's pods that its controller would never replace (an aborted "
            "release's, a superseded revision's, a pod that cannot start on a rollback) are "
            "deleted so the StatefulSet recreates them.",
        ),
    ),
)
