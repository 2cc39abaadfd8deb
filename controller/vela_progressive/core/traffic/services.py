"""Canary and stable Services.

During a release the stable Service ``<service>`` is pinned to the stable revision's pods (its
selector gains ``pod-template-hash``/``controller-revision-hash`` = stable revision) and a
``<service>-canary`` Service with the same ports selects the new revision's pods. Routing
providers send the canary share to ``<service>-canary``. At the end the pin is removed (the
stable Service's spec is restored exactly) and ``<service>-canary`` is deleted.

With ``disableGenerateCanaryService`` nothing here changes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vela_progressive.core.rendering import render_object
from vela_progressive.core.traffic.objects import (
    Changes,
    Obj,
    ObjectRef,
    TrafficConfigError,
    TrafficContext,
)
from vela_progressive.core.traffic.original import (
    clean,
    existing_owned,
    is_patched,
    original_of,
    patched,
    require,
)

API_VERSION = "v1"
KIND = "Service"
TEMPLATE = "traffic/service-canary.yaml.j2"
#: Port fields copied to the canary Service (``nodePort`` would collide with the stable one).
_PORT_FIELDS = ("name", "protocol", "appProtocol", "port", "targetPort")


def _ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef(API_VERSION, KIND, namespace, name)


def refs(service: str, ctx: TrafficContext) -> list[ObjectRef]:
    """The stable Service and the canary Service (which may not exist yet)."""
    return [_ref(ctx.namespace, service), _ref(ctx.namespace, ctx.canary_service(service))]


def _stable_selector(stable: Mapping[str, Any], ref: ObjectRef) -> dict[str, str]:
    selector = (original_of(stable).get("spec") or {}).get("selector") or {}
    if not selector:
        raise TrafficConfigError(
            f"{ref} has no selector; traffic routing needs a Service that selects the "
            "workload's pods (trafficRoutings[].service)"
        )
    return dict(selector)


def desired(
    service: str,
    ctx: TrafficContext,
    originals: Mapping[ObjectRef, Obj | None],
    *,
    pin: bool = True,
) -> Changes:
    """Canary Service present, stable Service pinned to the stable revision (when ``pin``).

    Istio subset routing needs the stable Service unpinned (``pin=False``): its subsets can
    only select pods the Service selects.
    """
    if ctx.disable_canary_service:
        return Changes()
    ctx.check_split()
    stable_ref, canary_ref = refs(service, ctx)
    stable = require(originals, stable_ref, "trafficRoutings[].service")
    existing_owned(originals, canary_ref)
    selector = _stable_selector(stable, stable_ref)
    spec = original_of(stable).get("spec") or {}
    ports = [{k: p[k] for k in _PORT_FIELDS if k in p} for p in spec.get("ports") or []]
    canary = render_object(
        TEMPLATE,
        object_name=canary_ref.name,
        namespace=ctx.namespace,
        labels=ctx.owned_labels(),
        headless=spec.get("clusterIP") == "None",
        ports=ports,
        selector={**selector, **ctx.canary_selector},
    )

    def pin_selector(obj: Obj) -> None:
        obj["spec"]["selector"] = {**selector, **ctx.stable_selector}

    stable_now = patched(stable, pin_selector) if pin else original_of(stable)
    return Changes(owned=(clean(canary),), patched=(stable_now,))


def unpinned(
    service: str, ctx: TrafficContext, originals: Mapping[ObjectRef, Obj | None]
) -> Changes:
    """The stable Service back to its original spec (the canary Service stays)."""
    stable = originals.get(_ref(ctx.namespace, service))
    if stable is None or not is_patched(stable):
        return Changes()
    return Changes(patched=(original_of(stable),))


def restore(
    service: str, ctx: TrafficContext, originals: Mapping[ObjectRef, Obj | None]
) -> Changes:
    """The stable Service's original spec and no canary Service."""
    canary_ref = _ref(ctx.namespace, ctx.canary_service(service))
    gone = Changes(delete=(canary_ref,)) if existing_owned(originals, canary_ref) else Changes()
    return unpinned(service, ctx, originals) + gone
