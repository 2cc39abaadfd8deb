"""Deployment, partition style: in place, no extra workload.

While the Deployment is paused, the Deployment controller never creates the new ReplicaSet and,
with the ``Recreate`` strategy, never scales ReplicaSets proportionally (it only touches them when a
single one is active). So this adapter:

1. holds: ``spec.paused: true`` and ``strategy: Recreate`` (the original strategy is saved in an
   annotation);
2. creates the new ReplicaSet itself (template = the Deployment's, owned by the Deployment, so the
   Deployment controller later recognises it as *the* new ReplicaSet by template equality), scales
   it to the step's pods, and only once they are Ready scales the old ReplicaSets down so the total
   stays at ``spec.replicas``;
3. finalises by restoring the strategy and unpausing: the Deployment controller adopts the new
   ReplicaSet and finishes the rollout with its own rolling update.
"""

from __future__ import annotations

import json
from typing import Any

from vela_progressive.core.workloads import (
    ORIGINAL_ANNOTATION,
    POD_TEMPLATE_HASH,
    WorkloadView,
    template_hash,
    templates_equal,
)
from vela_progressive.shell.kube import Kube
from vela_progressive.shell.workloads.base import (
    WorkloadMissing,
    is_live,
    selector_string,
    view_of,
)

Obj = dict[str, Any]
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


