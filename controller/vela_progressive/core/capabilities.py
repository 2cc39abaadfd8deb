"""Traffic routing types and providers: what each can do, and every rule about it, written once.

This module is the single source of

* the routing types a user writes (:data:`ROUTING_TYPES`) and how a routing entry resolves
  (:func:`resolve_routing`: the defaults the trait's CUE, the CR's ``spec.strategy`` and
  :meth:`TrafficRouting.from_dict` all use);
* the capability table (:data:`PROVIDER_FEATURES`, plus Ingress classes declared by their
  templates: :func:`provider_table`);
* the rules a step must follow for a provider, with their wording (:data:`RULES`,
  :func:`route_refusals`).

The validator (:mod:`vela_progressive.core.validation`), the Ingress provider
(:mod:`vela_progressive.core.traffic.ingress`), the generated CUE of the trait and the generated
docs (:mod:`vela_progressive.core.codegen`) read them from here, so a request a provider cannot
serve is refused with the same words everywhere, never silently dropped.

A provider is named by :func:`provider_id`: ``ingress/<class>`` for Ingress routings,
``gateway`` for a Gateway API HTTPRoute and ``istio`` for an Istio VirtualService.

A platform team may add an Ingress class by dropping a template
``templates/traffic/ingress/<class>.yaml.j2`` whose first lines declare what it supports and
the limits it has::

    {# features: weight header cookie #}
    {# limits: exact-header-only #}

An Ingress class with neither a built-in entry nor a template is an error
(:class:`UnknownProviderError`, a ``ValueError`` whose message names the field and the fix).

>>> from vela_progressive.core.model import TrafficRouting
>>> provider_id(TrafficRouting(type="ingress", service="web", ingress_name="web"))
'ingress/nginx'
>>> sorted(capabilities(TrafficRouting(type="gateway", service="web",
...                                    gateway_httproute_name="web")))
['header', 'mirror', 'path', 'query', 'weight']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from vela_progressive.core import trait_schema
from vela_progressive.core.model import Match, TrafficRouting
from vela_progressive.core.rendering import templates_dir

# ---------------------------------------------------------------------------------------------
# Routing types

#: Every capability name a step can need. ``Match.features()`` returns a subset of these.
FEATURES: tuple[str, ...] = ("weight", "header", "cookie", "query", "path", "mirror")

#: Match keys of a step (trait property names), in schema order, and the capability each needs.
MATCH_FEATURES: tuple[tuple[str, str], ...] = (
    ("headers", "header"),
    ("cookies", "cookie"),
    ("queryParams", "query"),
    ("path", "path"),
)


@dataclass(frozen=True)
class RoutingType:
    """One value of a routing's ``type`` and what it resolves to."""

    #: What the user writes in ``type``.
    name: str
    #: The resolved ``type`` in the CR's strategy: ``ingress``, ``gateway`` or ``istio``.
    provider: str
    #: Kind of the object the routing changes.
    object_kind: str
    #: The routing field naming that object (default: the component name).
    object_field: str
    #: A fixed Ingress class (``aliyun-alb`` is an Ingress of class ``aliyun-alb``).
    ingress_class: str | None = None
    #: Optional fields only this type uses (copied when set).
    extra_fields: tuple[str, ...] = ()

    @property
    def own_fields(self) -> tuple[str, ...]:
        """Fields that only make sense for this type."""
        return (self.object_field, *self.extra_fields)


#: The routing types, keyed by what the user writes (the schema's ``type`` enum, pinned by a
#: test).
ROUTING_TYPES: dict[str, RoutingType] = {
    t.name: t
    for t in (
        RoutingType("ingress", "ingress", "Ingress", "ingressName"),
        RoutingType("gateway", "gateway", "HTTPRoute", "gatewayHTTPRouteName"),
        RoutingType(
            "istio",
            "istio",
            "VirtualService",
            "virtualServiceName",
            extra_fields=("destinationRuleName",),
        ),
        RoutingType("aliyun-alb", "ingress", "Ingress", "ingressName", ingress_class="aliyun-alb"),
    )
}


def type_only_fields() -> dict[str, tuple[str, ...]]:
    """Routing fields that belong to some types only: field -> the types that use it.

    >>> type_only_fields()["ingressName"]
    ('ingress', 'aliyun-alb')
    """
    out: dict[str, tuple[str, ...]] = {}
    for rtype in ROUTING_TYPES.values():
        for name in rtype.own_fields:
            out[name] = (*out.get(name, ()), rtype.name)
    return out


def routing_defaults() -> dict[str, Any]:
    """The schema's defaults of a routing entry (``type``, ``gracePeriodSeconds``, ...)."""
    return dict(_routing_defaults())


@cache
def _routing_defaults() -> tuple[tuple[str, Any], ...]:
    return tuple(trait_schema.defaults_of(trait_schema.definition("trafficRouting")).items())


