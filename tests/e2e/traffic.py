"""What the Services and traffic objects of an example look like at a step, on the live cluster."""

from __future__ import annotations

from collections import Counter

from tests.e2e.kit import Obj, Release

SERVICE = ("v1", "Service")
INGRESS = ("networking.k8s.io/v1", "Ingress")
HTTPROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
VIRTUALSERVICE = ("networking.istio.io/v1", "VirtualService")
DESTINATIONRULE = ("networking.istio.io/v1", "DestinationRule")
DEPLOYMENT = ("apps/v1", "Deployment")
STATEFULSET = ("apps/v1", "StatefulSet")

NGINX = "nginx.ingress.kubernetes.io"


def ref(kind: tuple[str, str], name: str) -> tuple[str, str, str]:
    return (*kind, name)


async def must_get(rel: Release, kind: tuple[str, str], name: str) -> Obj:
    obj = await rel.get(*kind, name)
    assert obj is not None, f"{kind[1]} {rel.ns}/{name} does not exist"
    return obj


async def selected_images(rel: Release, selector: dict[str, str]) -> dict[str, int]:
    """Images of the live pods a label selector picks (what a Service or a subset routes to)."""
    text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods = await rel.kube.list("v1", "Pod", rel.ns, label_selector=text)
    return dict(
        Counter(
            p["spec"]["containers"][0]["image"]
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
        )
    )


async def assert_services_split(
    rel: Release, service: str, original: Obj, stable: dict[str, int], canary: dict[str, int]
) -> None:
    """``service`` is pinned to the old pods and ``<service>-canary`` selects exactly the new
    ones: the split every weight and match relies on."""
    before: dict[str, str] = original["spec"]["selector"]
    pinned: dict[str, str] = (await must_get(rel, SERVICE, service))["spec"]["selector"]
    assert before.items() <= pinned.items(), f"{service} lost its selector: {pinned}"
    assert len(pinned) == len(before) + 1, f"{service} is not pinned to a revision: {pinned}"
    assert await selected_images(rel, pinned) == stable
    to_canary: dict[str, str] = (await must_get(rel, SERVICE, f"{service}-canary"))["spec"][
        "selector"
    ]
    assert before.items() <= to_canary.items(), to_canary
    assert await selected_images(rel, to_canary) == canary


def nginx_canary(weight: int, header: tuple[str, str] | None = None) -> dict[str, str]:
    """The annotations of an NGINX canary Ingress at a step."""
    out = {f"{NGINX}/canary": "true", f"{NGINX}/canary-weight": str(weight)}
    if header:
        out[f"{NGINX}/canary-by-header"] = header[0]
        out[f"{NGINX}/canary-by-header-value"] = header[1]
    return out


async def assert_canary_ingress(
    rel: Release, ingress: Obj, service: str, annotations: dict[str, str]
) -> None:
    """``<ingress>-canary`` carries exactly ``annotations`` and the user's rules, pointed at
    ``<service>-canary``."""
    name = ingress["metadata"]["name"]
    canary = await must_get(rel, INGRESS, f"{name}-canary")
    assert canary["metadata"].get("annotations") == annotations
    expected_rules = [
        {
            **rule,
            "http": {
                "paths": [
                    {
                        **p,
                        "backend": {
                            "service": {**p["backend"]["service"], "name": f"{service}-canary"}
                        },
                    }
                    for p in rule["http"]["paths"]
                ]
            },
        }
        for rule in ingress["spec"]["rules"]
    ]
    assert canary["spec"]["rules"] == expected_rules
    assert canary["spec"].get("ingressClassName") == ingress["spec"].get("ingressClassName")


def backend(name: str, port: int, weight: int) -> Obj:
    """An HTTPRoute backendRef to a Service as the API server stores it."""
    return {"group": "", "kind": "Service", "name": name, "port": port, "weight": weight}


def istio_route(host: str, port: int, subset: str | None, weight: int) -> Obj:
    destination: Obj = {"host": host, "port": {"number": port}}
    if subset:
        destination["subset"] = subset
    return {"destination": destination, "weight": weight}
