"""Ingress provider: a canary copy ``<ingress>-canary`` of the stable Ingress.

The copy keeps only the rules and paths whose backend is the stable Service, pointed at the
canary Service, and gets the canary annotations of its class from
``templates/traffic/ingress/<class>.yaml.j2``. The stable Ingress is only read. The copy
exists while some traffic goes to the new version and is deleted otherwise.

Every class gets the same inputs (one header condition, one cookie condition, a weight), so a
step's matches must fit them: each match entry holds exactly one condition, at most one entry
is a header and at most one a cookie (entries are ORed, as NGINX ORs header, cookie and weight).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from vela_progressive.core.capabilities import (
    ingress_template,
    provider_id,
    provider_of,
    route_refusals,
)
from vela_progressive.core.model import TrafficRouting
from vela_progressive.core.rendering import render_object
from vela_progressive.core.traffic.objects import (
    Changes,
    Obj,
    ObjectRef,
    RouteState,
    TrafficConfigError,
    TrafficContext,
)
from vela_progressive.core.traffic.original import clean, existing_owned, require
from vela_progressive.core.traffic.routing import RoutingProvider

API_VERSION = "networking.k8s.io/v1"
KIND = "Ingress"
#: Legacy class annotation, copied to the canary Ingress when the stable one uses it.
CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def _ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef(API_VERSION, KIND, namespace, name)


def canary_name(routing: TrafficRouting) -> str:
    return f"{routing.object_name}-canary"


class IngressProvider(RoutingProvider):
    """Canary Ingress per class template (NGINX, ALB, or a platform-provided class)."""

    def refs(self, routing: TrafficRouting, ctx: TrafficContext) -> list[ObjectRef]:
        return [
            _ref(ctx.namespace, routing.object_name),
            _ref(ctx.namespace, canary_name(routing)),
        ]

    def check(self, routing: TrafficRouting, route: RouteState) -> tuple[str, ...]:
        """Why ``route`` cannot be expressed by this routing's Ingress class (empty: it can).

        The rules and their wording are the capability table's
        (:func:`vela_progressive.core.capabilities.route_refusals`), as in the validator.
        """
        provider = provider_of(routing)
        return tuple(
            r.says(provider.id) for r in route_refusals(provider, route.weight, route.matches)
        )

    def split(
        self,
        routing: TrafficRouting,
        ctx: TrafficContext,
        originals: Mapping[ObjectRef, Obj | None],
        route: RouteState,
    ) -> Changes:
        if ctx.disable_canary_service:
            raise TrafficConfigError(
                f"{provider_id(routing)} routes to the canary Service; "
                "remove disableGenerateCanaryService"
            )
        stable_ref, canary_ref = self.refs(routing, ctx)
        stable = require(originals, stable_ref, "trafficRoutings[].ingressName")
        existing_owned(originals, canary_ref)
        headers = [h for m in route.matches for h in m.headers]
        cookies = [c for m in route.matches for c in m.cookies]
        annotations = (stable.get("metadata") or {}).get("annotations") or {}
        canary = render_object(
            ingress_template(routing.ingress_class),
            object_name=canary_ref.name,
            namespace=ctx.namespace,
            labels=ctx.owned_labels(),
            annotations={k: v for k, v in annotations.items() if k == CLASS_ANNOTATION},
            spec=_canary_spec(stable, routing.service, ctx.canary_service(routing.service)),
            weight=route.weight,
            header=(
                {"name": headers[0].name, "value": headers[0].value, "type": headers[0].type}
                if headers
                else None
            ),
            cookie={"name": cookies[0].name} if cookies else None,
        )
        if ObjectRef.of(canary) != canary_ref:
            raise TrafficConfigError(
                f"templates/{ingress_template(routing.ingress_class)} must render "
                f"{canary_ref}, rendered {ObjectRef.of(canary)}"
            )
        return Changes(owned=(clean(canary),))

    def restore(
        self,
        routing: TrafficRouting,
        ctx: TrafficContext,
        originals: Mapping[ObjectRef, Obj | None],
    ) -> Changes:
        canary_ref = _ref(ctx.namespace, canary_name(routing))
        if existing_owned(originals, canary_ref) is None:
            return Changes()
        return Changes(delete=(canary_ref,))


def _canary_spec(stable: Mapping[str, Any], service: str, canary_service: str) -> Obj:
    """``spec`` of the canary Ingress: stable rules/paths with the stable backend, rewritten."""
    spec = stable.get("spec") or {}
    rules: list[Obj] = []
    for rule in spec.get("rules") or []:
        paths = [
            _rewrite(p, canary_service)
            for p in ((rule.get("http") or {}).get("paths") or [])
            if ((p.get("backend") or {}).get("service") or {}).get("name") == service
        ]
        if paths:
            rules.append({**copy.deepcopy(rule), "http": {"paths": paths}})
    name = f"{stable['metadata'].get('namespace', '')}/{stable['metadata']['name']}"
    if not rules:
        raise TrafficConfigError(
            f"Ingress {name} has no rule whose backend is Service {service!r}; "
            "set trafficRoutings[].service to the Service the Ingress routes to"
        )
    out: Obj = {"rules": rules}
    for key in ("ingressClassName", "tls"):
        if key in spec:
            out[key] = copy.deepcopy(spec[key])
    return out


def _rewrite(path: Mapping[str, Any], canary_service: str) -> Obj:
    new = copy.deepcopy(dict(path))
    new["backend"]["service"]["name"] = canary_service
    return new