def resolve_routing(raw: Mapping[str, Any], component: str) -> dict[str, Any]:
    """A routing entry with every default applied, as the CR's ``spec.strategy`` carries it.

    The trait's CUE renders the same (it is generated from :data:`ROUTING_TYPES`): the schema's
    defaults, the stable Service and the routed object named after the component, an
    ``aliyun-alb`` routing as an Ingress of class ``aliyun-alb``, and only the fields of the
    routing's type kept. Resolving a resolved entry changes nothing.

    >>> resolve_routing({"type": "aliyun-alb", "gatewayHTTPRouteName": "x"}, "web")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'type': 'ingress', 'service': 'web', 'gracePeriodSeconds': 5, 'ingressClass': 'aliyun-alb',
     'ingressName': 'web'}
    """
    full = {**dict(_routing_defaults()), **raw}
    rtype = ROUTING_TYPES.get(full["type"])
    if rtype is None:
        raise UnknownProviderError(
            f"trafficRoutings[].type: unknown routing type {full['type']!r}; "
            f"use one of {', '.join(ROUTING_TYPES)}"
        )
    out: dict[str, Any] = {
        "type": rtype.provider,
        "service": full.get("service", component),
        "gracePeriodSeconds": full["gracePeriodSeconds"],
    }
    if rtype.provider == "ingress":
        out["ingressClass"] = rtype.ingress_class or full["ingressClass"]
    out[rtype.object_field] = full.get(rtype.object_field, component)
    for name in rtype.extra_fields:
        if name in full:
            out[name] = full[name]
    return out


# ---------------------------------------------------------------------------------------------
# Providers and their capabilities

#: Capabilities of the built-in providers, keyed by provider id.
PROVIDER_FEATURES: dict[str, frozenset[str]] = {
    # canary Ingress annotations: canary-weight, canary-by-header(-value|-pattern), canary-by-cookie
    "ingress/nginx": frozenset({"weight", "header", "cookie"}),
    # alb.ingress.kubernetes.io/canary-weight, canary-by-header(-value), canary-by-cookie
    "ingress/aliyun-alb": frozenset({"weight", "header", "cookie"}),
    # HTTPRoute: backendRefs weights, matches on headers, queryParams and path, RequestMirror.
    # No cookie match in the API.
    "gateway": frozenset({"weight", "header", "query", "path", "mirror"}),
    # VirtualService: HTTPMatchRequest headers (a cookie is a regex on the Cookie header),
    # queryParams, uri, and mirror.
    "istio": frozenset({"weight", "header", "cookie", "query", "path", "mirror"}),
}

#: Directory (relative to ``templates/``) holding one template per Ingress class.
INGRESS_TEMPLATE_DIR = "traffic/ingress"

#: Limits an Ingress class template may declare in a ``{# limits: ... #}`` line.
LIMITS: tuple[str, ...] = ("exact-header-only", "weight-or-matches")

_HEADER_LINE = re.compile(r"\{#-?\s*(?P<key>[a-z-]+):(?P<words>[^#]*?)-?#\}")
_CLASS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


class UnknownProviderError(ValueError):
    """A routing names a provider (Ingress class) this installation has no template for."""


def provider_id(routing: TrafficRouting) -> str:
    """``ingress/<class>``, ``gateway`` or ``istio``."""
    if routing.type == "ingress":
        return f"ingress/{routing.ingress_class}"
    return routing.type


def ingress_template(ingress_class: str) -> str:
    """Template name (relative to ``templates/``) of the canary Ingress for a class."""
    return f"{INGRESS_TEMPLATE_DIR}/{ingress_class}.yaml.j2"


def capabilities(routing: TrafficRouting, templates_root: str | None = None) -> frozenset[str]:
    """The features the routing's provider supports.

    Raises :class:`UnknownProviderError` (message names the field and the fix) for an Ingress
    class without a template, or a template without a ``features`` line.
    """
    pid = provider_id(routing)
    if pid in PROVIDER_FEATURES:
        return PROVIDER_FEATURES[pid]
    if routing.type != "ingress":
        raise UnknownProviderError(
            f"trafficRoutings[].type: unknown provider {routing.type!r}; "
            f"use one of {', '.join(ROUTING_TYPES)}"
        )
    return template_features(routing.ingress_class, templates_root)


