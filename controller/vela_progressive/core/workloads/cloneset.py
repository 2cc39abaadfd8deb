"""CloneSet (OpenKruise ``apps.kruise.io/v1alpha1``): partition style.

``spec.updateStrategy.partition`` counts the pods kept on the *old* revision (an integer, or a
percentage of ``replicas`` rounded up), the opposite of a "pods to update" count. A worked
example, 10 replicas, steps 20% / 50% / 100%:

==============  ==========================  =============================================
step            ``partition`` written       pods on the new revision (CloneSet moves them)
==============  ==========================  =============================================
held            ``"100%"`` (10 of 10 old)   0
1 (20%)         ``8``                       2
2 (50%)         ``5``                       5
3 (100%)        ``0``                       10, then the user's own strategy is handed back
==============  ==========================  =============================================

- Held: ``partition: "100%"`` (a percentage, so scaling the CloneSet while held moves no pod
  either); the user's ``updateStrategy`` is saved in an annotation and handed back exactly.
- A pod's revision: its ``controller-revision-hash`` label is the revision name
  (``<name>-<hash>``, ``status.updateRevision``; only the hash with the ``CloneSetShortHash``
  feature gate) and ``pod-template-hash`` is always the short hash, so revisions are compared by
  their short hash and the canary/stable Services select ``pod-template-hash``.
- Abort: ``partition`` back to ``"100%"``, then the pods not on the stable revision are deleted.
  Raising the partition alone does not move updated pods back (that needs the alpha
  ``CloneSetPartitionRollback`` gate); a deleted pod is recreated from ``status.currentRevision``
  (the stable template) because the partition expects no updated pod.
- A newer revision mid-release: ``status.currentRevision`` stays the stable one until every pod
  is updated, so pods of the superseded revision are deleted and come back on the stable or the
  update revision, as the partition says.
- ``type`` (``ReCreate``, ``InPlaceIfPossible``, ``InPlaceOnly``), ``maxSurge``,
  ``maxUnavailable``, ``paused``, priority and scatter strategies are the user's: the CloneSet
  controller applies them within each step.
"""

from __future__ import annotations

import copy
import json
import math

from vela_progressive.core.model import HOLD_LABEL, ReleaseMode
from vela_progressive.core.workloads.common import (
    CONTROLLER_REVISION_HASH,
    ORIGINAL_ANNOTATION,
    POD_TEMPLATE_HASH,
    SCALED_UP,
    TEMPLATE_CHANGED,
    Obj,
    Observed,
    OwnPods,
    WorkloadView,
    Writes,
    annotations_of,
    labels_of,
    patch_of,
    pod_template_changed,
    replacing_patch,
    settled,
    template_hash,
    view_of,
)
from vela_progressive.core.workloads.deployment_partition import pod, stable_example_template
from vela_progressive.core.workloads.style import RbacRule, WorkloadKind

API_VERSION = "apps.kruise.io/v1alpha1"
#: The partition that keeps every pod, whatever the replicas, on its revision.
HELD_PARTITION = "100%"
#: What the CloneSet webhook fills in for a CloneSet that names no update strategy.
DEFAULT_STRATEGY: Obj = {
    "type": "ReCreate",
    "partition": 0,
    "maxSurge": 0,
    "maxUnavailable": "20%",
}


def short_hash(revision: str) -> str:
    """The hash part of a revision name, as the CloneSet controller compares them.

    >>> short_hash("web-6b9f8c7d5"), short_hash("6b9f8c7d5")
    ('6b9f8c7d5', '6b9f8c7d5')
    """
    return revision.rsplit("-", 1)[-1]


def strategy_of(cs: Obj) -> Obj:
    strategy: Obj = cs.get("spec", {}).get("updateStrategy") or {}
    return strategy


def partition_pods(partition: int | str | None, replicas: int) -> int:
    """Pods the partition keeps on old revisions (a percentage rounds up, as the controller).

    >>> partition_pods("100%", 10), partition_pods("25%", 10), partition_pods(3, 10)
    (10, 3, 3)
    >>> partition_pods(None, 10)
    0
    """
    if partition is None:
        return 0
    if isinstance(partition, str) and partition.endswith("%"):
        return math.ceil(replicas * int(partition[:-1]) / 100)
    return int(partition)


