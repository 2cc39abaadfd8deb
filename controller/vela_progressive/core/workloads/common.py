"""What every workload kind shares: the normalised view, revision identity, pod helpers, and the
data an adapter's pure *compute* half exchanges with the shell's *act* half.

A release style reads the objects it declares (:class:`Read`), turns them into an
:class:`Observed` snapshot, and computes the writes (:class:`Write`) that move the workload; the
shell performs the reads and applies the writes in order, each with its precondition, and hands
the server's answers back through :meth:`Observed.after`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from vela_progressive.core.model import ANNOTATION_PREFIX, HOLD_LABEL
from vela_progressive.core.traffic.patch import apply_merge_patch, json_patch

Obj = dict[str, Any]

#: Label the Deployment controller puts on ReplicaSets and pods.
POD_TEMPLATE_HASH = "pod-template-hash"
#: Label the StatefulSet/DaemonSet controllers put on pods.
CONTROLLER_REVISION_HASH = "controller-revision-hash"
#: Label KubeVela puts on every object it applies: the Application revision.
APP_REVISION_LABEL = "app.oam.dev/appRevision"
#: Annotation holding the workload fields we change, so finalize/abort restores them exactly.
ORIGINAL_ANNOTATION = f"{ANNOTATION_PREFIX}/original-workload-spec"
#: Label on objects this controller creates for a workload (canary Deployment, ...).
CANARY_OF_LABEL = f"{ANNOTATION_PREFIX}/canary-of"

_SAFE = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class WorkloadView:
    """What the release logic needs to know about a workload, whatever its kind."""

    #: The kind's registry key (:func:`key_of`): ``StatefulSet``, ``CloneSet.apps.kruise.io``.
    kind: str
    name: str
    namespace: str
    replicas: int
    #: Revision id of the workload's current pod template (the release target).
    update_revision: str
    #: Revision id of the pods that ran before the template changed.
    stable_revision: str | None
    #: Pods on the update revision, and how many of them are Ready.
    new_pods: int
    new_ready: int
    #: Pods on any other revision.
    old_pods: int
    #: The workload cannot move by itself (Deployment paused / partition covers every pod).
    held: bool
    #: The workload controller has caught up with the spec (observedGeneration).
    settled: bool
    #: The Application revision KubeVela last applied to the workload (its
    #: ``app.oam.dev/appRevision`` label); ``None`` for a workload KubeVela does not manage.
    app_revision: str | None = None
    #: The workload carries the hold label (``HOLD_LABEL: "true"``): the trait still governs it.
    governed: bool = True

    @property
    def idle(self) -> bool:
        """Every pod runs the update revision: nothing to release."""
        return self.old_pods == 0 and self.new_pods >= self.replicas and not self.held


def key_of(api_version: str, kind: str) -> str:
    """The registry key of a workload type.

    >>> key_of("apps/v1", "StatefulSet"), key_of("apps.kruise.io/v1beta1", "StatefulSet")
    ('StatefulSet', 'StatefulSet.apps.kruise.io')
    >>> key_of("", "Deployment")
    'Deployment'
    """
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    return kind if group in ("apps", "") else f"{kind}.{group}"


# ---------------------------------------------------------------------------------- templates
def template_without_hash(template: Obj, label: str = POD_TEMPLATE_HASH) -> Obj:
    """The pod template with the controller-added revision label removed. It shares all else
    with ``template`` (no deep copy: comparing and hashing templates is on every pass), so it is
    for reading only.

    >>> t = {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}}
    >>> template_without_hash(t), t["metadata"]["labels"]
    ({'metadata': {'labels': {'app': 'web'}}}, {'app': 'web', 'pod-template-hash': 'abc'})
    """
    meta = template.get("metadata") or {}
    labels = meta.get("labels")
    if not labels or label not in labels:
        return template
    kept = {k: v for k, v in labels.items() if k != label}
    return {**template, "metadata": {**meta, "labels": kept}}


def template_hash(template: Obj) -> str:
    """A short, stable, DNS-safe hash of a pod template (revision label removed).

    >>> t = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"image": "v1"}]}}
    >>> template_hash(t) == template_hash({**t, "metadata": {"labels": {"app": "web",
    ...     "pod-template-hash": "abc"}}})
    True
    >>> len(template_hash(t))
    10
    """
    raw = json.dumps(template_without_hash(template), sort_keys=True).encode()
    digest = hashlib.sha256(raw).digest()
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:10])


def templates_equal(a: Obj, b: Obj) -> bool:
    """Equal pod templates, ignoring the revision labels controllers add."""
    return template_without_hash(a) == template_without_hash(b)


def replacing_patch(current: Any, desired: Any) -> Any:
    """The JSON merge patch that turns ``current`` into exactly ``desired`` (keys missing from
    ``desired`` are set to null, lists are replaced whole), or ``None`` when they are equal.

    >>> replacing_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 2}})
    {'b': {'d': None}}
    >>> replacing_patch({"a": [1, 2]}, {"a": [1, 2]}) is None
    True
    """
    if isinstance(current, dict) and isinstance(desired, dict):
        patch: dict[str, Any] = {key: None for key in current if key not in desired}
        for key, value in desired.items():
            if key not in current:
                patch[key] = value
            else:
                sub = replacing_patch(current[key], value)
                if sub is not None:
                    patch[key] = sub
        return patch or None
    return None if current == desired else desired


def without_nulls(value: Any) -> Any:
    """``value`` without null map entries (the API server drops them; a merge patch deletes)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


