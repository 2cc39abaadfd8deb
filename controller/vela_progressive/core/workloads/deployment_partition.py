"""Deployment, partition style (``releaseMode: batch``): in place, no extra workload.

While the Deployment is paused, the Deployment controller never creates the new ReplicaSet and,
with the ``Recreate`` strategy, never scales ReplicaSets proportionally (it only touches them when a
single one is active). So this style:

1. holds: ``spec.paused: true`` and ``strategy: Recreate`` (the original strategy is saved in an
   annotation);
2. creates the new ReplicaSet itself (template = the Deployment's, owned by the Deployment, so the
   Deployment controller later recognises it as *the* new ReplicaSet by template equality), scales
   it to the step's pods, and only once they are Ready scales the stable ReplicaSet down so the
   total stays at ``spec.replicas``. ReplicaSets of a superseded revision (neither stable nor the
   target: a newer revision arrived mid-release) go to 0 at once; the stable ReplicaSet takes
   their pods back so the serving side never shrinks;
3. finalises by restoring the strategy and unpausing: the Deployment controller adopts the new
   ReplicaSet and finishes the rollout with its own rolling update.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence

from vela_progressive.core.model import HOLD_LABEL, ReleaseMode
from vela_progressive.core.workloads.common import (
    ORIGINAL_ANNOTATION,
    POD_TEMPLATE_HASH,
    Obj,
    Observed,
    Read,
    WorkloadView,
    Write,
    Writes,
    create_of,
    is_live,
    labels_of,
    match_labels,
    owned_by,
    patch_of,
    template_hash,
    templates_equal,
    view_of,
)

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
DEFAULT_ROLLING_UPDATE = {"maxSurge": "25%", "maxUnavailable": "25%"}


def _pth(obj: Obj) -> str:
    return labels_of(obj).get(POD_TEMPLATE_HASH, "")


def _replicas(obj: Obj) -> int:
    return int(obj["spec"].get("replicas", 0) or 0)


def stable_replicaset(others: Sequence[Obj]) -> Obj | None:
    """Of a Deployment's ReplicaSets not on its current template, the one a release protects:
    the one that wants the most pods. One scaled to zero is history (``revisionHistoryLimit``),
    not a stable revision: with only those, pods missing from the current ReplicaSet (deleted,
    evicted, a namespace being emptied) are the Deployment healing, not a release to start."""
    return max((rs for rs in others if _replicas(rs) > 0), key=_replicas, default=None)


def held_by_release(deploy: Obj) -> bool:
    """Paused with the ``Recreate`` strategy: this style's hold, under which the Deployment
    controller leaves the ReplicaSets to the release."""
    spec = deploy["spec"]
    return bool(spec.get("paused")) and (spec.get("strategy") or {}).get("type") == "Recreate"


def nothing_to_roll(deploy: Obj, replicasets: Sequence[Obj]) -> bool:
    """Held by the release, or paused with a single ReplicaSet that wants pods and already
    wants ``spec.replicas`` of them: whether or not the Deployment controller has observed the
    latest spec, it has nothing to do (it rolls no paused Deployment, and scales a single
    ReplicaSet only to ``spec.replicas``), so the ReplicaSets and pods alone tell where the
    Deployment stands. A template change the hold webhook paused is judged at once, not once
    the controller-manager, 30 s and more behind with 1,000 releases starting, has observed it.
    """
    if held_by_release(deploy):
        return True
    if not deploy["spec"].get("paused"):
        return False
    active = [rs for rs in replicasets if _replicas(rs) > 0]
    return len(active) == 1 and _replicas(active[0]) == int(deploy["spec"].get("replicas", 1))


def scale(rs: Obj, replicas: int, reason: str) -> Write:
    return patch_of(rs, {"spec": {"replicas": replicas}}, reason)


def pod(namespace: str, name: str, labels: dict[str, str], owner: Obj, ready: bool = True) -> Obj:
    """A Running pod as the API server shows it (examples and tests)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"<uid of {name}>",
            "labels": dict(labels),
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def deployment(
    namespace: str, name: str, replicas: int, template: Obj, *, paused: bool = True
) -> Obj:
    """A governed Deployment as the API server shows it (examples and tests)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
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
            "paused": paused,
            "selector": {"matchLabels": dict(labels_of(template))},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": dict(DEFAULT_ROLLING_UPDATE)},
            "template": copy.deepcopy(template),
        },
        "status": {"observedGeneration": 1},
    }


def replicaset(deploy: Obj, template: Obj, replicas: int, revision: int) -> Obj:
    """The ReplicaSet the Deployment controller would make for ``template``."""
    pth = template_hash(template)
    tpl = copy.deepcopy(template)
    tpl.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH] = pth
    selector = copy.deepcopy(deploy["spec"]["selector"])
    selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = pth
    name = deploy["metadata"]["name"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name}-{pth}",
            "namespace": deploy["metadata"]["namespace"],
            "uid": f"<uid of {name}-{pth}>",
            "generation": 1,
            "resourceVersion": "1",
            "labels": dict(tpl["metadata"]["labels"]),
            "annotations": {REVISION_ANNOTATION: str(revision)},
            "ownerReferences": [_controller_ref(deploy)],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": tpl},
    }


def _controller_ref(deploy: Obj) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deploy["metadata"]["name"],
        "uid": deploy["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class PartitionDeployment:
    mode = ReleaseMode.BATCH
    companions: tuple[tuple[str, str, str], ...] = ()

    # ------------------------------------------------------------------ observe
    def reads(self, workload: Obj) -> tuple[Read, ...]:
        selector = match_labels(workload)
        return (
            Read("apps/v1", "ReplicaSet", selector=selector),
            Read("v1", "Pod", selector=selector),
        )

    def observed(self, workload: Obj, found: Sequence[list[Obj]], owner: Obj | None) -> Observed:
        replicasets, pods = found
        uid = workload["metadata"]["uid"]
        return Observed(
            workload,
            objects=tuple(
                rs
                for rs in replicasets
                if owned_by(rs, uid) and not rs["metadata"].get("deletionTimestamp")
            ),
            pods=tuple(p for p in pods if is_live(p)),
            owner=owner,
        )

    def _new_rs(self, obs: Observed) -> Obj | None:
        template = obs.workload["spec"]["template"]
        return next(
            (
                rs
                for rs in obs.of_kind("ReplicaSet")
                if templates_equal(rs["spec"]["template"], template)
            ),
            None,
        )

    def view(self, obs: Observed, stable_hint: str | None) -> WorkloadView:
        new_rs = self._new_rs(obs)
        update = (
            _pth(new_rs) if new_rs is not None else template_hash(obs.workload["spec"]["template"])
        )
        stable = stable_hint
        if stable is None:
            protected = stable_replicaset(
                [rs for rs in obs.of_kind("ReplicaSet") if _pth(rs) != update]
            )
            if protected is not None:
                stable = _pth(protected)
        new = [p for p in obs.pods if _pth(p) == update]
        # An old pod its ReplicaSet no longer wants is on its way out: gone from the moment the
        # ReplicaSet is scaled down (the Deployment controller's own count for maxSurge), so a
        # step does not wait for the ReplicaSet controller to delete it.
        wanted_old = sum(_replicas(rs) for rs in obs.of_kind("ReplicaSet") if _pth(rs) != update)
        old = min(len(obs.pods) - len(new), wanted_old)
        return view_of(
            obs.workload,
            update=update,
            stable=stable,
            new=new,
            live_pods=len(new) + old,
            held=bool(obs.workload["spec"].get("paused")),
            # Held, the view is the ReplicaSets and pods alone: no need to wait until the
            # Deployment controller has observed the hold (at 1,000 releases in flight it
            # trailed the release by 15 s a step, and its start by up to a minute).
            judged_without_status=nothing_to_roll(obs.workload, obs.of_kind("ReplicaSet")),
        )

    def new_revision_pods(self, obs: Observed, view: WorkloadView) -> list[Obj]:
        return [p for p in obs.pods if _pth(p) == view.update_revision]

    # ------------------------------------------------------------------ compute
    def hold(self, obs: Observed, view: WorkloadView) -> Writes:
        deploy = obs.workload
        spec = deploy["spec"]
        annotations = deploy["metadata"].get("annotations") or {}
        if held_by_release(deploy):
            return ()
        patch: Obj = {"spec": {"paused": True}}
        if ORIGINAL_ANNOTATION not in annotations:
            original = {"strategy": spec.get("strategy", {})}
            patch["metadata"] = {"annotations": {ORIGINAL_ANNOTATION: json.dumps(original)}}
        if spec.get("strategy", {}).get("type") != "Recreate":
            patch["spec"]["strategy"] = {"type": "Recreate", "rollingUpdate": None}
        return (
            patch_of(
                deploy,
                patch,
                f"hold Deployment {obs.name}: paused, strategy Recreate while the release "
                "scales its ReplicaSets (the original strategy is saved in an annotation)",
            ),
        )

    def _new_rs_object(self, obs: Observed, view: WorkloadView, replicas: int) -> Obj:
        deploy = obs.workload
        rev = view.update_revision
        template = copy.deepcopy(deploy["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH] = rev
        selector = copy.deepcopy(deploy["spec"]["selector"])
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = rev
        revisions = [
            int((rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "0") or 0)
            for rs in obs.of_kind("ReplicaSet")
        ]
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{obs.name}-{rev}",
                "namespace": obs.namespace,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    REVISION_ANNOTATION: str(max(revisions, default=0) + 1),
                    "deployment.kubernetes.io/desired-replicas": str(view.replicas),
                    "deployment.kubernetes.io/max-replicas": str(view.replicas),
                },
                "ownerReferences": [_controller_ref(deploy)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": deploy["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }

    def scale_to(
        self, obs: Observed, view: WorkloadView, new_pods: int, *, surge_ready: bool
    ) -> Writes:
        writes = list(self.hold(obs, view))
        name = obs.name
        new_rs = self._new_rs(obs)
        if new_rs is None:
            if new_pods > 0:
                created = self._new_rs_object(obs, view, new_pods)
                writes.append(
                    create_of(
                        created,
                        f"create the new ReplicaSet of {name} (its pod template) "
                        f"with {new_pods} pod(s)",
                    )
                )
            new_name = f"{name}-{view.update_revision}"
        else:
            new_name = new_rs["metadata"]["name"]
            if _replicas(new_rs) != new_pods:
                writes.append(scale(new_rs, new_pods, f"{new_pods} pod(s) of the new revision"))
        olds = [rs for rs in obs.of_kind("ReplicaSet") if rs["metadata"]["name"] != new_name]
        stable = [rs for rs in olds if view.stable_revision and _pth(rs) == view.stable_revision]
        superseded = [rs for rs in olds if rs not in stable]
        if not stable:
            # No stable ReplicaSet to protect (never expected mid-release): old pods only go
            # once the new ones are Ready, the biggest ReplicaSets keeping the budget.
            superseded = []
            stable = sorted(olds, key=_replicas, reverse=True)
        budget = max(view.replicas - new_pods, 0)
        if surge_ready:
            # The new pods are Ready: the stable side goes down so the total is spec.replicas.
            for rs in stable:
                keep = budget if _pth(rs) == view.stable_revision else min(_replicas(rs), budget)
                if _replicas(rs) != keep:
                    writes.append(scale(rs, keep, f"{keep} pod(s) of the stable revision"))
                budget -= keep
        elif superseded:
            # A superseded revision's pods go at once (they are neither stable nor the target);
            # the stable side takes them back so it never shrinks before new pods are Ready.
            rs = stable[0]
            freed = sum(_replicas(s) for s in superseded)
            keep = max(_replicas(rs), min(view.replicas, _replicas(rs) + freed))
            if keep != _replicas(rs):
                writes.append(
                    scale(
                        rs,
                        keep,
                        f"{keep} pod(s) of the stable revision (in place of a superseded one)",
                    )
                )
        for rs in superseded:
            if _replicas(rs) != 0:
                writes.append(scale(rs, 0, "a superseded revision: its pods go at once"))
        return tuple(writes)

    def abort(self, obs: Observed, view: WorkloadView) -> Writes:
        writes = list(self.hold(obs, view))
        for rs in obs.of_kind("ReplicaSet"):
            is_stable = _pth(rs) == view.stable_revision
            want = view.replicas if is_stable else 0
            if _replicas(rs) != want:
                what = "every pod on the stable revision" if is_stable else "no pod"
                writes.append(scale(rs, want, f"abort: {what}"))
        return tuple(writes)

    def finalize(self, obs: Observed, view: WorkloadView) -> tuple[Writes, bool]:
        deploy = obs.workload
        annotations = deploy["metadata"].get("annotations") or {}
        if deploy["spec"].get("paused") or ORIGINAL_ANNOTATION in annotations:
            original = json.loads(annotations.get(ORIGINAL_ANNOTATION, "{}"))
            strategy = original.get("strategy") or {"type": "RollingUpdate"}
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                strategy = {
                    "type": "RollingUpdate",
                    "rollingUpdate": strategy.get("rollingUpdate", dict(DEFAULT_ROLLING_UPDATE)),
                }
            patch = {
                "metadata": {"annotations": {ORIGINAL_ANNOTATION: None}},
                "spec": {"paused": False, "strategy": strategy},
            }
            why = f"hand {obs.name} back: its own strategy, unpaused (it adopts the new ReplicaSet)"
            return (patch_of(deploy, patch, why),), False
        status = deploy.get("status", {})
        done = (
            view.settled
            and view.old_pods == 0
            and status.get("updatedReplicas", 0) == view.replicas
            and status.get("availableReplicas", 0) == view.replicas
        )
        return (), done

    def canary_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        return {POD_TEMPLATE_HASH: view.update_revision}

    def stable_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        return {POD_TEMPLATE_HASH: view.stable_revision or ""}

    # ------------------------------------------------------------------ examples
    def example(
        self, namespace: str, name: str, replicas: int, template: Obj, new_pods: int, old_pods: int
    ) -> Observed:
        """``new_pods`` = 0: the Deployment as the UPDATE of its template leaves it (not held);
        else held by the webhook (paused) and by this style (Recreate) mid-release."""
        stable_template = stable_example_template(template)
        deploy = deployment(namespace, name, replicas, template, paused=new_pods > 0)
        objects = [replicaset(deploy, stable_template, old_pods, 1)]
        if new_pods:
            held = self.hold(Observed(deploy), self.view(Observed(deploy), None))
            deploy = Observed(deploy).after_all(held).workload
            objects.append(replicaset(deploy, template, new_pods, 2))
        pods = [
            pod(namespace, f"{rs['metadata']['name']}-{n}", labels_of(rs["spec"]["template"]), rs)
            for rs in objects
            for n in range(_replicas(rs))
        ]
        return Observed(deploy, tuple(objects), tuple(pods))


def stable_example_template(template: Obj) -> Obj:
    """The stable side of an example: ``template`` with a placeholder for the old pod spec."""
    stable = copy.deepcopy(template)
    stable["spec"] = "<the stable pod spec>"
    return stable