def _replicas(cs: Obj) -> int:
    return int(cs.get("spec", {}).get("replicas", 1))


def _saved(cs: Obj) -> Obj:
    return {"annotations": {ORIGINAL_ANNOTATION: json.dumps({"updateStrategy": strategy_of(cs)})}}


def original_strategy(cs: Obj) -> Obj:
    """The update strategy the user had (saved while held), else the current one."""
    raw = annotations_of(cs).get(ORIGINAL_ANNOTATION)
    if raw:
        saved: Obj = json.loads(raw).get("updateStrategy") or {}
        return saved
    return strategy_of(cs)


def hold_rule(old: Obj | None, new: Obj) -> Obj | None:
    """Webhook: a changed pod template is held at ``partition: "100%"`` (strategy saved).

    >>> old = {"spec": {"replicas": 4, "template": {"a": 1}, "updateStrategy": {"partition": 0}}}
    >>> new = {"spec": {"replicas": 4, "template": {"a": 2}, "updateStrategy": {"partition": 0}}}
    >>> hold_rule(old, new)["spec"]
    {'updateStrategy': {'partition': '100%'}}
    >>> hold_rule(old, old) is None
    True

    A scale-up in a release is held too. The partition counts the pods kept on old revisions,
    so the CloneSet controller would create the added pods on the update revision: it rises by
    the pods added in the same update, and the release's next step sets it again.

    >>> mid = {"metadata": {"annotations": {ORIGINAL_ANNOTATION: "{}"}},
    ...        "spec": {"replicas": 4, "updateStrategy": {"partition": 3}}}
    >>> hold_rule(mid, {**mid, "spec": {**mid["spec"], "replicas": 6}})["spec"]
    {'updateStrategy': {'partition': 5}}
    """
    if not pod_template_changed(old, new):
        if old is not None and _replicas(new) > _replicas(old):
            return _scale_up_hold(new, _replicas(new) - _replicas(old))
        return None
    assert old is not None
    if partition_pods(strategy_of(new).get("partition"), _replicas(new)) >= _replicas(new) and (
        ORIGINAL_ANNOTATION in annotations_of(new)
    ):
        return None
    held: Obj = {"spec": {"updateStrategy": {"partition": HELD_PARTITION}}}
    if ORIGINAL_ANNOTATION not in annotations_of(new):
        held["metadata"] = _saved(old)
    return held


def _scale_up_hold(new: Obj, added: int) -> Obj | None:
    """The partition for a scale-up by ``added`` pods of a CloneSet in a release. A percentage
    (the hold's ``100%``) already scales with the replicas; partition 0 (the last step) lets
    every pod run the update revision: nothing to hold in either case."""
    partition = strategy_of(new).get("partition")
    in_release = ORIGINAL_ANNOTATION in annotations_of(new)
    if not in_release or not isinstance(partition, int) or partition <= 0:
        return None
    return {"spec": {"updateStrategy": {"partition": partition + added}}}


def _revision(pod: Obj) -> str:
    return short_hash(labels_of(pod).get(CONTROLLER_REVISION_HASH, ""))


