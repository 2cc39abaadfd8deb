"""Deployment, blue-green style: a full set of new pods beside every old one, then the switch.

The Deployment is held as in the partition style (paused, ``Recreate`` while held, its own
strategy saved) and the release scales its ReplicaSets itself, with one difference: the stable
ReplicaSet is never scaled down. Each step runs that many pods of the new ReplicaSet (the green
set) beside all the old ones (the blue set), so the stable Service and the routes can go back
to the old set at any time without creating a pod. Capacity: up to twice the replicas
(``kubectl progressive plan`` shows the peak per step).

The Deployment controller scales a paused Deployment's old ReplicaSets to zero as soon as its
new ReplicaSet is *saturated* (all its replicas available). So while held, the Deployment's
``minReadySeconds`` is :data:`HELD_MIN_READY` (and ``progressDeadlineSeconds``, which must be
larger, :data:`HELD_PROGRESS_DEADLINE`; the originals saved with the strategy): the new
pods are Ready (Services and routes use them) but never "available" to the Deployment
controller, which therefore leaves the old set alone.

The old set goes only at the end: the release hands the Deployment back (unpaused, its own
strategy and ``minReadySeconds``) *before* the routes return to the stable Service, so its
controller scales the old ReplicaSet to zero while every request still goes to the new set
(:data:`vela_progressive.core.decide.BLUE_GREEN_COMPLETION`).
"""

from __future__ import annotations

import json

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.workloads.common import (
    ORIGINAL_ANNOTATION,
    Obj,
    Observed,
    WorkloadView,
    Writes,
    create_of,
    patch_of,
)
from vela_progressive.core.workloads.deployment_partition import (
    PartitionDeployment,
    _pth,
    _replicas,
    scale,
)

#: ``minReadySeconds`` while held: new pods never count as available, so the Deployment
#: controller never finds the new ReplicaSet saturated and never scales the old one down.
HELD_MIN_READY = 2**31 - 2
HELD_PROGRESS_DEADLINE = 2**31 - 1
#: The Deployment fields the hold changes besides ``paused`` and ``strategy`` (restored at the end).
HELD_FIELDS = {"minReadySeconds": HELD_MIN_READY, "progressDeadlineSeconds": HELD_PROGRESS_DEADLINE}
#: What the API server fills in when the user set nothing.
DEFAULTS = {"minReadySeconds": 0, "progressDeadlineSeconds": 600}


def _original(deploy: Obj) -> Obj:
    raw = (deploy["metadata"].get("annotations") or {}).get(ORIGINAL_ANNOTATION)
    saved: Obj = json.loads(raw) if raw else {}
    return saved


class BlueGreenDeployment(PartitionDeployment):
    mode = ReleaseMode.BLUE_GREEN

    def hold(self, obs: Observed, view: WorkloadView) -> Writes:
        deploy = obs.workload
        spec = deploy["spec"]
        saved = _original(deploy)
        held = (
            spec.get("paused")
            and spec.get("strategy", {}).get("type") == "Recreate"
            and all(spec.get(k) == v for k, v in HELD_FIELDS.items())
            and all(k in saved for k in HELD_FIELDS)
        )
        if held:
            return ()
        patch: Obj = {
            "spec": {
                "paused": True,
                "strategy": {"type": "Recreate", "rollingUpdate": None},
                **HELD_FIELDS,
            }
        }
        if not all(k in saved for k in HELD_FIELDS):
            original = {
                "strategy": saved.get("strategy", spec.get("strategy", {})),
                **{k: spec.get(k, DEFAULTS[k]) for k in HELD_FIELDS},
            }
            patch["metadata"] = {"annotations": {ORIGINAL_ANNOTATION: json.dumps(original)}}
        why = (
            f"hold Deployment {obs.name}: paused, Recreate and minReadySeconds {HELD_MIN_READY} "
            "so its controller never scales the old set down (the originals are saved)"
        )
        return (patch_of(deploy, patch, why),)

    def _new_rs_object(self, obs: Observed, view: WorkloadView, replicas: int) -> Obj:
        created = super()._new_rs_object(obs, view, replicas)
        created["spec"]["minReadySeconds"] = HELD_MIN_READY
        return created

    def finalize(self, obs: Observed, view: WorkloadView) -> tuple[Writes, bool]:
        writes, done = super().finalize(obs, view)
        deploy = obs.workload
        if not writes or writes[0].key != (deploy["apiVersion"], deploy["kind"], obs.name):
            return writes, done
        body = dict(writes[0].body or {})
        saved = _original(deploy)
        body["spec"] = {
            **body.get("spec", {}),
            **{k: saved.get(k, DEFAULTS[k]) for k in HELD_FIELDS},
        }
        body.get("metadata", {}).pop("resourceVersion", None)
        return (patch_of(deploy, body, writes[0].reason), *writes[1:]), done

    def scale_to(
        self, obs: Observed, view: WorkloadView, new_pods: int, *, surge_ready: bool
    ) -> Writes:
        """``new_pods`` of the new ReplicaSet; the stable one whole; any other at zero
        (``surge_ready`` changes nothing: the old set stays until the end)."""
        writes = list(self.hold(obs, view))
        new_rs = self._new_rs(obs)
        if new_rs is None:
            new_name = f"{obs.name}-{view.update_revision}"
            if new_pods > 0:
                created = self._new_rs_object(obs, view, new_pods)
                why = f"create the new ReplicaSet of {obs.name} (the green set): {new_pods} pod(s)"
                writes.append(create_of(created, why))
        else:
            new_name = new_rs["metadata"]["name"]
            if _replicas(new_rs) != new_pods:
                writes.append(scale(new_rs, new_pods, f"{new_pods} pod(s) in the green set"))
        olds = [rs for rs in obs.of_kind("ReplicaSet") if rs["metadata"]["name"] != new_name]
        stable = [rs for rs in olds if view.stable_revision and _pth(rs) == view.stable_revision]
        if not stable and olds:
            stable = [max(olds, key=_replicas)]
        for rs in olds:
            keep = view.replicas if rs in stable else 0
            if _replicas(rs) != keep:
                why = (
                    f"the blue set whole: {keep} pod(s) of the stable revision"
                    if keep
                    else "a superseded revision: its pods go at once"
                )
                writes.append(scale(rs, keep, why))
        return tuple(writes)
