"""Deployment, canary style (``releaseMode: canary``): an extra ``<name>-canary`` Deployment.

The stable Deployment stays paused on its old pods (its spec already holds the new template, the
pause keeps it from rolling). A ``<name>-canary`` Deployment runs the new template at the step's
replicas; its selector and pods carry an extra label so the stable Deployment's ReplicaSets never
adopt them. At the end the stable Deployment is unpaused and rolls natively; once it has finished,
the canary Deployment is deleted.
"""

from __future__ import annotations

import copy
from typing import Any

from vela_progressive.core.model import ANNOTATION_PREFIX
from vela_progressive.core.workloads import (
    POD_TEMPLATE_HASH,
    WorkloadView,
    template_hash,
    templates_equal,
)
from vela_progressive.shell.kube import Kube
from vela_progressive.shell.workloads.base import (
    CANARY_OF_LABEL,
    WorkloadMissing,
    is_live,
    selector_string,
    view_of,
)

Obj = dict[str, Any]
SOURCE_HASH_ANNOTATION = f"{ANNOTATION_PREFIX}/source-template-hash"
#: Pod label naming the stable Deployment template a canary pod runs.
TEMPLATE_HASH_LABEL = f"{ANNOTATION_PREFIX}/template-hash"


class CanaryDeployment:
    kind = "Deployment"

    def __init__(self, kube: Kube, namespace: str, name: str, owner: Obj | None = None) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        #: Owner reference of the rollout, set on the canary Deployment it creates.
        self.owner = owner
        self.canary_name = f"{name}-canary"
        self._deploy: Obj = {}
        self._canary: Obj | None = None
        self._stable_pods: list[Obj] = []
        self._canary_pods: list[Obj] = []
        self._target_hash = ""
        self._stable_pth = ""

    async def observe(self, stable_hint: str | None) -> WorkloadView:
        deploy = await self.kube.get("apps/v1", "Deployment", self.name, self.namespace)
        if deploy is None:
            raise WorkloadMissing(f"Deployment {self.namespace}/{self.name} not found")
        self._deploy = deploy
        self._canary = await self.kube.get(
            "apps/v1", "Deployment", self.canary_name, self.namespace
        )
        selector = deploy["spec"]["selector"].get("matchLabels", {})
        pods = [
            p
            for p in await self.kube.list(
                "v1", "Pod", self.namespace, label_selector=selector_string(selector)
            )
            if is_live(p)
        ]
        self._canary_pods = [p for p in pods if p["metadata"]["labels"].get(CANARY_OF_LABEL)]
        self._stable_pods = [p for p in pods if not p["metadata"]["labels"].get(CANARY_OF_LABEL)]
        target = deploy["spec"]["template"]
        # Revision ids are our template hashes: they stay the same when the stable Deployment
        # later creates its own ReplicaSet for the template, and equal templates share an id.
        self._target_hash = template_hash(target)
        rs_list = await self.kube.list(
            "apps/v1", "ReplicaSet", self.namespace, label_selector=selector_string(selector)
        )
        uid = deploy["metadata"]["uid"]
        own_rs = [
            rs
            for rs in rs_list
            if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences", []))
        ]
        by_hash = {rs["metadata"]["labels"].get(POD_TEMPLATE_HASH, ""): rs for rs in own_rs}
        new_pths = {
            pth for pth, rs in by_hash.items() if templates_equal(rs["spec"]["template"], target)
        }
        stable = stable_hint
        if stable is None:
            others = [rs for pth, rs in by_hash.items() if pth not in new_pths]
            if others:
                biggest = max(others, key=lambda rs: rs["spec"].get("replicas", 0))
                stable = template_hash(biggest["spec"]["template"])
        self._stable_pth = next(
            (pth for pth, rs in by_hash.items() if template_hash(rs["spec"]["template"]) == stable),
            "",
        )
        canary_current = [
            p
            for p in self._canary_pods
            if p["metadata"]["labels"].get(TEMPLATE_HASH_LABEL) == self._target_hash
        ]
        stable_new = [
            p
            for p in self._stable_pods
            if p["metadata"]["labels"].get(POD_TEMPLATE_HASH) in new_pths
        ]
        new = canary_current + stable_new
        update = self._target_hash
        return view_of(
            deploy,
            update=update,
            stable=stable,
            new=new,
            live_pods=len(pods),
            held=bool(deploy["spec"].get("paused")),
        )

    async def new_revision_pods(self, view: WorkloadView) -> list[Obj]:
        return [
            p
            for p in self._canary_pods
            if p["metadata"]["labels"].get(TEMPLATE_HASH_LABEL) == self._target_hash
        ]

    async def hold(self, view: WorkloadView) -> bool:
        if self._deploy["spec"].get("paused"):
            return False
        self._deploy = await self.kube.patch(
            "apps/v1", "Deployment", self.name, self.namespace, {"spec": {"paused": True}}
        )
        return True

    def _canary_object(self, replicas: int) -> Obj:
        deploy = self._deploy
        template = copy.deepcopy(deploy["spec"]["template"])
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels[CANARY_OF_LABEL] = self.name
        labels[TEMPLATE_HASH_LABEL] = template_hash(deploy["spec"]["template"])
        selector = copy.deepcopy(deploy["spec"]["selector"])
        selector.setdefault("matchLabels", {})[CANARY_OF_LABEL] = self.name
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": self.canary_name,
                "namespace": self.namespace,
                "labels": {CANARY_OF_LABEL: self.name},
                "annotations": {SOURCE_HASH_ANNOTATION: template_hash(deploy["spec"]["template"])},
                "ownerReferences": [self.owner] if self.owner else [],
            },
            "spec": {
                "replicas": replicas,
                "selector": selector,
                "template": template,
                "minReadySeconds": deploy["spec"].get("minReadySeconds", 0),
            },
        }

    async def scale_to(self, view: WorkloadView, new_pods: int, *, surge_ready: bool) -> None:
        await self.hold(view)
        desired = self._canary_object(new_pods)
        if self._canary is None:
            if new_pods > 0:
                self._canary = await self.kube.create(desired)
            return
        source = self._canary["metadata"].get("annotations", {}).get(SOURCE_HASH_ANNOTATION)
        if source != desired["metadata"]["annotations"][SOURCE_HASH_ANNOTATION]:
            # A newer revision arrived mid-release: the canary Deployment follows it.
            self._canary = await self.kube.patch(
                "apps/v1",
                "Deployment",
                self.canary_name,
                self.namespace,
                {
                    "metadata": {"annotations": desired["metadata"]["annotations"]},
                    "spec": {"replicas": new_pods, "template": desired["spec"]["template"]},
                },
                patch_type="strategic",
            )
        elif self._canary["spec"].get("replicas") != new_pods:
            self._canary = await self.kube.patch(
                "apps/v1",
                "Deployment",
                self.canary_name,
                self.namespace,
                {"spec": {"replicas": new_pods}},
            )

    async def abort(self, view: WorkloadView) -> None:
        await self.hold(view)
        if self._canary is not None:
            await self.kube.delete("apps/v1", "Deployment", self.canary_name, self.namespace)
            self._canary = None

    async def finalize(self, view: WorkloadView) -> bool:
        if self._deploy["spec"].get("paused"):
            self._deploy = await self.kube.patch(
                "apps/v1", "Deployment", self.name, self.namespace, {"spec": {"paused": False}}
            )
            return False
        status = self._deploy.get("status", {})
        rolled = (
            view.settled
            and status.get("updatedReplicas", 0) == view.replicas
            and status.get("availableReplicas", 0) >= view.replicas
            and len(self._stable_pods) == view.replicas
        )
        if not rolled:
            return False
        if self._canary is not None:
            await self.kube.delete("apps/v1", "Deployment", self.canary_name, self.namespace)
            self._canary = None
            return False
        return not self._canary_pods

    def canary_selector(self, view: WorkloadView) -> dict[str, str]:
        return {CANARY_OF_LABEL: self.name, TEMPLATE_HASH_LABEL: self._target_hash}

    def stable_selector(self, view: WorkloadView) -> dict[str, str]:
        return {POD_TEMPLATE_HASH: self._stable_pth}
