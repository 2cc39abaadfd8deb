"""What each traffic provider can do: the machine-readable capability table.

The validator rejects a step that asks a provider for something it cannot serve (for example a
query-parameter match on an NGINX Ingress) instead of silently dropping it.

A provider is named by :func:`provider_id`: ``ingress/<class>`` for Ingress routings,
``gateway`` for a Gateway API HTTPRoute and ``istio`` for an Istio VirtualService.

The built-in providers are listed in :data:`PROVIDER_FEATURES`. A platform team may add an
Ingress class by dropping a template ``templates/traffic/ingress/<class>.yaml.j2`` whose first
line declares what it supports::

    {# features: weight header cookie #}

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

import re
from functools import cache
from pathlib import Path

from vela_progressive.core.model import TrafficRouting
from vela_progressive.core.rendering import templates_dir

#: Every capability name a step can need. ``Match.features()`` returns a subset of these.
FEATURES: tuple[str, ...] = ("weight", "header", "cookie", "query", "path", "mirror")

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
            "use one of ingress, gateway, istio, aliyun-alb"
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


def known_ingress_classes(templates_root: str | None = None) -> tuple[str, ...]:
    """Ingress classes that have a canary template, sorted."""
    root = Path(templates_root) if templates_root else templates_dir()
    folder = root / INGRESS_TEMPLATE_DIR
    if not folder.is_dir():
        return ()
    return tuple(sorted(p.name.removesuffix(".yaml.j2") for p in folder.glob("*.yaml.j2")))