class PartitionCloneSet(OwnPods):
    mode = ReleaseMode.BATCH
    companions: tuple[tuple[str, str, str], ...] = ()

    # ------------------------------------------------------------------ observe (OwnPods)
    def view(self, obs: Observed, stable_hint: str | None) -> WorkloadView:
        cs = obs.workload
        status = cs.get("status", {})
        update = status.get("updateRevision", "") if settled(cs) else ""
        stable = stable_hint or status.get("currentRevision")
        new = [p for p in obs.pods if update and _revision(p) == short_hash(update)]
        partition = partition_pods(strategy_of(cs).get("partition"), _replicas(cs))
        return view_of(
            cs,
            update=update,
            stable=stable,
            new=new,
            live_pods=len(obs.pods),
            held=ORIGINAL_ANNOTATION in annotations_of(cs) or partition >= _replicas(cs) > 0,
        )

    def new_revision_pods(self, obs: Observed, view: WorkloadView) -> list[Obj]:
        return [p for p in obs.pods if _revision(p) == short_hash(view.update_revision)]

    # ------------------------------------------------------------------ compute
    def _set_partition(self, obs: Observed, partition: int | str, why: str) -> Writes:
        cs = obs.workload
        patch: Obj = {"spec": {"updateStrategy": {"partition": partition}}}
        if ORIGINAL_ANNOTATION not in annotations_of(cs):
            patch["metadata"] = _saved(cs)
        if strategy_of(cs).get("partition") != partition or "metadata" in patch:
            return (patch_of(cs, patch, why),)
        return ()

    def hold(self, obs: Observed, view: WorkloadView) -> Writes:
        cs = obs.workload
        held = partition_pods(strategy_of(cs).get("partition"), view.replicas) >= view.replicas
        if held and ORIGINAL_ANNOTATION in annotations_of(cs):
            return ()
        return self._set_partition(
            obs,
            HELD_PARTITION,
            f"hold CloneSet {obs.name}: partition {HELD_PARTITION} (no pod moves)",
        )

    def scale_to(
        self, obs: Observed, view: WorkloadView, new_pods: int, *, surge_ready: bool
    ) -> Writes:
        partition = max(view.replicas - new_pods, 0)
        writes = list(
            self._set_partition(
                obs,
                partition,
                f"partition {partition}: {partition} pods kept on the old revision, "
                f"{view.replicas - partition} on the new",
            )
        )
        if not view.update_revision or not view.stable_revision:
            return tuple(writes)
        # A superseded revision's pods (a newer one arrived mid-release) are old pods the
        # partition may keep: deleted, they come back on the stable or the update revision.
        keep = {short_hash(view.stable_revision), short_hash(view.update_revision)}
        superseded = [p for p in obs.pods if _revision(p) not in keep]
        writes += self._delete(superseded, "a superseded revision")
        return tuple(writes)

    def abort(self, obs: Observed, view: WorkloadView) -> Writes:
        writes = list(self._set_partition(obs, HELD_PARTITION, "abort: no pod on the new revision"))
        if view.stable_revision:
            stable = short_hash(view.stable_revision)
            away = [p for p in obs.pods if _revision(p) != stable]
        else:
            away = self.new_revision_pods(obs, view)
        writes += self._delete(away, "abort: recreated from the stable revision")
        return tuple(writes)

    def finalize(self, obs: Observed, view: WorkloadView) -> tuple[Writes, bool]:
        cs = obs.workload
        if ORIGINAL_ANNOTATION in annotations_of(cs):
            original = original_strategy(cs)
            patch: Obj = {"metadata": {"annotations": {ORIGINAL_ANNOTATION: None}}}
            change = replacing_patch(strategy_of(cs), original)
            if change is not None:
                patch["spec"] = {"updateStrategy": change}
            why = (
                f"hand {obs.name} back: its own update strategy "
                f"(partition {original.get('partition', 0)})"
            )
            return (patch_of(cs, patch, why),), False
        status = cs.get("status", {})
        kept = partition_pods(strategy_of(cs).get("partition"), view.replicas)
        done = (
            view.settled
            and status.get("updatedReplicas", 0) >= view.replicas - kept
            and status.get("updatedReadyReplicas", 0) >= view.replicas - kept
            and status.get("readyReplicas", 0) == view.replicas
        )
        return (), done

    def canary_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        return {POD_TEMPLATE_HASH: short_hash(view.update_revision)}

    def stable_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        return {POD_TEMPLATE_HASH: short_hash(view.stable_revision or "")}

    # ------------------------------------------------------------------ examples
    def example(
        self, namespace: str, name: str, replicas: int, template: Obj, new_pods: int, old_pods: int
    ) -> Observed:
        """``new_pods`` = 0: the CloneSet as the UPDATE of its template leaves it (not held, the
        default strategy); else held mid-release at ``partition = replicas - new_pods``. With the
        default ``maxSurge: 0`` it has no surge: ``old_pods`` is ignored."""
        stable = f"{name}-{template_hash(stable_example_template(template))}"
        update = f"{name}-{template_hash(template)}"
        strategy = copy.deepcopy(DEFAULT_STRATEGY)
        if new_pods:
            strategy["partition"] = replicas - new_pods
        cs: Obj = {
            "apiVersion": API_VERSION,
            "kind": "CloneSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"<uid of {name}>",
                "generation": 2,
                "resourceVersion": "1",
                "labels": {HOLD_LABEL: "true"},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(labels_of(template))},
                "template": copy.deepcopy(template),
                "updateStrategy": strategy,
            },
            "status": {
                "observedGeneration": 2,
                "replicas": replicas,
                "readyReplicas": replicas,
                "updatedReplicas": new_pods,
                "updatedReadyReplicas": new_pods,
                "currentRevision": stable,
                "updateRevision": update,
            },
        }
        if new_pods:
            saved = json.dumps({"updateStrategy": DEFAULT_STRATEGY})
            cs["metadata"]["annotations"] = {ORIGINAL_ANNOTATION: saved}
        pods = []
        for n in range(replicas):
            revision = update if n < new_pods else stable
            labels = {
                **labels_of(template),
                CONTROLLER_REVISION_HASH: revision,
                POD_TEMPLATE_HASH: short_hash(revision),
            }
            pods.append(pod(namespace, f"{name}-{n}", labels, cs))
        return Observed(cs, pods=tuple(pods))