class PartitionDeployment:
    kind = "Deployment"

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self._deploy: Obj = {}
        self._rs: list[Obj] = []
        self._pods: list[Obj] = []

    # ------------------------------------------------------------------ observe
    async def _read(self) -> Obj:
        deploy = await self.kube.get("apps/v1", "Deployment", self.name, self.namespace)
        if deploy is None:
            raise WorkloadMissing(f"Deployment {self.namespace}/{self.name} not found")
        self._deploy = deploy
        selector = selector_string(deploy["spec"]["selector"].get("matchLabels", {}))
        uid = deploy["metadata"]["uid"]
        self._rs = [
            rs
            for rs in await self.kube.list(
                "apps/v1", "ReplicaSet", self.namespace, label_selector=selector
            )
            if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences", []))
            and not rs["metadata"].get("deletionTimestamp")
        ]
        self._pods = [
            p
            for p in await self.kube.list("v1", "Pod", self.namespace, label_selector=selector)
            if is_live(p)
        ]
        return deploy

    def _new_rs(self) -> Obj | None:
        template = self._deploy["spec"]["template"]
        for rs in self._rs:
            if templates_equal(rs["spec"]["template"], template):
                return rs
        return None

    def _update_revision(self) -> str:
        rs = self._new_rs()
        if rs is not None:
            return str(rs["metadata"]["labels"][POD_TEMPLATE_HASH])
        return template_hash(self._deploy["spec"]["template"])

    async def observe(self, stable_hint: str | None) -> WorkloadView:
        deploy = await self._read()
        update = self._update_revision()
        stable = stable_hint
        if stable is None:
            others = [
                rs for rs in self._rs if rs["metadata"]["labels"].get(POD_TEMPLATE_HASH) != update
            ]
            if others:
                biggest = max(others, key=lambda rs: rs["spec"].get("replicas", 0))
                stable = biggest["metadata"]["labels"][POD_TEMPLATE_HASH]
        new = [p for p in self._pods if p["metadata"]["labels"].get(POD_TEMPLATE_HASH) == update]
        return view_of(
            deploy,
            update=update,
            stable=stable,
            new=new,
            live_pods=len(self._pods),
            held=bool(deploy["spec"].get("paused")),
        )

    async def new_revision_pods(self, view: WorkloadView) -> list[Obj]:
        return [
            p
            for p in self._pods
            if p["metadata"]["labels"].get(POD_TEMPLATE_HASH) == view.update_revision
        ]

    # ------------------------------------------------------------------ act
    async def hold(self, view: WorkloadView) -> bool:
        spec = self._deploy["spec"]
        annotations = self._deploy["metadata"].get("annotations", {})
        if spec.get("paused") and spec.get("strategy", {}).get("type") == "Recreate":
            return False
        patch: Obj = {"spec": {"paused": True}}
        if ORIGINAL_ANNOTATION not in annotations:
            original = {"strategy": spec.get("strategy", {})}
            patch["metadata"] = {"annotations": {ORIGINAL_ANNOTATION: json.dumps(original)}}
        if spec.get("strategy", {}).get("type") != "Recreate":
            patch["spec"]["strategy"] = {"type": "Recreate", "rollingUpdate": None}
        self._deploy = await self.kube.patch(
            "apps/v1", "Deployment", self.name, self.namespace, patch
        )
        return not spec.get("paused")

    async def _scale_rs(self, rs: Obj, replicas: int) -> None:
        if rs["spec"].get("replicas", 0) != replicas:
            await self.kube.patch(
                "apps/v1",
                "ReplicaSet",
                rs["metadata"]["name"],
                self.namespace,
                {"spec": {"replicas": replicas}},
            )
            rs["spec"]["replicas"] = replicas

    async def _create_new_rs(self, view: WorkloadView, replicas: int) -> Obj:
        deploy = self._deploy
        rev = view.update_revision
        template = json.loads(json.dumps(deploy["spec"]["template"]))
        template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH] = rev
        selector = json.loads(json.dumps(deploy["spec"]["selector"]))
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = rev
        revisions = [
            int(rs["metadata"].get("annotations", {}).get(REVISION_ANNOTATION, "0") or 0)
            for rs in self._rs
        ]
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{self.name}-{rev}",
                "namespace": self.namespace,
                "labels": template["metadata"]["labels"],
                "annotations": {
                    REVISION_ANNOTATION: str(max(revisions, default=0) + 1),
                    "deployment.kubernetes.io/desired-replicas": str(view.replicas),
                    "deployment.kubernetes.io/max-replicas": str(view.replicas),
                },
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": self.name,
                        "uid": deploy["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": deploy["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        created = await self.kube.create(rs)
        self._rs.append(created)
        return created

    async def scale_to(self, view: WorkloadView, new_pods: int, *, surge_ready: bool) -> None:
        await self.hold(view)
        new_rs = self._new_rs()
        if new_rs is None:
            if new_pods == 0:
                return
            new_rs = await self._create_new_rs(view, new_pods)
        else:
            await self._scale_rs(new_rs, new_pods)
        if not surge_ready:
            return
        # The new pods are Ready: take the old ones down so the total is spec.replicas again.
        old_budget = max(view.replicas - new_pods, 0)
        olds = [rs for rs in self._rs if rs["metadata"]["name"] != new_rs["metadata"]["name"]]
        olds.sort(
            key=lambda rs: rs["metadata"]["labels"].get(POD_TEMPLATE_HASH) != view.stable_revision
        )
        for rs in olds:  # the stable ReplicaSet first keeps the budget, others go to zero
            keep = min(rs["spec"].get("replicas", 0), old_budget)
            if rs["metadata"]["labels"].get(POD_TEMPLATE_HASH) == view.stable_revision:
                keep = old_budget
            await self._scale_rs(rs, keep)
            old_budget -= keep

    async def abort(self, view: WorkloadView) -> None:
        await self.hold(view)
        for rs in self._rs:
            is_stable = rs["metadata"]["labels"].get(POD_TEMPLATE_HASH) == view.stable_revision
            await self._scale_rs(rs, view.replicas if is_stable else 0)

    async def finalize(self, view: WorkloadView) -> bool:
        deploy = self._deploy
        annotations = deploy["metadata"].get("annotations", {})
        if deploy["spec"].get("paused") or ORIGINAL_ANNOTATION in annotations:
            original = json.loads(annotations.get(ORIGINAL_ANNOTATION, "{}"))
            strategy = original.get("strategy") or {"type": "RollingUpdate"}
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                strategy = {
                    "type": "RollingUpdate",
                    "rollingUpdate": strategy.get(
                        "rollingUpdate", {"maxSurge": "25%", "maxUnavailable": "25%"}
                    ),
                }
            patch = {
                "metadata": {"annotations": {ORIGINAL_ANNOTATION: None}},
                "spec": {"paused": False, "strategy": strategy},
            }
            self._deploy = await self.kube.patch(
                "apps/v1", "Deployment", self.name, self.namespace, patch
            )
            return False
        status = deploy.get("status", {})
        return (
            view.settled
            and view.old_pods == 0
            and status.get("updatedReplicas", 0) == view.replicas
            and status.get("availableReplicas", 0) == view.replicas
        )

    def canary_selector(self, view: WorkloadView) -> dict[str, str]:
        return {POD_TEMPLATE_HASH: view.update_revision}

    def stable_selector(self, view: WorkloadView) -> dict[str, str]:
        return {POD_TEMPLATE_HASH: view.stable_revision or ""}
