"""Why a step's pods are not Ready: classify pod status into a reason a person can act on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]

_WAITING_REASONS = {
    "ImagePullBackOff": "ImagePull",
    "ErrImagePull": "ImagePull",
    "InvalidImageName": "ImagePull",
    "CrashLoopBackOff": "CrashLoop",
    "CreateContainerConfigError": "ContainerConfig",
    "CreateContainerError": "ContainerConfig",
}

_HINTS = {
    "ImagePull": "check the image name and tag, and the registry credentials",
    "CrashLoop": "the new version keeps crashing: read its logs (kubectl logs)",
    "ContainerConfig": "a referenced ConfigMap/Secret or the container config is wrong",
    "Unschedulable": "no node can run the pod: check resources, node selectors and taints",
    "NotReady": "the pods run but their readiness probe does not pass",
    "Pending": "the pods were not created yet: check their events",
}


def pod_reason(pod: Obj) -> str | None:
    """The blocking reason of one pod, or ``None`` when it is Ready.

    >>> pod_reason({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled",
    ...     "status": "False", "reason": "Unschedulable"}]}})
    'Unschedulable'
    >>> pod_reason({"status": {"phase": "Running", "containerStatuses": [{"ready": False,
    ...     "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}})
    'CrashLoop'
    >>> pod_reason({"status": {"phase": "Running", "conditions": [{"type": "Ready",
    ...     "status": "True"}]}}) is None
    True
    """
    status = pod.get("status", {})
    conditions = {c.get("type"): c for c in status.get("conditions", [])}
    if conditions.get("Ready", {}).get("status") == "True":
        return None
    for cs in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        waiting = cs.get("state", {}).get("waiting") or {}
        if waiting.get("reason") in _WAITING_REASONS:
            return _WAITING_REASONS[waiting["reason"]]
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False":
        return "Unschedulable"
    if status.get("phase") == "Running":
        return "NotReady"
    return "Pending"


def classify(pods: Iterable[Obj]) -> tuple[str, str]:
    """The most common blocking reason among ``pods`` and a message saying what to do.

    >>> classify([{"status": {"phase": "Pending"}}])[1]
    '1 pod(s) Pending: the pods were not created yet: check their events'

    >>> classify([])
    ('Pending', 'no pod of the new revision exists yet')
    """
    reasons = Counter(r for r in (pod_reason(p) for p in pods) if r)
    if not reasons:
        return "Pending", "no pod of the new revision exists yet"
    reason, count = reasons.most_common(1)[0]
    return reason, f"{count} pod(s) {reason}: {_HINTS[reason]}"