# ---------------------------------------------------------------------------------- blue-green
# CloneSet, blue-green style: a full set of new pods beside every old one, then the switch.
#
# A CloneSet scales out with ``maxSurge`` pods of the update revision before it removes old ones,
# and removes an old pod only while no more than ``maxUnavailable`` are unavailable. So while held
# for blue-green, the release sets (the originals saved in the annotation and restored exactly):
#
# - ``spec.minReadySeconds`` = :data:`HELD_MIN_READY`: new pods become Ready (Services and routes
#   use them) but never *available*, so the CloneSet never counts on them to remove old pods;
# - ``updateStrategy.maxUnavailable: 0``: no old pod goes while a new one is unavailable;
# - per step of N pods: ``partition = replicas - N`` and ``maxSurge = N``: the CloneSet creates N
#   pods of the new revision beside all ``replicas`` old ones.
#
# The end hands the user's strategy and ``minReadySeconds`` back: the new pods become available,
# and the CloneSet removes the old ones (scale-in takes old revisions first), while every request
# still goes to the new set (:data:`vela_progressive.core.decide.BLUE_GREEN_COMPLETION`). Abort
# holds every pod again (``partition: "100%"``, ``maxUnavailable: 0``) and deletes the new pods.

HELD_MIN_READY = 2**31 - 1


def _blue_green_saved(cs: Obj) -> Obj:
    raw = (cs["metadata"].get("annotations") or {}).get(ORIGINAL_ANNOTATION)
    saved: Obj = json.loads(raw) if raw else {}
    return saved


