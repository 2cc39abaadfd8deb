"""The one registry of workload kinds the controller releases.

Everything that depends on the kinds derives from :data:`REGISTRY`: ``SUPPORTED_KINDS`` and the
webhook's hold decision (``core.workloads``), the shell's adapters (``shell.workloads``, one
generic adapter per (kind, style)), the Kopf handlers (``handlers.py``: a watch and a hold
webhook per kind), the REST map (``shell.kube.KNOWN_KINDS``), the default release style
(``Strategy.mode_for``), the offline preview (``kubectl progressive plan``), and the addon's
webhook rules and RBAC (``hack/gen.py`` writes them into ``addon/resources/names.cue``;
``make verify`` fails on drift).

Adding a kind is one module under ``core/workloads/`` (its styles' pure compute, its hold rule,
its :class:`~.style.WorkloadKind`) and one entry in :data:`REGISTRY`
(``docs/workloads/README.md``).

>>> [k.key for k in REGISTRY]  # doctest: +NORMALIZE_WHITESPACE
['Deployment', 'StatefulSet', 'DaemonSet', 'CloneSet.apps.kruise.io',
 'StatefulSet.apps.kruise.io', 'DaemonSet.apps.kruise.io']
>>> lookup("StatefulSet").handler_id, lookup("StatefulSet.apps.kruise.io").handler_id
('hold-statefulsets', 'hold-statefulsets-apps-kruise-io')
>>> default_style("Deployment").value, [m.value for m in lookup("StatefulSet").styles]
('canary', ['batch'])
"""

from __future__ import annotations

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.workloads.advanced_daemonset import ADVANCED_DAEMONSET
from vela_progressive.core.workloads.advanced_statefulset import ADVANCED_STATEFULSET
from vela_progressive.core.workloads.cloneset import CLONESET
from vela_progressive.core.workloads.common import key_of
from vela_progressive.core.workloads.daemonset import DAEMONSET
from vela_progressive.core.workloads.deployment import DEPLOYMENT
from vela_progressive.core.workloads.statefulset import STATEFULSET
from vela_progressive.core.workloads.style import RbacRule, Style, WorkloadKind

#: Every kind the controller releases, in the order handlers, rules and messages list them.
REGISTRY: tuple[WorkloadKind, ...] = (
    DEPLOYMENT,
    STATEFULSET,
    DAEMONSET,
    CLONESET,
    ADVANCED_STATEFULSET,
    ADVANCED_DAEMONSET,
)

_BY_KEY = {k.key: k for k in REGISTRY}

#: Verbs in the order Kubernetes documentation lists them (merged rules keep this order).
_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


def kinds() -> tuple[str, ...]:
    """The kinds' registry keys (:func:`~.common.key_of`): ``SUPPORTED_KINDS``."""
    return tuple(_BY_KEY)


def lookup(key: str) -> WorkloadKind:
    """The registry entry of ``key``; :class:`KeyError` for an unsupported kind."""
    return _BY_KEY[key]


def find(key: str) -> WorkloadKind | None:
    return _BY_KEY.get(key)


def find_type(api_version: str, kind: str) -> WorkloadKind | None:
    """The entry serving ``apiVersion``/``kind`` (any of its served versions), or ``None``.

    >>> find_type("apps.kruise.io/v1alpha1", "StatefulSet").api_version
    'apps.kruise.io/v1beta1'
    >>> find_type("apps/v1beta2", "Deployment") is None
    True
    """
    entry = _BY_KEY.get(key_of(api_version, kind))
    return entry if entry is not None and api_version in entry.api_versions else None


def served_types() -> tuple[str, ...]:
    """``kind (apiVersion)`` of every served version, for messages."""
    return tuple(f"{e.kind} ({v})" for e in REGISTRY for v in e.api_versions)


def default_style(key: str) -> ReleaseMode:
    """The release mode of ``key`` when the trait names none (batch for an unknown kind)."""
    entry = _BY_KEY.get(key)
    return entry.default_style if entry else ReleaseMode.BATCH


def kinds_with(mode: ReleaseMode) -> tuple[str, ...]:
    """The kinds that can be released in ``mode`` (validation and the trait's CUE read it).

    >>> kinds_with(ReleaseMode.CANARY)
    ('Deployment',)
    """
    return tuple(entry.key for entry in REGISTRY if mode in entry.styles)


def style_for(key: str, mode: ReleaseMode) -> Style:
    """The compute of (kind, mode); :class:`ValueError` when the kind has no such style."""
    entry = _BY_KEY.get(key)
    if entry is None:
        raise ValueError(f"unsupported workload kind {key}")
    return entry.style(mode)


def companions() -> tuple[tuple[str, str, str], ...]:
    """``(group, version, plural)`` of every object a style creates beside a workload."""
    seen: dict[tuple[str, str, str], None] = {}
    for entry in REGISTRY:
        for style in entry.styles.values():
            seen.update(dict.fromkeys(style.companions))
    return tuple(seen)


def rbac_rules() -> tuple[RbacRule, ...]:
    """The ClusterRole rules of every kind: a kind's own rules in registry order, then the
    rules several kinds share (same groups and resources) with their verbs merged.

    >>> [(r.resources, r.verbs) for r in rbac_rules()][-2:]
    [(('pods',), ('get', 'list', 'watch', 'delete')), (('controllerrevisions',), ('get', 'list'))]
    """
    by_target: dict[tuple[tuple[str, ...], tuple[str, ...]], list[RbacRule]] = {}
    for entry in REGISTRY:
        for rule in entry.rbac:
            by_target.setdefault((rule.api_groups, rule.resources), []).append(rule)
    own = [rules[0] for rules in by_target.values() if len(rules) == 1]
    shared = [
        RbacRule(
            rules[0].api_groups,
            rules[0].resources,
            tuple(v for v in _VERBS if any(v in r.verbs for r in rules))
            + tuple(sorted({v for r in rules for v in r.verbs} - set(_VERBS))),
            " ".join(dict.fromkeys(r.why for r in rules)),
        )
        for rules in by_target.values()
        if len(rules) > 1
    ]
    return (*own, *shared)
