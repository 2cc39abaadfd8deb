"""Pure workload math: normalised views, revision identity, hold decisions, and the registry of
workload kinds with each release style's compute (:mod:`.registry`).

The shell reads live objects and hands them to these functions; they never do I/O.
"""

from __future__ import annotations

from vela_progressive.core.workloads import registry
from vela_progressive.core.workloads.common import (
    APP_REVISION_LABEL,
    CANARY_OF_LABEL,
    CONTROLLER_REVISION_HASH,
    ORIGINAL_ANNOTATION,
    POD_TEMPLATE_HASH,
    Obj,
    Observed,
    Read,
    WorkloadView,
    Write,
    Writes,
    key_of,
    template_hash,
    template_without_hash,
    templates_equal,
)
from vela_progressive.core.workloads.style import RbacRule, Style, WorkloadKind

__all__ = [
    "APP_REVISION_LABEL",
    "CANARY_OF_LABEL",
    "CONTROLLER_REVISION_HASH",
    "ORIGINAL_ANNOTATION",
    "POD_TEMPLATE_HASH",
    "SUPPORTED_KINDS",
    "Obj",
    "Observed",
    "RbacRule",
    "Read",
    "Style",
    "WorkloadKind",
    "WorkloadView",
    "Write",
    "Writes",
    "hold_patch",
    "key_of",
    "registry",
    "template_hash",
    "template_without_hash",
    "templates_equal",
]

#: The workload kinds the controller releases: registry keys (:func:`key_of`).
SUPPORTED_KINDS = registry.kinds()


def hold_patch(key: str, old: Obj | None, new: Obj) -> Obj | None:
    """The change that holds an UPDATE of a governed workload, or ``None`` when none is needed.

    Only a change of the pod template is held; scaling or label edits pass untouched. Each
    kind's rule is its registry entry's ``hold``; ``key``: the kind's registry key.

    >>> old = {"spec": {"replicas": 3, "template": {"spec": {"image": "v1"}}}}
    >>> new = {"spec": {"replicas": 3, "template": {"spec": {"image": "v2"}}}}
    >>> hold_patch("Deployment", old, new)
    {'spec': {'paused': True}}
    >>> hold_patch("StatefulSet", old, new)["spec"]
    {'updateStrategy': {'type': 'RollingUpdate', 'rollingUpdate': {'partition': 3}}}
    >>> hold_patch("Deployment", old, old) is None
    True
    >>> hold_patch("CronJob", old, new) is None
    True
    """
    entry = registry.find(key)
    return entry.hold(old, new) if entry is not None else None