class BlueGreenCloneSet(PartitionCloneSet):
    mode = ReleaseMode.BLUE_GREEN

    def _held_patch(self, obs: Observed, strategy: Obj, why: str) -> Writes:
        """One patch: ``strategy`` fields, ``minReadySeconds`` held, the originals saved."""
        cs = obs.workload
        saved = _blue_green_saved(cs)
        patch: Obj = {"spec": {"updateStrategy": strategy, "minReadySeconds": HELD_MIN_READY}}
        if "minReadySeconds" not in saved:
            original = {
                "updateStrategy": saved.get("updateStrategy", strategy_of(cs)),
                "minReadySeconds": cs["spec"].get("minReadySeconds"),  # None: unset
            }
            patch["metadata"] = {"annotations": {ORIGINAL_ANNOTATION: json.dumps(original)}}
        current = strategy_of(cs)
        changed = any(current.get(k) != v for k, v in strategy.items())
        if changed or "metadata" in patch or cs["spec"].get("minReadySeconds") != HELD_MIN_READY:
            return (patch_of(cs, patch, why),)
        return ()

    def hold(self, obs: Observed, view: WorkloadView) -> Writes:
        # maxSurge 1: the CloneSet refuses both at 0; with every pod kept, nothing surges.
        strategy = {"partition": HELD_PARTITION, "maxSurge": 1, "maxUnavailable": 0}
        why = (
            f"hold CloneSet {obs.name}: partition {HELD_PARTITION}, maxUnavailable 0 (no pod moves)"
        )
        return self._held_patch(obs, strategy, why)

    def scale_to(
        self, obs: Observed, view: WorkloadView, new_pods: int, *, surge_ready: bool
    ) -> Writes:
        partition = max(view.replicas - new_pods, 0)
        strategy = {"partition": partition, "maxSurge": new_pods, "maxUnavailable": 0}
        why = (
            f"{new_pods} pod(s) of the new revision beside all {view.replicas} old ones "
            f"(partition {partition}, maxSurge {new_pods}, maxUnavailable 0)"
        )
        writes = list(self._held_patch(obs, strategy, why))
        if view.update_revision and view.stable_revision:
            # a superseded revision's pods go (the partition step's rule)
            base = super().scale_to(obs, view, new_pods, surge_ready=surge_ready)
            writes += [w for w in base if w.verb == "delete"]
        return tuple(writes)

    def abort(self, obs: Observed, view: WorkloadView) -> Writes:
        writes = list(self.hold(obs, view))
        base = super().abort(obs, view)
        writes += [w for w in base if w.verb == "delete"]
        return tuple(writes)

    def finalize(self, obs: Observed, view: WorkloadView) -> tuple[Writes, bool]:
        cs = obs.workload
        saved = _blue_green_saved(cs)
        if ORIGINAL_ANNOTATION not in (cs["metadata"].get("annotations") or {}):
            return super().finalize(obs, view)
        original = original_strategy(cs)
        patch: Obj = {"metadata": {"annotations": {ORIGINAL_ANNOTATION: None}}, "spec": {}}
        change = replacing_patch(strategy_of(cs), original)
        if change is not None:
            patch["spec"]["updateStrategy"] = change
        patch["spec"]["minReadySeconds"] = saved.get("minReadySeconds")  # None: unset again
        why = f"hand {obs.name} back: its own update strategy and minReadySeconds"
        return (patch_of(cs, patch, why),), False

    def example(
        self, namespace: str, name: str, replicas: int, template: Obj, new_pods: int, old_pods: int
    ) -> Observed:
        """The CloneSet held for blue-green with ``new_pods`` new pods beside ``old_pods``."""
        base = super().example(namespace, name, replicas, template, 0, replicas)
        cs = copy.deepcopy(base.workload)
        if not new_pods:
            return Observed(cs, pods=base.pods)
        original = {"updateStrategy": strategy_of(cs), "minReadySeconds": 0}
        cs["metadata"]["annotations"] = {ORIGINAL_ANNOTATION: json.dumps(original)}
        cs["spec"]["minReadySeconds"] = HELD_MIN_READY
        cs["spec"]["updateStrategy"].update(
            partition=max(replicas - new_pods, 0), maxSurge=new_pods, maxUnavailable=0
        )
        update = cs["status"]["updateRevision"]
        labels = {
            **labels_of(template),
            CONTROLLER_REVISION_HASH: update,
            POD_TEMPLATE_HASH: short_hash(update),
        }
        green = [pod(namespace, f"{name}-green-{n}", labels, cs) for n in range(new_pods)]
        return Observed(cs, pods=(*base.pods, *green))


CLONESET = WorkloadKind(
    api_version=API_VERSION,
    kind="CloneSet",
    plural="clonesets",
    styles={ReleaseMode.BATCH: PartitionCloneSet(), ReleaseMode.BLUE_GREEN: BlueGreenCloneSet()},
    default_style=ReleaseMode.BATCH,
    revision_label=POD_TEMPLATE_HASH,
    hold=hold_rule,
    hold_when=(TEMPLATE_CHANGED, SCALED_UP),
    rbac=(
        RbacRule(
            ("apps.kruise.io",),
            ("clonesets",),
            ("get", "list", "watch", "patch"),
            "CloneSets (OpenKruise): watched when held; the release moves "
            "spec.updateStrategy.partition and hands the user's strategy back.",
        ),
        RbacRule(
            ("",),
            ("pods",),
            ("get", "list", "delete"),
            "An aborted CloneSet's pods on the new revision (and a superseded revision's) are "
            "deleted: the CloneSet recreates them from the stable revision.",
        ),
    ),
)
