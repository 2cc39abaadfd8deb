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

>>> [k.kind for k in REGISTRY]
['Deployment', 'StatefulSet', 'DaemonSet']
>>> lookup("StatefulSet").handler_id, lookup("StatefulSet").webhook_rule
('hold-statefulsets', {'group': 'apps', 'version': 'v1', 'resource': 'statefulsets'})
>>> default_style("Deployment").value, [m.value for m in lookup("StatefulSet").styles]
('canary', ['batch'])
"""

from __future__ import annotations

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.workloads.daemonset import DAEMONSET
from vela_progressive.core.workloads.deployment import DEPLOYMENT
from vela_progressive.core.workloads.statefulset import STATEFULSET
from vela_progressive.core.workloads.style import RbacRule, Style, WorkloadKind

#: Every kind the controller releases, in the order handlers, rules and messages list them.
REGISTRY: tuple[WorkloadKind, ...] = (DEPLOYMENT, STATEFULSET, DAEMONSET)

_BY_KIND = {k.kind: k for k in REGISTRY}

#: Verbs in the order Kubernetes documentation lists them (merged rules keep this order).
_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


def kinds() -> tuple[str, ...]:
    """The kinds' names: ``SUPPORTED_KINDS``."""
    return tuple(_BY_KIND)


def lookup(kind: str) -> WorkloadKind:
    """The registry entry of ``kind``; :class:`KeyError` for an unsupported kind."""
    return _BY_KIND[kind]


def find(kind: str) -> WorkloadKind | None:
    return _BY_KIND.get(kind)


def default_style(kind: str) -> ReleaseMode:
    """The release mode of ``kind`` when the trait names none (batch for an unknown kind)."""
    entry = _BY_KIND.get(kind)
    return entry.default_style if entry else ReleaseMode.BATCH


def kinds_with(mode: ReleaseMode) -> tuple[str, ...]:
    """The kinds that can be released in ``mode`` (validation and the trait's CUE read it).

    >>> kinds_with(ReleaseMode.CANARY)
    ('Deployment',)
    """
    return tuple(entry.kind for entry in REGISTRY if mode in entry.styles)


def style_for(kind: str, mode: ReleaseMode) -> Style:
    """The compute of (kind, mode); :class:`ValueError` when the kind has no such style."""
    entry = _BY_KIND.get(kind)
    if entry is None:
        raise ValueError(f"unsupported workload kind {kind}")
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
    [(('controllerrevisions',), ('get', 'list')), (('pods',), ('get', 'list', 'delete'))]
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
