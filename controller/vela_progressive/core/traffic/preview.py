"""Offline preview of the objects a step creates or patches (``kubectl progressive plan``).

Without a cluster the user's objects are unknown, so each provider runs against a *skeleton*
original built from the routing's names (Service port 80, one rule/route to the Service).
Every object returned carries the annotation :data:`PREVIEW_ANNOTATION` saying whether it would
be created or patched, and that it was computed from a skeleton.
"""

from __future__ import annotations

from vela_progressive.core.model import ANNOTATION_PREFIX, TrafficRouting
from vela_progressive.core.traffic import gateway, ingress, istio, provider_for
from vela_progressive.core.traffic import services as service_provider
from vela_progressive.core.traffic.objects import Obj, ObjectRef, RouteState, TrafficContext
from vela_progressive.core.traffic.original import clean

PREVIEW_ANNOTATION = f"{ANNOTATION_PREFIX}/preview"
_NOTE = (
    "computed offline from skeletons of the routing's objects (Service {svc} on port 80, one "
    "route to it); the controller reads the real ones"
)


def skeletons(routing: TrafficRouting, namespace: str) -> list[Obj]:
    """Minimal stand-ins for the user's objects a routing reads."""
    svc = routing.service

    def meta(name: str) -> Obj:
        return {"name": name, "namespace": namespace}

    port = {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}
    objects: list[Obj] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(svc),
            "spec": {"ports": [port], "selector": {"app.oam.dev/component": svc}},
        }
    ]
    if routing.type == "ingress":
        backend = {"service": {"name": svc, "port": {"number": 80}}}
        objects.append(
            {
                "apiVersion": ingress.API_VERSION,
                "kind": ingress.KIND,
                "metadata": meta(routing.object_name),
                "spec": {
                    "ingressClassName": routing.ingress_class,
                    "rules": [
                        {
                            "http": {
                                "paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]
                            }
                        }
                    ],
                },
            }
        )
    elif routing.type == "gateway":
        objects.append(
            {
                "apiVersion": gateway.API_VERSION,
                "kind": gateway.KIND,
                "metadata": meta(routing.object_name),
                "spec": {
                    "parentRefs": [{"name": "gateway"}],
                    "rules": [
                        {
                            "matches": [{"path": dict(gateway.DEFAULT_PATH)}],
                            "backendRefs": [
                                {
                                    "group": "",
                                    "kind": "Service",
                                    "name": svc,
                                    "port": 80,
                                    "weight": 1,
                                }
                            ],
                        }
                    ],
                },
            }
        )
    elif routing.type == "istio":
        objects.append(
            {
                "apiVersion": istio.API_VERSION,
                "kind": istio.VS_KIND,
                "metadata": meta(routing.object_name),
                "spec": {"hosts": [svc], "http": [{"route": [{"destination": {"host": svc}}]}]},
            }
        )
        if routing.destination_rule_name:
            objects.append(
                {
                    "apiVersion": istio.API_VERSION,
                    "kind": istio.DR_KIND,
                    "metadata": meta(routing.destination_rule_name),
                    "spec": {"host": svc},
                }
            )
    return objects


def preview_step(
    routing: TrafficRouting,
    namespace: str,
    route: RouteState,
    *,
    revision_label: str = "pod-template-hash",
    disable_canary_service: bool = False,
) -> list[Obj]:
    """The objects created or patched at a step with ``route``, sorted by kind and name.

    Raises :class:`~vela_progressive.core.traffic.objects.TrafficConfigError` when the step
    cannot be served by the routing (same messages as the controller).
    """
    ctx = TrafficContext(
        namespace=namespace,
        workload=routing.service,
        stable_selector={revision_label: "stable-revision"},
        canary_selector={revision_label: "canary-revision"},
        disable_canary_service=disable_canary_service,
    )
    originals: dict[ObjectRef, Obj | None] = {
        ObjectRef.of(o): o for o in skeletons(routing, namespace)
    }
    pin = not (routing.type == "istio" and routing.destination_rule_name)
    changes = service_provider.desired(routing.service, ctx, originals, pin=pin)
    changes += provider_for(routing).desired(routing, ctx, originals, route)
    out: list[Obj] = []
    for obj in changes.objects():
        before = originals.get(ObjectRef.of(obj))
        if before is not None and clean(before) == obj:
            continue
        action = "created" if before is None else "patched"
        note = _NOTE.format(svc=routing.service)
        obj["metadata"].setdefault("annotations", {})[PREVIEW_ANNOTATION] = f"{action}; {note}"
        out.append(obj)
    return out