@cache
def ingress_template_header(
    ingress_class: str, templates_root: str | None = None
) -> dict[str, frozenset[str]]:
    """The ``{# key: words #}`` comment lines at the top of an Ingress class template.

    ``features`` (required) lists capabilities; ``limits`` (optional) lists restrictions the
    Ingress provider enforces (see ``docs/providers/ingress.md``).
    """
    root = Path(templates_root) if templates_root else templates_dir()
    path = root / ingress_template(ingress_class)
    if not _CLASS_NAME.fullmatch(ingress_class) or not path.is_file():
        known = ", ".join(known_ingress_classes(templates_root)) or "none"
        raise UnknownProviderError(
            f"trafficRoutings[].ingressClass: no canary Ingress template for class "
            f"{ingress_class!r} (known: {known}); a platform team adds one as "
            f"templates/{ingress_template('<class>')}"
        )
    header: dict[str, frozenset[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        found = _HEADER_LINE.fullmatch(line.strip())
        if found is None:
            break
        header[found.group("key")] = frozenset(found.group("words").replace(",", " ").split())
    return header


def template_features(ingress_class: str, templates_root: str | None = None) -> frozenset[str]:
    """Capabilities declared by the ``{# features: ... #}`` line of an Ingress class template."""
    where = f"templates/{ingress_template(ingress_class)}"
    names = ingress_template_header(ingress_class, templates_root).get("features")
    if names is None:
        raise UnknownProviderError(
            f"{where}: the template must start with a line declaring the class's capabilities, "
            "e.g. {# features: weight header cookie #}"
        )
    unknown = sorted(names - set(FEATURES))
    if unknown:
        raise UnknownProviderError(
            f"{where}: unknown features {unknown}; known features are {', '.join(FEATURES)}"
        )
    return names


def class_limits(ingress_class: str, templates_root: str | None = None) -> frozenset[str]:
    """Limits declared by the ``{# limits: ... #}`` line of an Ingress class template."""
    limits = ingress_template_header(ingress_class, templates_root).get("limits", frozenset())
    unknown = sorted(limits - set(LIMITS))
    if unknown:
        raise UnknownProviderError(
            f"templates/{ingress_template(ingress_class)}: unknown limits {unknown}; "
            f"known limits are {', '.join(LIMITS)}"
        )
    return limits


def known_ingress_classes(templates_root: str | None = None) -> tuple[str, ...]:
    """Ingress classes that have a canary template, sorted."""
    root = Path(templates_root) if templates_root else templates_dir()
    folder = root / INGRESS_TEMPLATE_DIR
    if not folder.is_dir():
        return ()
    return tuple(sorted(p.name.removesuffix(".yaml.j2") for p in folder.glob("*.yaml.j2")))


@dataclass(frozen=True)
class Provider:
    """One row of the capability table."""

    id: str
    features: frozenset[str]
    limits: frozenset[str] = frozenset()

    @property
    def annotation_ingress(self) -> bool:
        """A canary Ingress driven by annotations (one header, one cookie, one weight)."""
        return self.id.startswith("ingress/")


def provider_table(templates_root: str | None = None) -> dict[str, Provider]:
    """Every provider this installation serves: the built-in table and each Ingress class
    template, sorted by id. What the generated CUE and the docs show."""
    table: dict[str, Provider] = {}
    classes = {pid.split("/", 1)[1] for pid in PROVIDER_FEATURES if "/" in pid}
    classes |= set(known_ingress_classes(templates_root))
    for pid, features in PROVIDER_FEATURES.items():
        table[pid] = Provider(pid, features)
    for name in sorted(classes):
        pid = f"ingress/{name}"
        has_template = name in known_ingress_classes(templates_root)
        features = table[pid].features if pid in table else template_features(name, templates_root)
        limits = class_limits(name, templates_root) if has_template else frozenset()
        table[pid] = Provider(pid, features, limits)
    return dict(sorted(table.items()))


def supporting_types(feature: str) -> str:
    """The routing types whose built-in provider serves ``feature``, for a fix.

    >>> supporting_types("query"), supporting_types("cookie")
    ('gateway or istio', 'ingress, aliyun-alb or istio')
    """
    default_class = routing_defaults()["ingressClass"]
    type_of = {
        (
            f"ingress/{t.ingress_class or default_class}" if t.provider == "ingress" else t.provider
        ): (t.name)
        for t in ROUTING_TYPES.values()
    }
    found = [type_of[pid] for pid, feats in PROVIDER_FEATURES.items() if feature in feats]
    return either(found)


def either(words: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} or {words[-1]}"


# ---------------------------------------------------------------------------------------------
# Rules a step must follow for a provider


@dataclass(frozen=True)
class Rule:
    """The wording of a rule that the trait's generated CUE checks too.

    ``message`` and ``fix`` are ``str.format`` templates; Python fills them (:meth:`text`), the
    CUE generator (:mod:`vela_progressive.core.codegen.cue`) turns the placeholders into CUE
    interpolations, so Python and CUE say exactly the same. A provider rule's ``message``
    follows the name of the routing.
    """

    message: str
    fix: str

    def text(self, **values: object) -> tuple[str, str]:
        """``(message, fix)`` with the placeholders filled."""
        return self.message.format(**values), self.fix.format(**values)


#: Every rule about what a provider can serve, keyed by id.
RULES: dict[str, Rule] = {
    "feature": Rule("cannot route by {feature}", "use type {types}, or drop {field}"),
    "one-header": Rule(
        "routes by one header per step, got {count}",
        "keep one header condition (a canary Ingress has one canary-by-header annotation), or "
        "use type gateway or istio",
    ),
    "one-cookie": Rule(
        "routes by one cookie per step, got {count}",
        "keep one cookie condition (a canary Ingress has one canary-by-cookie annotation), or "
        "use type istio",
    ),
    "one-condition": Rule(
        "cannot AND the conditions of one match entry (a canary Ingress ORs header, cookie and "
        "weight)",
        "put each condition in its own match entry, or use type gateway or istio",
    ),
    "cookie-always": Rule(
        'sends a request to the new version when the cookie\'s value is "always", not {value}',
        "set value: always (or leave it out), or use type istio",
    ),
    "exact-header-only": Rule(
        "matches header values exactly", "use type Exact, or use type gateway or istio"
    ),
    "weight-or-matches": Rule(
        "cannot combine a weight with header/cookie matches in one step",
        "use separate steps, or use type gateway or istio",
    ),
}


@dataclass(frozen=True)
class Refusal:
    """A step asks a provider for something it cannot serve.

    ``field`` is relative to the step (``matches[0].queryParams``; empty: the step itself);
    ``message`` goes after the routing's name.
    """

    rule: str
    field: str
    message: str
    fix: str

    def says(self, who: str) -> str:
        """One line: ``<who> <message>; <fix>``."""
        return f"{who} {self.message}; {self.fix}"


def _refusal(rule: str, where: str, **values: object) -> Refusal:
    return Refusal(rule, where, *RULES[rule].text(**values))


def _conditions(match: Match) -> int:
    return (
        len(match.headers) + len(match.cookies) + len(match.query_params) + (match.path is not None)
    )


def route_refusals(
    provider: Provider, weight: int | None, matches: Sequence[Match], step: str = ""
) -> Iterator[Refusal]:
    """What ``provider`` refuses in a step with ``weight`` and ``matches``.

    ``step`` prefixes the field named in a fix (e.g. ``canary.steps[0]``).
    """

    def field(rel: str) -> str:
        return f"{step}.{rel}" if step else rel

    if weight and "weight" not in provider.features:
        yield _refusal(
            "feature",
            "weight",
            feature="weight",
            types=supporting_types("weight"),
            field=field("weight"),
        )
    for m, match in enumerate(matches):
        for key, feature in MATCH_FEATURES:
            if feature in match.features() and feature not in provider.features:
                rel = f"matches[{m}].{key}"
                yield _refusal(
                    "feature",
                    rel,
                    feature=feature,
                    types=supporting_types(feature),
                    field=field(rel),
                )
    if not provider.annotation_ingress:
        return
    headers = [(m, h) for m, match in enumerate(matches) for h in range(len(match.headers))]
    cookies = [(m, c) for m, match in enumerate(matches) for c in range(len(match.cookies))]
    if len(headers) > 1:
        m, h = headers[1]
        yield _refusal("one-header", f"matches[{m}].headers[{h}]", count=len(headers))
    if len(cookies) > 1:
        m, c = cookies[1]
        yield _refusal("one-cookie", f"matches[{m}].cookies[{c}]", count=len(cookies))
    for m, match in enumerate(matches):
        if _conditions(match) > 1:
            yield _refusal("one-condition", f"matches[{m}]")
        for c, cookie in enumerate(match.cookies):
            if cookie.value != "always":
                yield _refusal(
                    "cookie-always",
                    f"matches[{m}].cookies[{c}].value",
                    value=json.dumps(cookie.value),
                )
        if "exact-header-only" in provider.limits:
            for h, header in enumerate(match.headers):
                if header.type != "Exact":
                    yield _refusal("exact-header-only", f"matches[{m}].headers[{h}].type")
    if "weight-or-matches" in provider.limits and weight and matches:
        yield _refusal("weight-or-matches", "weight")


def provider_of(routing: TrafficRouting, templates_root: str | None = None) -> Provider:
    """The capability table's row for a routing (:class:`UnknownProviderError` if none)."""
    features = capabilities(routing, templates_root)
    limits: frozenset[str] = frozenset()
    if routing.type == "ingress":
        limits = _ingress_limits(routing.ingress_class, templates_root)
    return Provider(provider_id(routing), features, limits)


@cache
def _ingress_limits(ingress_class: str, templates_root: str | None) -> frozenset[str]:
    if ingress_class not in known_ingress_classes(templates_root):
        return frozenset()  # a built-in class without a template
    return class_limits(ingress_class, templates_root)
