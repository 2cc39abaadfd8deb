"""The test world's metrics: a real Prometheus scraping the traffic simulator (no mocks).

The contract checked here is the one docs/development.md ("Metrics in the test world") states:
metric names and labels of each data plane, traffic split by the routing objects, and the
behaviour chosen by the image tag (`-bad` 30% errors, `-flaky` 3%, else 1%; `-slow` p99 2 s,
else 80 ms; `-quiet` no requests). The simulator sends 50 requests/s per routing object or
Service (VP_SIM_RPS), so the tolerances below are a few requests wide.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster

pytestmark = pytest.mark.cluster

IMAGE = "registry.invalid/web"


def _prometheus(cluster: Cluster) -> str:
    if not cluster.prometheus_url:
        pytest.fail(
            "this cluster has no Prometheus (state.json has no prometheus_url and "
            "VP_PROMETHEUS_URL is unset): it was started before the test world had one; "
            'restart it: make cluster-down && eval "$(make -s cluster-up)"',
            pytrace=False,
        )
    return cluster.prometheus_url


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """An instant query; the result vector."""
    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(full, timeout=10) as response:
        reply = json.load(response)
    assert reply["status"] == "success", reply
    result: list[dict[str, Any]] = reply["data"]["result"]
    return result


def value(url: str, promql: str) -> float | None:
    """The single value of a query (None when it returns no series)."""
    result = query(url, promql)
    if not result:
        return None
    assert len(result) == 1, f"{promql} returned several series: {result}"
    return float(result[0]["value"][1])


def _deployment(name: str, replicas: int, tag: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "web", "image": f"{IMAGE}:{tag}"}],
                    "terminationGracePeriodSeconds": 0,
                },
            },
        },
    }


def _service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def _ingress(name: str, service: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    path = {
        "path": "/",
        "pathType": "Prefix",
        "backend": {"service": {"name": service, "port": {"number": 80}}},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": "web.example.com", "http": {"paths": [path]}}],
        },
    }


def _apply(cluster: Cluster, namespace: str, *objects: dict[str, Any]) -> None:
    cluster.apply_yaml(yaml.safe_dump_all(objects), namespace=namespace)


def _wait_ready(cluster: Cluster, namespace: str, *deployments: str) -> None:
    for name in deployments:
        cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=90s")


def _ratio(url: str, part: str, whole: str) -> float:
    numerator, denominator = value(url, part), value(url, whole)
    assert denominator, f"no traffic: {whole} returned {denominator}"
    return (numerator or 0.0) / denominator


def test_prometheus_is_up_and_scrapes_the_simulator(cluster: Cluster) -> None:
    url = _prometheus(cluster)
    cluster.wait_for(
        lambda: value(url, 'up{job="simulator"}') == 1.0, 30, "up{job='simulator'} == 1"
    )
    targets = json.load(urllib.request.urlopen(f"{url}/api/v1/targets", timeout=10))
    (simulator,) = [
        t for t in targets["data"]["activeTargets"] if t["labels"]["job"] == "simulator"
    ]
    assert simulator["health"] == "up", simulator
    assert simulator["scrapeInterval"] == "1s"


def test_nginx_ingress_weight_splits_requests_and_pods_get_the_app_metric(
    cluster: Cluster, namespace: str
) -> None:
    url = _prometheus(cluster)
    ns = namespace
    _apply(cluster, ns, _deployment("web", 4, "v1"), _service("web"))
    _wait_ready(cluster, ns, "web")
    _apply(cluster, ns, _ingress("web", "web"))
    started = time.monotonic()
    cluster.wait_for(
        lambda: value(url, f'sum(nginx_ingress_controller_requests{{namespace="{ns}"}})'),
        15,
        "nginx_ingress_controller_requests of the Ingress",
    )
    cluster.wait_for(
        lambda: value(url, f'count(http_requests_total{{namespace="{ns}",code="200"}})') == 4,
        15,
        "http_requests_total of the 4 pods",
    )
    assert time.monotonic() - started < 15
    (series,) = query(url, f'nginx_ingress_controller_requests{{namespace="{ns}",status="200"}}')
    assert series["metric"] | {"__name__": "", "instance": "", "job": ""} == {
        "__name__": "",
        "instance": "",
        "job": "",
        "namespace": ns,
        "ingress": "web",
        "service": "web",
        "status": "200",  # canary="" is no label at all in Prometheus
        "method": "GET",
        "path": "/",
        "host": "web.example.com",
        "controller_class": "k8s.io/ingress-nginx",
        "controller_namespace": "ingress-nginx",
        "controller_pod": "ingress-nginx-controller-sim",
    }

    canary_annotations = {
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "20",
    }
    _apply(cluster, ns, _deployment("web-canary", 1, "v2"), _service("web-canary"))
    _wait_ready(cluster, ns, "web-canary")
    _apply(cluster, ns, _ingress("web-canary", "web-canary", canary_annotations))
    upstream = f"{ns}-web-canary-80"  # ingress-nginx's upstream name: <namespace>-<service>-<port>
    cluster.wait_for(
        lambda: value(url, f'sum(nginx_ingress_controller_requests{{canary="{upstream}"}})'),
        15,
        "requests to the canary",
    )
    time.sleep(11)  # a full 10s window of the new split
    selector = f'namespace="{ns}",ingress="web"'
    share = _ratio(
        url,
        f'sum(increase(nginx_ingress_controller_requests{{{selector},canary!=""}}[10s]))',
        f"sum(increase(nginx_ingress_controller_requests{{{selector}}}[10s]))",
    )
    assert share == pytest.approx(0.20, abs=0.04)
    # The canary's requests reached the canary pod: the app metric agrees.
    pod_share = _ratio(
        url,
        f'sum(increase(http_requests_total{{namespace="{ns}",pod=~"web-canary-.*"}}[10s]))',
        f'sum(increase(http_requests_total{{namespace="{ns}"}}[10s]))',
    )
    assert pod_share == pytest.approx(0.20, abs=0.04)
    # ingress-nginx labels canary requests with the main Ingress and Service, canary=upstream.
    labels = {
        (s["metric"]["service"], s["metric"].get("canary", ""))
        for s in query(url, f'nginx_ingress_controller_requests{{namespace="{ns}"}}')
    }
    assert labels == {("web", ""), ("web", upstream)}


def test_image_tag_chooses_errors_latency_and_silence(cluster: Cluster, namespace: str) -> None:
    url = _prometheus(cluster)
    ns = namespace
    versions = {"good": "v1", "bad": "v2-bad", "flaky": "v2-flaky", "slow": "v2-slow"}
    objects = [
        o for name, tag in versions.items() for o in (_deployment(name, 2, tag), _service(name))
    ]
    _apply(cluster, ns, *objects, _deployment("quiet", 2, "v2-quiet"), _service("quiet"))
    _wait_ready(cluster, ns, *versions, "quiet")

    def all_errors_seen() -> bool:  # the 500 series of every pod exist (good: 1 per 4s)
        count = value(url, f'count(http_requests_total{{namespace="{ns}",code="500"}})')
        return count == 8

    cluster.wait_for(all_errors_seen, 30, "error series of the 8 pods that get traffic")
    time.sleep(22)  # every series existed before the 20s window starts

    def error_ratio(name: str) -> float:
        pods = f'namespace="{ns}",pod=~"{name}-.*"'
        return _ratio(
            url,
            f'sum(rate(http_requests_total{{{pods},code="500"}}[20s]))',
            f"sum(rate(http_requests_total{{{pods}}}[20s]))",
        )

    def quantile(q: float, name: str) -> float | None:
        buckets = f'http_request_duration_seconds_bucket{{namespace="{ns}",pod=~"{name}-.*"}}'
        return value(url, f"histogram_quantile({q}, sum by (le) (rate({buckets}[20s])))")

    assert error_ratio("bad") == pytest.approx(0.30, abs=0.02)
    assert error_ratio("flaky") == pytest.approx(0.03, abs=0.006)
    assert error_ratio("good") == pytest.approx(0.01, abs=0.004)
    assert error_ratio("slow") == pytest.approx(0.01, abs=0.004)
    assert quantile(0.99, "slow") == pytest.approx(2.0, abs=0.2)
    assert quantile(0.50, "slow") == pytest.approx(0.75, abs=0.05)
    assert quantile(0.99, "good") == pytest.approx(0.08, abs=0.015)  # 1% of 1000: ~10 requests
    assert quantile(0.50, "good") == pytest.approx(0.02, abs=0.003)

    # -quiet pods are Ready endpoints of their Service, yet nothing reaches them: no data.
    slices = cluster.get("endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=quiet")
    ready = [e for s in slices["items"] for e in s.get("endpoints") or []]
    assert len(ready) == 2
    assert all(e["conditions"]["ready"] for e in ready)
    assert query(url, f'http_requests_total{{namespace="{ns}",pod=~"quiet-.*"}}') == []
    assert quantile(0.99, "quiet") is None


def test_istio_virtualservice_weights(cluster: Cluster, namespace: str) -> None:
    url = _prometheus(cluster)
    ns = namespace
    virtualservice = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "web"},
        "spec": {
            "hosts": ["web"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": "web"}, "weight": 70},
                        {"destination": {"host": "web-canary"}, "weight": 30},
                    ]
                }
            ],
        },
    }
    _apply(
        cluster,
        ns,
        _deployment("web", 2, "v1"),
        _service("web"),
        _deployment("web-canary", 2, "v2-bad"),
        _service("web-canary"),
    )
    _wait_ready(cluster, ns, "web", "web-canary")
    _apply(cluster, ns, virtualservice)
    selector = f'reporter="destination",destination_workload_namespace="{ns}"'
    cluster.wait_for(
        lambda: value(url, f'count(istio_requests_total{{{selector},response_code="500"}})') == 4,
        20,
        "istio_requests_total of the 4 pods",
    )
    time.sleep(11)
    canary = f'{selector},destination_workload="web-canary"'
    share = _ratio(
        url,
        f"sum(increase(istio_requests_total{{{canary}}}[10s]))",
        f"sum(increase(istio_requests_total{{{selector}}}[10s]))",
    )
    assert share == pytest.approx(0.30, abs=0.04)
    errors = _ratio(
        url,
        f'sum(increase(istio_requests_total{{{canary},response_code="500"}}[10s]))',
        f"sum(increase(istio_requests_total{{{canary}}}[10s]))",
    )
    assert errors == pytest.approx(0.30, abs=0.04)
    series = query(url, f'istio_requests_total{{{canary},response_code="200"}}')
    assert {s["metric"]["destination_service_name"] for s in series} == {"web-canary"}
    assert {s["metric"]["pod"][: len("web-canary-")] for s in series} == {"web-canary-"}
    buckets = f'istio_request_duration_milliseconds_bucket{{{selector},destination_workload="web"}}'
    p50 = value(url, f"histogram_quantile(0.5, sum by (le) (rate({buckets}[10s])))")
    p99 = value(url, f"histogram_quantile(0.99, sum by (le) (rate({buckets}[10s])))")
    assert p50 == pytest.approx(20, abs=3)  # milliseconds: Envoy's unit
    assert p99 == pytest.approx(80, abs=30)  # the 1% tail of ~350 requests: a few requests


def test_httproute_header_match_and_weights(cluster: Cluster, namespace: str) -> None:
    url = _prometheus(cluster)
    ns = namespace
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {
            "rules": [
                {
                    "matches": [{"headers": [{"name": "x-canary", "value": "true"}]}],
                    "backendRefs": [{"name": "web-canary", "port": 80}],
                },
                {
                    "backendRefs": [
                        {"name": "web", "port": 80, "weight": 90},
                        {"name": "web-canary", "port": 80, "weight": 10},
                    ]
                },
            ]
        },
    }
    _apply(
        cluster,
        ns,
        _deployment("web", 2, "v1"),
        _service("web"),
        _deployment("web-canary", 1, "v2"),
        _service("web-canary"),
    )
    _wait_ready(cluster, ns, "web", "web-canary")
    _apply(cluster, ns, route)
    canary = f'envoy_cluster_name="{ns}_web-canary_80"'  # Contour: <namespace>_<service>_<port>
    cluster.wait_for(
        lambda: value(url, f"sum(envoy_cluster_upstream_rq_total{{{canary}}})"),
        20,
        "envoy_cluster_upstream_rq_total of the canary Service",
    )
    time.sleep(11)
    both = f'envoy_cluster_name=~"{ns}_web(-canary)?_80"'
    share = _ratio(
        url,
        f"sum(increase(envoy_cluster_upstream_rq_total{{{canary}}}[10s]))",
        f"sum(increase(envoy_cluster_upstream_rq_total{{{both}}}[10s]))",
    )
    assert share == pytest.approx(0.1 + 0.9 * 0.1, abs=0.04)  # header match share + weight
    classes = query(url, f"envoy_cluster_upstream_rq_xx{{{canary}}}")
    assert {s["metric"]["envoy_response_code_class"] for s in classes} <= {"2", "5"}
