"""What the controller keeps of the objects it watches, and when a change matters.

The shell keeps a watch-backed copy of every pod, ReplicaSet, Deployment, StatefulSet and
DaemonSet (``shell.cache``) so a pass reads them from memory instead of asking the API server.
These are its pure rules:

- :func:`trim`: the part of an object a release reads. A pod keeps its metadata and status (the
  readiness, phase and container states a step and its diagnosis look at), not its spec; every
  object loses ``managedFields``. What a pass never reads costs memory for every pod of the
  cluster.
- :func:`signature`: the part whose change may move a release (a pod's readiness, a
  ReplicaSet's counts, anything of a workload). Only such a change wakes a rollout; a pod's
  status heartbeat does not.
- :func:`workload_of`: the workload an object is or belongs to, so its change wakes that
  workload's rollout.
- :func:`parse_selector`: a label selector query the copy can answer (equality only).
- :func:`stale`: an event older than what the copy already has (the answer of the controller's
  own write came first); :func:`deleting`: how a delete the controller made shows before its
  event arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from sys import intern
from typing import Any

from vela_progressive.core.workloads.common import CANARY_OF_LABEL, is_ready, labels_of

Obj = dict[str, Any]


def trim(obj: Obj) -> Obj:
    """``obj`` without what no release reads (``managedFields``; a pod's spec), its strings
    shared (:func:`compact`).

    >>> trim({"kind": "Pod", "metadata": {"name": "a", "managedFields": [{}]},
    ...       "spec": {"containers": []}, "status": {"phase": "Running"}})
    {'kind': 'Pod', 'metadata': {'name': 'a'}, 'status': {'phase': 'Running'}}
    """
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    kept = {k: v for k, v in obj.items() if not (k == "spec" and obj.get("kind") == "Pod")}
    compacted: Obj = compact({**kept, "metadata": meta})
    return compacted


#: Strings up to this length are shared between the copies (keys, labels, images, conditions,
#: timestamps); a longer one is rarely repeated.
SHARED_STRING = 64


def compact(value: Any) -> Any:
    """Decoded JSON rebuilt with its keys and short strings interned: every decoded object
    brings its own copy of ``"metadata"``, ``"lastTransitionTime"``, ``"Ready"``...: interned,
    a pod, its ReplicaSet and its Deployment take 11.1 KiB instead of 23.1 (docs/benchmarks.md).
    Equal to ``value``.

    >>> a, b = compact({"status": "True"}), compact({"status": "True"})
    >>> next(iter(a)) is next(iter(b)) and a["status"] is b["status"]
    True
    """
    if type(value) is dict:
        return {intern(k): compact(v) for k, v in value.items()}
    if type(value) is list:
        return [compact(v) for v in value]
    if type(value) is str and len(value) <= SHARED_STRING:
        return intern(value)
    return value


def copied(value: Any) -> Any:
    """A deep copy of decoded JSON (dicts, lists, scalars): what a pass may change is its own.
    Several times faster than ``copy.deepcopy``, which a pass paid for on every object read
    (at 1,000 releases in flight, 7% of the controller's CPU went to deep-copying the rollout
    alone: docs/benchmarks.md).

    >>> kept = {"spec": {"steps": [{"replicas": 1}]}}
    >>> mine = copied(kept)
    >>> mine["spec"]["steps"][0]["replicas"] = 2
    >>> kept
    {'spec': {'steps': [{'replicas': 1}]}}
    """
    if type(value) is dict:
        return {k: copied(v) for k, v in value.items()}
    if type(value) is list:
        return [copied(v) for v in value]
    return value


#: Kinds whose change belongs to the workload that owns them; any other kind is a workload.
OWNED_KINDS = ("Pod", "ReplicaSet")


def _is_workload(obj: Obj) -> bool:
    kind = obj.get("kind")
    return bool(kind) and kind not in OWNED_KINDS


def signature(obj: Obj) -> Hashable:
    """What about ``obj`` may move a release; a change of anything else wakes no rollout.

    A pod: whether it is Ready, its phase, whether it is terminating. A ReplicaSet: its desired
    and counted replicas, and whether it is being deleted. A workload: any change (a new
    template, a label, an operation, its status), so its ``resourceVersion``.

    >>> signature({"kind": "Pod", "metadata": {}, "status": {"phase": "Running"}})
    ('Running', False, False)
    >>> signature({"kind": "Deployment", "metadata": {"resourceVersion": "7"}})
    ('7', False)
    """
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    terminating = bool(meta.get("deletionTimestamp"))
    if obj.get("kind") == "Pod":
        return (status.get("phase"), is_ready(obj), terminating)
    if _is_workload(obj):
        return (meta.get("resourceVersion"), terminating)
    return (
        (obj.get("spec") or {}).get("replicas"),
        status.get("replicas"),
        status.get("readyReplicas"),
        status.get("availableReplicas"),
        status.get("observedGeneration"),
        terminating,
    )


def workload_of(obj: Obj, replicaset: Callable[[str], Obj | None]) -> str | None:
    """The name of the workload (in the object's namespace) an object belongs to: a workload
    itself, or the workload a pod or ReplicaSet belongs to.

    The canary label names it on whatever a canary-style release made; a workload is its own;
    otherwise the controller owner does, through the ReplicaSet (``replicaset(name)``) for a
    Deployment's pod. ``None``: nothing governs it, or its ReplicaSet is not known (yet).

    >>> workload_of({"kind": "Deployment", "metadata": {"name": "web"}}, lambda name: None)
    'web'

    >>> pod = {"metadata": {"ownerReferences": [
    ...     {"kind": "ReplicaSet", "name": "web-7d9", "controller": True}]}}
    >>> rs = {"metadata": {"ownerReferences": [
    ...     {"kind": "Deployment", "name": "web", "controller": True}]}}
    >>> workload_of(pod, {"web-7d9": rs}.get)
    'web'
    """
    canary = labels_of(obj).get(CANARY_OF_LABEL)
    if canary:
        return canary
    if _is_workload(obj):
        return str((obj.get("metadata") or {}).get("name", "")) or None
    owner = _controller(obj)
    if owner is None:
        return None
    if owner.get("kind") == "ReplicaSet" and obj.get("kind") != "ReplicaSet":
        parent = replicaset(str(owner.get("name", "")))
        if parent is None:
            return None
        parent_owner = _controller(parent)
        return str(parent_owner["name"]) if parent_owner else None
    return str(owner.get("name", "")) or None


def _controller(obj: Obj) -> Mapping[str, Any] | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)


def parse_selector(selector: str | None) -> dict[str, str] | None:
    """``k=v,...`` as labels; ``None`` when it says anything else (the copy cannot answer it).

    >>> parse_selector("app=web,tier=front")
    {'app': 'web', 'tier': 'front'}
    >>> parse_selector("app!=web") is None
    True
    >>> parse_selector("")
    {}
    """
    labels: dict[str, str] = {}
    for part in (selector or "").split(","):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq or not key or any(c in part for c in "!() ") or value.startswith("="):
            return None
        labels[key] = value
    return labels


def stale(kept: Obj | None, event: Obj) -> bool:
    """Whether ``event`` is older than the ``kept`` copy of the same object.

    resourceVersions are compared as integers when both are (what the API server writes: its
    storage revision, comparable since Kubernetes 1.35); otherwise nothing is stale.

    >>> stale({"metadata": {"uid": "u", "resourceVersion": "120"}},
    ...       {"metadata": {"uid": "u", "resourceVersion": "95"}})
    True
    >>> stale({"metadata": {"uid": "u", "resourceVersion": "120"}},
    ...       {"metadata": {"uid": "v", "resourceVersion": "95"}})
    False
    """
    if kept is None:
        return False
    old, new = kept.get("metadata") or {}, event.get("metadata") or {}
    if old.get("uid") != new.get("uid"):
        return False
    before, after = str(old.get("resourceVersion", "")), str(new.get("resourceVersion", ""))
    return before.isdigit() and after.isdigit() and int(after) < int(before)


#: The deletionTimestamp a copy shows for an object the controller deleted, until the watch
#: brings the server's.
DELETING = "deleted-by-vela-progressive"


def deleting(obj: Obj) -> Obj:
    """``obj`` as terminating (a pass must not count it as live, nor delete another in its place).

    >>> deleting({"metadata": {"name": "a"}})["metadata"]["deletionTimestamp"]
    'deleted-by-vela-progressive'
    """
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return obj
    return {**obj, "metadata": {**meta, "deletionTimestamp": DELETING}}
