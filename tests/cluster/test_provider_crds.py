"""The traffic-provider and workload CRDs are served and really validate what they get."""

from __future__ import annotations

import pytest

from tests.support.cluster import Cluster

pytestmark = pytest.mark.cluster

HTTPROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
spec:
  parentRefs:
    - name: gateway
  rules:
    - matches:
        - path: {{type: PathPrefix, value: {path}}}
      backendRefs:
        - {{name: web-stable, port: 80, weight: 80}}
        - {{name: web-canary, port: 80, weight: 20}}
"""

VIRTUALSERVICE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web]
  http:
    - timeout: {timeout}
      route:
        - destination: {{host: web, subset: stable}}
          weight: 80
        - destination: {{host: web, subset: canary}}
          weight: 20
"""

CLONESET = """
apiVersion: apps.kruise.io/v1alpha1
kind: CloneSet
metadata:
  name: web
spec:
  replicas: 4
{selector}
  updateStrategy:
    partition: 2
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - {{name: web, image: registry.invalid/web:v1}}
"""
CLONESET_SELECTOR = "  selector:\n    matchLabels: {app: web}"

CASES = {
    # kind: (valid manifest, invalid manifest, text of the server's validation error)
    "HTTPRoute": (
        HTTPROUTE.format(path="/api"),
        HTTPROUTE.format(path="api"),
        "value must be an absolute path and start with '/' when type one of "
        "['Exact', 'PathPrefix']",
    ),
    "VirtualService": (
        VIRTUALSERVICE.format(timeout="5s"),
        VIRTUALSERVICE.format(timeout="0s"),
        "must be a valid duration greater than 1ms",
    ),
    "CloneSet": (
        CLONESET.format(selector=CLONESET_SELECTOR),
        CLONESET.format(selector=""),
        # kruise-manager's mutating webhook runs first and sends the missing selector back as
        # null, so the schema's complaint is about the type (not "Required value").
        "spec.selector in body must be of type object",
    ),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_a_valid_object_is_accepted_and_an_invalid_one_is_rejected_with_the_server_error(
    cluster: Cluster, namespace: str, kind: str
) -> None:
    valid, invalid, message = CASES[kind]

    accepted = cluster.kubectl("create", "-n", namespace, "-f", "-", "-o", "name", input=valid)
    assert accepted.stdout.strip().endswith("/web")
    stored = cluster.get(accepted.stdout.strip(), "-n", namespace)
    assert stored["kind"] == kind

    rejected = cluster.kubectl(
        "create", "-n", namespace, "-f", "-", "--dry-run=server", input=invalid, check=False
    )
    assert rejected.returncode != 0, f"the invalid {kind} was accepted:\n{rejected.stdout}"
    assert "is invalid" in rejected.stderr
    assert message in rejected.stderr
