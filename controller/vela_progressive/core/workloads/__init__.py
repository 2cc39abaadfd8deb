"""Pure workload math: normalised views, revision identity and hold decisions.

The shell reads live objects and hands them to these functions; they never do I/O.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from vela_progressive.core.model import ANNOTATION_PREFIX

Obj = dict[str, Any]

#: Label the Deployment controller puts on ReplicaSets and pods.
POD_TEMPLATE_HASH = "pod-template-hash"
#: Label the StatefulSet/DaemonSet controllers put on pods.
CONTROLLER_REVISION_HASH = "controller-revision-hash"
#: Label KubeVela puts on every object it applies: the Application revision.
APP_REVISION_LABEL = "app.oam.dev/appRevision"

SUPPORTED_KINDS = ("Deployment", "StatefulSet")

#: Annotation holding the workload fields we change, so finalize/abort restores them exactly.
ORIGINAL_ANNOTATION = f"{ANNOTATION_PREFIX}/original-workload-spec"

_SAFE = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class WorkloadView:
    """What the release logic needs to know about a workload, whatever its kind."""

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
    #: The workload carries the trait's hold label (``HOLD_LABEL: "true"``); ``False`` once the
    #: trait was removed from the component.
    governed: bool = True

    @property
    def idle(self) -> bool:
        """Every pod runs the update revision: nothing to release."""
        return self.old_pods == 0 and self.new_pods >= self.replicas and not self.held


def template_without_hash(template: Obj, label: str = POD_TEMPLATE_HASH) -> Obj:
    """The pod template with the controller-added revision label removed."""
    clean = copy.deepcopy(template)
    labels = clean.get("metadata", {}).get("labels")
    if labels and label in labels:
        del labels[label]
    return clean


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


def hold_patch(kind: str, old: Obj | None, new: Obj) -> Obj | None:
    """The change that holds an UPDATE of a governed workload, or ``None`` when none is needed.

    Only a change of the pod template is held; scaling or label edits pass untouched.

    >>> old = {"spec": {"replicas": 3, "template": {"spec": {"image": "v1"}}}}
    >>> new = {"spec": {"replicas": 3, "template": {"spec": {"image": "v2"}}}}
    >>> hold_patch("Deployment", old, new)
    {'spec': {'paused': True}}
    >>> hold_patch("StatefulSet", old, new)["spec"]
    {'updateStrategy': {'type': 'RollingUpdate', 'rollingUpdate': {'partition': 3}}}
    >>> hold_patch("Deployment", old, old) is None
    True
    """
    if old is None:
        return None
    old_t = old.get("spec", {}).get("template", {})
    new_t = new.get("spec", {}).get("template", {})
    if templates_equal(old_t, new_t):
        return None
    spec = new.get("spec", {})
    if kind == "Deployment":
        return None if spec.get("paused") else {"spec": {"paused": True}}
    if kind == "StatefulSet":
        replicas = int(spec.get("replicas", 1))
        current = spec.get("updateStrategy", {}).get("rollingUpdate", {}).get("partition", 0)
        if current >= replicas:
            return None
        held: Obj = {
            "spec": {
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"partition": replicas},
                }
            }
        }
        annotations = new.get("metadata", {}).get("annotations") or {}
        if ORIGINAL_ANNOTATION not in annotations:
            original = {"updateStrategy": old.get("spec", {}).get("updateStrategy", {})}
            held["metadata"] = {"annotations": {ORIGINAL_ANNOTATION: json.dumps(original)}}
        return held
    return None
