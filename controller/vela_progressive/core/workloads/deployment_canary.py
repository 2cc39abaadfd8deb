"""Deployment, canary style (``releaseMode: canary``): an extra ``<name>-canary`` Deployment.

The stable Deployment stays paused on its old pods (its spec already holds the new template, the
pause keeps it from rolling). A ``<name>-canary`` Deployment runs the new template at the step's
replicas; its selector and pods carry an extra label so the stable Deployment's ReplicaSets never
adopt them. Its pod template equals the workload's field for field, every time (a field a newer
version removed is removed from the canary too), and its strategy is ``Recreate``: when a newer
revision replaces the one it ran, the superseded pods go at once (they serve no traffic, the
stable Deployment keeps all its pods). At the end the stable Deployment is unpaused and rolls
natively; once it has finished, the canary Deployment is deleted.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from vela_progressive.core.model import ANNOTATION_PREFIX, ReleaseMode
from vela_progressive.core.workloads.common import (
    CANARY_OF_LABEL,
    POD_TEMPLATE_HASH,
    Obj,
    Observed,
    Read,
    WorkloadView,
    Writes,
    create_of,
    delete_of,
    is_live,
    labels_of,
    match_labels,
    owned_by,
    patch_of,
    replacing_patch,
    template_hash,
    templates_equal,
    view_of,
    without_nulls,
)
from vela_progressive.core.workloads.deployment_partition import (
    deployment,
    pod,
    replicaset,
    stable_example_template,
    stable_replicaset,
)

SOURCE_HASH_ANNOTATION = f"{ANNOTATION_PREFIX}/source-template-hash"
#: Pod label naming the stable Deployment template a canary pod runs.
TEMPLATE_HASH_LABEL = f"{ANNOTATION_PREFIX}/template-hash"


def canary_name(name: str) -> str:
    return f"{name}-canary"


class CanaryDeployment:
    mode = ReleaseMode.CANARY
    companions: tuple[tuple[str, str, str], ...] = (("apps", "v1", "deployments"),)

    # ------------------------------------------------------------------ observe
    def reads(self, workload: Obj) -> tuple[Read, ...]:
        selector = match_labels(workload)
        return (
            Read("apps/v1", "Deployment", name=canary_name(workload["metadata"]["name"])),
            Read("v1", "Pod", selector=selector),
            Read("apps/v1", "ReplicaSet", selector=selector),
        )

    def observed(self, workload: Obj, found: Sequence[list[Obj]], owner: Obj | None) -> Observed:
        canary, pods, replicasets = found
        uid = workload["metadata"]["uid"]
        own = [rs for rs in replicasets if owned_by(rs, uid)]
        return Observed(
            workload,
            objects=(*canary, *own),
            pods=tuple(p for p in pods if is_live(p)),
            owner=owner,
        )

    def _canary(self, obs: Observed) -> Obj | None:
        return obs.named("Deployment", canary_name(obs.name))

    def _canary_pods(self, obs: Observed) -> list[Obj]:
        return [p for p in obs.pods if labels_of(p).get(CANARY_OF_LABEL)]

    def _stable_pods(self, obs: Observed) -> list[Obj]:
        return [p for p in obs.pods if not labels_of(p).get(CANARY_OF_LABEL)]

    def _by_hash(self, obs: Observed) -> dict[str, Obj]:
        return {labels_of(rs).get(POD_TEMPLATE_HASH, ""): rs for rs in obs.of_kind("ReplicaSet")}

    def view(self, obs: Observed, stable_hint: str | None) -> WorkloadView:
        target = obs.workload["spec"]["template"]
        # Revision ids are our template hashes: they stay the same when the stable Deployment
        # later creates its own ReplicaSet for the template, and equal templates share an id.
        target_hash = template_hash(target)
        by_hash = self._by_hash(obs)
        new_pths = {
            pth for pth, rs in by_hash.items() if templates_equal(rs["spec"]["template"], target)
        }
        stable = stable_hint
        if stable is None:
            protected = stable_replicaset(
                [rs for pth, rs in by_hash.items() if pth not in new_pths]
            )
            if protected is not None:
                stable = template_hash(protected["spec"]["template"])
        canary_current = [
            p
            for p in self._canary_pods(obs)
            if labels_of(p).get(TEMPLATE_HASH_LABEL) == target_hash
        ]
        stable_new = [
            p for p in self._stable_pods(obs) if labels_of(p).get(POD_TEMPLATE_HASH) in new_pths
        ]
        return view_of(
            obs.workload,
            update=target_hash,
            stable=stable,
            new=canary_current + stable_new,
            live_pods=len(obs.pods),
            held=bool(obs.workload["spec"].get("paused")),
        )

    def new_revision_pods(self, obs: Observed, view: WorkloadView) -> list[Obj]:
        return [
            p
            for p in self._canary_pods(obs)
            if labels_of(p).get(TEMPLATE_HASH_LABEL) == view.update_revision
        ]

    # ------------------------------------------------------------------ compute
    def hold(self, obs: Observed, view: WorkloadView) -> Writes:
        if obs.workload["spec"].get("paused"):
            return ()
        why = f"hold Deployment {obs.name}: paused on its stable pods"
        return (patch_of(obs.workload, {"spec": {"paused": True}}, why),)

    def canary_object(self, obs: Observed, replicas: int) -> Obj:
        """The ``<name>-canary`` Deployment running the workload's template."""
        deploy = obs.workload
        source = deploy["spec"]["template"]
        template = without_nulls(copy.deepcopy(source))
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels[CANARY_OF_LABEL] = obs.name
        labels[TEMPLATE_HASH_LABEL] = template_hash(source)
        selector = copy.deepcopy(deploy["spec"]["selector"])
        selector.setdefault("matchLabels", {})[CANARY_OF_LABEL] = obs.name
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": canary_name(obs.name),
                "namespace": obs.namespace,
                "labels": {CANARY_OF_LABEL: obs.name},
                "annotations": {SOURCE_HASH_ANNOTATION: template_hash(source)},
                "ownerReferences": [obs.owner] if obs.owner else [],
            },
            "spec": {
                "replicas": replicas,
                "selector": selector,
                "template": template,
                "minReadySeconds": deploy["spec"].get("minReadySeconds", 0),
                "strategy": {"type": "Recreate"},
            },
        }

    def scale_to(
        self, obs: Observed, view: WorkloadView, new_pods: int, *, surge_ready: bool
    ) -> Writes:
        writes = list(self.hold(obs, view))
        desired = self.canary_object(obs, new_pods)
        canary = self._canary(obs)
        name = canary_name(obs.name)
        if canary is None:
            if new_pods > 0:
                why = (
                    f"create Deployment {name}: the pod template of {obs.name}, {new_pods} "
                    f"pod(s); {obs.name} stays paused on its stable pods"
                )
                writes.append(create_of(desired, why))
            return tuple(writes)
        spec: Obj = {}
        current = canary["spec"]
        template = replacing_patch(without_nulls(current["template"]), desired["spec"]["template"])
        if template is not None:
            spec["template"] = template
        for key in ("replicas", "minReadySeconds"):
            if current.get(key, 0) != desired["spec"][key]:
                spec[key] = desired["spec"][key]
        if (current.get("strategy") or {}).get("type") != "Recreate":
            spec["strategy"] = {"type": "Recreate", "rollingUpdate": None}
        patch: Obj = {"spec": spec} if spec else {}
        source = desired["metadata"]["annotations"]
        if (canary["metadata"].get("annotations") or {}).get(SOURCE_HASH_ANNOTATION) != source[
            SOURCE_HASH_ANNOTATION
        ]:
            patch["metadata"] = {"annotations": source}
        if patch:
            why = f"{name}: {new_pods} pod(s); {obs.name} stays paused on its stable pods"
            if template is not None:
                why += f", its pod template made equal to {obs.name}'s (a newer revision)"
            writes.append(patch_of(canary, patch, why))
        return tuple(writes)

    def abort(self, obs: Observed, view: WorkloadView) -> Writes:
        writes = list(self.hold(obs, view))
        canary = self._canary(obs)
        if canary is not None:
            writes.append(delete_of(canary, f"abort: delete {canary_name(obs.name)}"))
        return tuple(writes)

    def finalize(self, obs: Observed, view: WorkloadView) -> tuple[Writes, bool]:
        deploy = obs.workload
        if deploy["spec"].get("paused"):
            why = f"hand {obs.name} back: unpaused, it rolls to its template natively"
            return (patch_of(deploy, {"spec": {"paused": False}}, why),), False
        status = deploy.get("status", {})
        rolled = (
            view.settled
            and status.get("updatedReplicas", 0) == view.replicas
            and status.get("availableReplicas", 0) >= view.replicas
            and len(self._stable_pods(obs)) == view.replicas
        )
        if not rolled:
            return (), False
        canary = self._canary(obs)
        if canary is not None:
            why = f"{obs.name} has rolled: delete {canary_name(obs.name)}"
            return (delete_of(canary, why),), False
        return (), not self._canary_pods(obs)

    def canary_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        target = template_hash(obs.workload["spec"]["template"])
        return {CANARY_OF_LABEL: obs.name, TEMPLATE_HASH_LABEL: target}

    def stable_selector(self, obs: Observed, view: WorkloadView) -> dict[str, str]:
        pth = next(
            (
                pth
                for pth, rs in self._by_hash(obs).items()
                if template_hash(rs["spec"]["template"]) == view.stable_revision
            ),
            "",
        )
        return {POD_TEMPLATE_HASH: pth}

    # ------------------------------------------------------------------ examples
    def example(
        self, namespace: str, name: str, replicas: int, template: Obj, new_pods: int, old_pods: int
    ) -> Observed:
        """``new_pods`` = 0: the Deployment as the UPDATE of its template leaves it (not held);
        else held (paused) on ``old_pods`` stable pods beside ``new_pods`` canary pods."""
        deploy = deployment(namespace, name, replicas, template, paused=new_pods > 0)
        stable_rs = replicaset(deploy, stable_example_template(template), old_pods, 1)
        objects = [stable_rs]
        stable_labels = labels_of(stable_rs["spec"]["template"])
        pods = [
            pod(namespace, f"{stable_rs['metadata']['name']}-{n}", stable_labels, stable_rs)
            for n in range(old_pods)
        ]
        if new_pods:
            canary = self.canary_object(Observed(deploy), new_pods)
            canary["metadata"].update(uid=f"<uid of {canary_name(name)}>", resourceVersion="1")
            objects.insert(0, canary)
            pod_labels = labels_of(canary["spec"]["template"])
            pods += [
                pod(namespace, f"{canary_name(name)}-{n}", pod_labels, canary)
                for n in range(new_pods)
            ]
        return Observed(deploy, tuple(objects), tuple(pods))
