"""What each traffic provider can do: the machine-readable capability table.

The validator rejects a step that asks a provider for something it cannot serve (for example a
query-parameter match on an NGINX Ingress) instead of silently dropping it.

>>> from vela_progressive.core.model import TrafficRouting
>>> provider_id(TrafficRouting(type="ingress", service="web", ingress_name="web"))
'ingress/nginx'
>>> sorted(capabilities(TrafficRouting(type="gateway", service="web",
...                                    gateway_httproute_name="web")))
['header', 'mirror', 'path', 'query', 'weight']
"""

from __future__ import annotations

from vela_progressive.core.model import TrafficRouting

#: Every feature a step can need from a provider.
FEATURES = ("weight", "header", "cookie", "query", "path", "mirror")

#: Features per provider id (see :func:`provider_id`).
PROVIDER_FEATURES: dict[str, frozenset[str]] = {
    # canary-weight, canary-by-header(-value|-pattern), canary-by-cookie annotations.
    "ingress/nginx": frozenset({"weight", "header", "cookie"}),
    "ingress/aliyun-alb": frozenset({"weight", "header", "cookie"}),
    # HTTPRoute: backendRefs weights, matches on headers, queryParams and path, RequestMirror.
    "gateway": frozenset({"weight", "header", "query", "path", "mirror"}),
    # VirtualService: HTTPMatchRequest headers (a cookie is a regex on the Cookie header),
    # queryParams, uri, and mirror.
    "istio": frozenset({"weight", "header", "cookie", "query", "path", "mirror"}),
}

#: An Ingress class nobody described: only the weight is assumed to work.
UNKNOWN_INGRESS_FEATURES = frozenset({"weight"})


def provider_id(routing: TrafficRouting) -> str:
    """The key of ``routing`` in :data:`PROVIDER_FEATURES`, e.g. ``ingress/nginx`` or ``istio``."""
    if routing.type == "ingress":
        return f"ingress/{routing.ingress_class}"
    return routing.type


def capabilities(routing: TrafficRouting) -> frozenset[str]:
    """The features ``routing``'s provider supports."""
    return PROVIDER_FEATURES.get(provider_id(routing), UNKNOWN_INGRESS_FEATURES)
