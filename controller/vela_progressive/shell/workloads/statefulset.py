"""StatefulSet, partition style: ``updateStrategy.rollingUpdate.partition`` per step.

Pods with an ordinal at or above the partition run the update revision. Holding means
``partition = replicas``. Abort sets the partition back to ``replicas`` and deletes the pods that
already run the update revision: the StatefulSet controller recreates every pod below the
partition from the current (stable) revision.
"""

from __future__ import annotations

import json
from typing import Any

from vela_progressive.core.workloads import (
    CONTROLLER_REVISION_HASH,
    ORIGINAL_ANNOTATION,
    WorkloadView,
)
from vela_progressive.shell.kube import Kube
from vela_progressive.shell.workloads.base import (
    WorkloadMissing,
    is_live,
    selector_string,
    settled,
    view_of,
)

Obj = dict[str, Any]


def _partition(sts: Obj) -> int:
    strategy = sts["spec"].get("updateStrategy", {})
    return int(strategy.get("rollingUpdate", {}).get("partition", 0) or 0)


class PartitionStatefulSet:
    kind = "StatefulSet"

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self._sts: Obj = {}
        self._pods: list[Obj] = []

    async def observe(self, stable_hint: str | None) -> WorkloadView:
        sts = await self.kube.get("apps/v1", "StatefulSet", self.name, self.namespace)
        if sts is None:
            raise WorkloadMissing(f"StatefulSet {self.namespace}/{self.name} not found")
        self._sts = sts
        selector = selector_string(sts["spec"]["selector"].get("matchLabels", {}))
        self._pods = [
            p
            for p in await self.kube.list("v1", "Pod", self.namespace, label_selector=selector)
            if is_live(p)
            and any(
                o.get("uid") == sts["metadata"]["uid"]
                for o in p["metadata"].get("ownerReferences", [])
            )
        ]
        status = sts.get("status", {})
        replicas = int(sts["spec"].get("replicas", 1))
        update = status.get("updateRevision", "") if settled(sts) else ""
        stable = stable_hint or status.get("currentRevision")
        new = [
            p for p in self._pods if p["metadata"]["labels"].get(CONTROLLER_REVISION_HASH) == update
        ]
        return view_of(
            sts,
            update=update,
            stable=stable,
            new=new,
            live_pods=len(self._pods),
            held=ORIGINAL_ANNOTATION in sts["metadata"].get("annotations", {})
            or _partition(sts) >= replicas > 0,
        )

    async def new_revision_pods(self, view: WorkloadView) -> list[Obj]:
        return [
            p
            for p in self._pods
            if p["metadata"]["labels"].get(CONTROLLER_REVISION_HASH) == view.update_revision
        ]

    async def _set_partition(self, partition: int) -> None:
        annotations = self._sts["metadata"].get("annotations", {})
        patch: Obj = {
            "spec": {
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"partition": partition},
                }
            }
        }
        if ORIGINAL_ANNOTATION not in annotations:
            original = {"updateStrategy": self._sts["spec"].get("updateStrategy", {})}
            patch["metadata"] = {"annotations": {ORIGINAL_ANNOTATION: json.dumps(original)}}
        if _partition(self._sts) != partition or "metadata" in patch:
            self._sts = await self.kube.patch(
                "apps/v1", "StatefulSet", self.name, self.namespace, patch
            )

    async def hold(self, view: WorkloadView) -> bool:
        if _partition(self._sts) >= view.replicas and ORIGINAL_ANNOTATION in self._sts[
            "metadata"
        ].get("annotations", {}):
            return False
        was_held = _partition(self._sts) >= view.replicas
        await self._set_partition(max(_partition(self._sts), view.replicas))
        return not was_held

    async def scale_to(self, view: WorkloadView, new_pods: int, *, surge_ready: bool) -> None:
        partition = max(view.replicas - new_pods, 0)
        await self._set_partition(partition)
        # Pods below the partition on a superseded revision (a newer revision arrived
        # mid-release) are never updated by the StatefulSet controller: delete them, it
        # recreates them from the current (stable) revision.
        keep = {view.stable_revision, view.update_revision}
        for pod in self._pods:
            ordinal = int(pod["metadata"]["name"].rsplit("-", 1)[-1])
            revision = pod["metadata"]["labels"].get(CONTROLLER_REVISION_HASH)
            if ordinal < partition and revision not in keep:
                await self.kube.delete("v1", "Pod", pod["metadata"]["name"], self.namespace)

    async def abort(self, view: WorkloadView) -> None:
        await self._set_partition(view.replicas)
        for pod in await self.new_revision_pods(view):
            await self.kube.delete("v1", "Pod", pod["metadata"]["name"], self.namespace)

    async def finalize(self, view: WorkloadView) -> bool:
        annotations = self._sts["metadata"].get("annotations", {})
        if ORIGINAL_ANNOTATION in annotations:
            original = json.loads(annotations[ORIGINAL_ANNOTATION]).get("updateStrategy", {})
            partition = int(original.get("rollingUpdate", {}).get("partition", 0) or 0)
            self._sts = await self.kube.patch(
                "apps/v1",
                "StatefulSet",
                self.name,
                self.namespace,
                {
                    "metadata": {"annotations": {ORIGINAL_ANNOTATION: None}},
                    "spec": {
                        "updateStrategy": {
                            "type": original.get("type", "RollingUpdate"),
                            "rollingUpdate": {"partition": partition},
                        }
                    },
                },
            )
            return False
        status = self._sts.get("status", {})
        return (
            view.settled
            and status.get("updatedReplicas", 0) == view.replicas
            and status.get("readyReplicas", 0) == view.replicas
            and status.get("currentRevision") == status.get("updateRevision")
        )

    def canary_selector(self, view: WorkloadView) -> dict[str, str]:
        return {CONTROLLER_REVISION_HASH: view.update_revision}

    def stable_selector(self, view: WorkloadView) -> dict[str, str]:
        return {CONTROLLER_REVISION_HASH: view.stable_revision or ""}