#: Pod template fields the API server (native kinds) or a defaulting webhook (OpenKruise kinds)
#: fills in when a client leaves them out.
DEFAULTED_POD_FIELDS = (
    "dnsPolicy",
    "restartPolicy",
    "schedulerName",
    "securityContext",
    "terminationGracePeriodSeconds",
)
DEFAULTED_CONTAINER_FIELDS = (
    "imagePullPolicy",
    "resources",
    "terminationMessagePath",
    "terminationMessagePolicy",
)


def _filled(new: Any, old: Any, fields: tuple[str, ...]) -> Any:
    if not isinstance(new, dict) or not isinstance(old, dict):
        return new
    return {**{k: old[k] for k in fields if k in old and k not in new}, **new}


def _filled_containers(new: Any, old: Any) -> Any:
    if not isinstance(new, list) or not isinstance(old, list):
        return new
    by_name = {c.get("name"): c for c in old if isinstance(c, dict)}
    out = []
    for container in new:
        before = by_name.get(container.get("name")) if isinstance(container, dict) else None
        if before is None:
            out.append(container)
            continue
        filled = _filled(container, before, DEFAULTED_CONTAINER_FIELDS)
        ports, old_ports = filled.get("ports"), before.get("ports")
        if isinstance(ports, list) and isinstance(old_ports, list) and len(ports) == len(old_ports):
            filled["ports"] = [
                _filled(port, was, ("protocol",))
                for port, was in zip(ports, old_ports, strict=True)
            ]
        out.append(filled)
    return out


def with_defaults_from(new: Obj, old: Obj) -> Obj:
    """Pod template ``new`` with the defaulted fields it leaves out taken from ``old``.

    A client that applies its manifest as written (KubeVela's ``k8s-objects``) sends no
    defaults; for a kind whose defaults come from a mutating webhook (OpenKruise's) the hold
    webhook may see that request before the defaults are filled in. Such an UPDATE does not
    change the template. (Removing a field that has a default is seen as no change: the
    workload's controller then rolls it by its own strategy.)

    >>> old = {"spec": {"dnsPolicy": "ClusterFirst", "containers": [{"name": "a", "image": "v1",
    ...     "imagePullPolicy": "Always", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}
    >>> new = {"spec": {"containers": [{"name": "a", "image": "v1",
    ...     "ports": [{"containerPort": 80}]}]}}
    >>> with_defaults_from(new, old) == old
    True
    """
    spec, old_spec = new.get("spec"), old.get("spec")
    if not isinstance(spec, dict) or not isinstance(old_spec, dict):
        return new
    filled = _filled(spec, old_spec, DEFAULTED_POD_FIELDS)
    for key in ("containers", "initContainers"):
        if key in filled:
            filled[key] = _filled_containers(filled[key], old_spec.get(key))
    metadata = dict(new.get("metadata") or {})
    if "creationTimestamp" in (old.get("metadata") or {}):
        metadata.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"])
    out = {**new, "spec": filled}
    if metadata or "metadata" in new:
        out["metadata"] = metadata
    return out


#: What may make a kind's hold rule change an UPDATE, in CEL (``WorkloadKind.hold_when``): the
#: API server calls the hold webhook only then (``core.admission``). Each over-approximates its
#: rule (a webhook called for nothing lets the request through unchanged), never the reverse.
TEMPLATE_CHANGED = (
    "!has(object.spec.template) || !has(oldObject.spec.template) "
    "|| object.spec.template != oldObject.spec.template"
)
SCALED_UP = (
    "(has(object.spec.replicas) ? object.spec.replicas : 1) "
    "> (has(oldObject.spec.replicas) ? oldObject.spec.replicas : 1)"
)
IN_RELEASE = (
    f"has(object.metadata.annotations) && '{ORIGINAL_ANNOTATION}' in object.metadata.annotations"
)


def pod_template_changed(old: Obj | None, new: Obj) -> bool:
    """An UPDATE from ``old`` to ``new`` changes the workload's pod template (fields the server
    or a webhook defaults are not a change when ``new`` leaves them out:
    :func:`with_defaults_from`)."""
    if old is None:
        return False
    old_t = old.get("spec", {}).get("template", {})
    new_t = new.get("spec", {}).get("template", {})
    return not templates_equal(old_t, with_defaults_from(new_t, old_t))


# ---------------------------------------------------------------------------------- objects
def match_labels(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = (obj.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    return labels


def selector_string(labels: Mapping[str, str]) -> str:
    """``k=v,...`` for a label selector query parameter.

    >>> selector_string({"b": "2", "a": "1"})
    'a=1,b=2'
    """
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def labels_of(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def annotations_of(obj: Obj) -> dict[str, str]:
    annotations: dict[str, str] = obj.get("metadata", {}).get("annotations") or {}
    return annotations


def owned_by(obj: Obj, uid: str) -> bool:
    return any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or [])


def is_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def is_live(pod: Obj) -> bool:
    """Counted as a pod of its revision: not terminating and not finished."""
    return not pod["metadata"].get("deletionTimestamp") and pod.get("status", {}).get(
        "phase"
    ) not in ("Succeeded", "Failed")


def settled(obj: Obj) -> bool:
    """The workload's controller has observed its latest spec."""
    return int(obj.get("status", {}).get("observedGeneration", 0)) >= int(
        obj["metadata"].get("generation", 0)
    )


def view_of(
    obj: Obj,
    *,
    update: str,
    stable: str | None,
    new: list[Obj],
    live_pods: int,
    held: bool,
    judged_without_status: bool = False,
) -> WorkloadView:
    """The normalised view of a workload object and its pods (``new``: the update revision's).
    ``judged_without_status``: nothing of the view comes from the workload's status, so it
    counts as settled whether or not its controller has observed the latest spec."""
    labels = labels_of(obj)
    return WorkloadView(
        kind=key_of(obj["apiVersion"], obj["kind"]),
        name=obj["metadata"]["name"],
        namespace=obj["metadata"]["namespace"],
        replicas=int(obj["spec"].get("replicas", 1)),
        update_revision=update,
        stable_revision=stable,
        new_pods=len(new),
        new_ready=sum(1 for p in new if is_ready(p)),
        old_pods=live_pods - len(new),
        held=held,
        settled=judged_without_status or settled(obj),
        app_revision=labels.get(APP_REVISION_LABEL),
        governed=labels.get(HOLD_LABEL) == "true",
    )


# ---------------------------------------------------------------------------------- compute/act
@dataclass(frozen=True)
class Read:
    """One read the shell performs for a style: a ``get`` by name, else a ``list`` by labels."""

    api_version: str
    kind: str
    name: str | None = None
    selector: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Write:
    """One write computed by a style, applied by the shell in order.

    ``patch``: ``body`` is a JSON merge patch carrying ``metadata.resourceVersion`` of the object
    it was computed from, so the API server refuses it (409) if the object changed since it was
    read; or, a patch of the ``spec`` alone, ``ops`` is what is sent: a JSON patch whose ``test``
    operations, first, hold the object to the ``uid`` and ``generation`` it was read with (see
    :func:`patch_of`), and ``body`` the same change as a merge patch, for previews and
    simulations. ``create``: ``body`` is the whole object. ``delete``: ``uid`` is the
    precondition (the object read, never a successor with the same name, e.g. a StatefulSet pod).
    """

    verb: Literal["create", "patch", "delete"]
    api_version: str
    kind: str
    namespace: str
    name: str
    body: Obj | None = None
    uid: str | None = None
    #: What the write does and why, for people (logs, ``kubectl progressive plan``).
    reason: str = ""
    #: A patch sent as this JSON patch (RFC 6902) rather than as ``body`` (see above).
    ops: tuple[Obj, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.api_version, self.kind, self.name)


def patch_of(obj: Obj, body: Obj, reason: str = "") -> Write:
    """A patch of ``obj``, refused by the API server if ``obj`` changed since it was read.

    A change of the ``spec`` alone was computed from the spec: it is held to the object's
    ``uid`` and ``generation``, which every change of the spec moves and no status write does
    (``ops``, :class:`Write`). Held to the ``resourceVersion``, a scale was refused whenever the
    object's controller had written its status meanwhile, as it does each time one of the
    step's own pods becomes Ready: 10 of about 3,000 ReplicaSet scales at 1,000 releases in flight,
    each costing a read and a pass: the three slowest steps of one run (docs/benchmarks.md). Any
    other patch carries the ``resourceVersion``.
    """
    meta = obj["metadata"]
    body = copy.deepcopy(body)
    where = (obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    if set(body) == {"spec"} and meta.get("uid") and meta.get("generation") is not None:
        held = (
            {"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
            {"op": "test", "path": "/metadata/generation", "value": meta["generation"]},
        )
        return Write("patch", *where, body, None, reason, (*held, *json_patch(obj, body)))
    version = meta.get("resourceVersion")
    if version:
        body.setdefault("metadata", {})["resourceVersion"] = version
    return Write("patch", *where, body, None, reason)


def create_of(obj: Obj, reason: str = "") -> Write:
    meta = obj["metadata"]
    return Write(
        "create", obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"], obj, None, reason
    )


def delete_of(obj: Obj, reason: str = "") -> Write:
    meta = obj["metadata"]
    return Write(
        "delete",
        obj["apiVersion"],
        obj["kind"],
        meta["namespace"],
        meta["name"],
        None,
        meta.get("uid"),
        reason,
    )


def _key(obj: Obj) -> tuple[str, str, str]:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


@dataclass(frozen=True)
class Observed:
    """What a style read: the workload, the objects that belong to it, its live pods.

    ``objects``: ReplicaSets, the ``<name>-canary`` Deployment, ...; ``owner``: the rollout's
    owner reference, set on the objects a release creates.
    """

    workload: Obj
    objects: tuple[Obj, ...] = ()
    pods: tuple[Obj, ...] = ()
    owner: Obj | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return str(self.workload["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.workload["metadata"]["namespace"])

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> Obj | None:
        return next((o for o in self.of_kind(kind) if o["metadata"]["name"] == name), None)

    def after(self, write: Write, result: Obj | None = None) -> Observed:
        """The snapshot once ``write`` is applied: ``result`` is what the server answered
        (``None``: simulate it, as the offline preview does)."""
        if write.verb == "delete":
            keep = [o for o in (self.workload, *self.objects, *self.pods) if _key(o) != write.key]
            return replace(
                self,
                objects=tuple(o for o in self.objects if o in keep),
                pods=tuple(p for p in self.pods if p in keep),
            )
        if result is None:
            if write.verb == "create":
                result = copy.deepcopy(write.body or {})
            else:
                current = self._find(write.key)
                assert current is not None, f"patch of an object never read: {write.key}"
                patch = copy.deepcopy(write.body or {})
                patch.get("metadata", {}).pop("resourceVersion", None)
                result = apply_merge_patch(current, patch)
        assert result is not None
        if _key(result) == _key(self.workload):
            return replace(self, workload=result)
        if result["kind"] == "Pod":
            others = tuple(p for p in self.pods if _key(p) != _key(result))
            return replace(self, pods=(*others, result))
        rest = [o for o in self.objects if _key(o) != _key(result)]
        at = next((n for n, o in enumerate(self.objects) if _key(o) == _key(result)), len(rest))
        rest.insert(at, result)
        return replace(self, objects=tuple(rest))

    def after_all(self, writes: Iterable[Write]) -> Observed:
        """The snapshot once ``writes`` are applied in order, each simulated as :meth:`after`
        does without an answer (what the shell's copies will show once they are made)."""
        obs = self
        for write in writes:
            obs = obs.after(write)
        return obs

    def _find(self, key: tuple[str, str, str]) -> Obj | None:
        return next((o for o in (self.workload, *self.objects, *self.pods) if _key(o) == key), None)


Writes = tuple[Write, ...]


class OwnPods:
    """The observe half shared by styles whose workload owns its pods directly (StatefulSet,
    CloneSet): read the pods its selector matches, keep the live ones it owns."""

    def reads(self, workload: Obj) -> tuple[Read, ...]:
        return (Read("v1", "Pod", selector=match_labels(workload)),)

    def observed(self, workload: Obj, found: Sequence[list[Obj]], owner: Obj | None) -> Observed:
        (pods,) = found
        uid = workload["metadata"]["uid"]
        live = tuple(p for p in pods if is_live(p) and owned_by(p, uid))
        return Observed(workload, pods=live, owner=owner)

    def _delete(self, pods: list[Obj], why: str) -> list[Write]:
        """Deletes of ``pods`` (their controller recreates them), each with its reason."""
        return [delete_of(p, f"delete pod {p['metadata']['name']}: {why}") for p in pods]
