#!/usr/bin/env python3
"""The test world's traffic simulator: real data planes' metrics for pods that run nothing.

    simulator.py --kubeconfig ADMIN.kubeconfig --port PORT

`world.py up` starts it beside the cluster (log: `.cluster/<name>/logs/simulator.log`) and
Prometheus scrapes `http://127.0.0.1:PORT/metrics` every second. It keeps list+watch caches of
Pods, Services, EndpointSlices, Ingresses, HTTPRoutes, VirtualServices and DestinationRules and,
every second, sends `VP_SIM_RPS` requests/s (default 50) through every routing object and every
Service no routing object covers, split over the Ready pods the way the data plane would:

- an Ingress: NGINX canary annotations (`canary`, `canary-weight`, `canary-weight-total`,
  `canary-by-header`, `canary-by-header-value`/`-pattern`, `canary-by-cookie`) of a canary
  Ingress with the same host and path; `VP_SIM_MATCH_SHARE` (default 0.1) of the requests carry
  the header or cookie and go to the canary, the rest split by the weight;
- an HTTPRoute: each rule with header or query-parameter matches gets `VP_SIM_MATCH_SHARE` of the
  requests, the rules without get the rest in equal parts; inside a rule, backendRefs by weight;
- a VirtualService: the same for its http routes (header/query matches), destination weights,
  subsets resolved through the DestinationRule of the host;
- a Service no routing object names: the generic app metric only.

How a pod behaves is chosen by its container image tag (the contract the tests and the demo use):
`-bad` answers 30% of requests with HTTP 500, `-flaky` 3%, anything else 1%; `-slow` has a p99
of 2 s (p50 0.75 s), anything else a p99 of 80 ms (p50 20 ms); `-quiet` receives no request at
all. Counts are deterministic (cumulative floors, no random noise), so over any window a pod's
error count and every latency bucket are within one request of the exact share.

Metric names and labels are those of ingress-nginx, Istio, Envoy as Contour configures it, and a
generic instrumented app; docs/development.md ("Metrics in the test world") lists them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import itertools
import json
import logging
import math
import os
import random
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

log = logging.getLogger("simulator")

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)

#: Golden-ratio step: positions of successive requests inside a latency bucket spread evenly.
PHI = (math.sqrt(5) - 1) / 2
#: Latency CDFs as knots (seconds, cumulative share in 1/10000), linear in between. The knots
#: sit on bucket boundaries every exporter here shares (5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5 s),
#: so histogram_quantile() reads back exactly these quantiles.
Latency = tuple[tuple[float, int], ...]
HEALTHY_LATENCY: Latency = (
    (0.0, 0),
    (0.005, 500),
    (0.01, 2000),
    (0.025, 6500),  # p50 = 20 ms
    (0.05, 9825),
    (0.1, 9950),  # p99 = 80 ms
    (0.25, 10000),
)
SLOW_LATENCY: Latency = (
    (0.0, 0),
    (0.25, 0),
    (0.5, 200),
    (1.0, 9700),  # p50 = 0.75 s (the most these buckets allow with p99 = 2 s)
    (2.5, 10000),  # p99 = 2 s
)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Envoy's default histogram buckets (Istio's and Contour's Envoy), in milliseconds.
ENVOY_MS_BUCKETS = (
    0.5,
    1,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
    300000,
    600000,
    1800000,
    3600000,
)
NGINX_CONST = {
    "controller_class": "k8s.io/ingress-nginx",
    "controller_namespace": "ingress-nginx",
    "controller_pod": "ingress-nginx-controller-sim",
}
LISTS = {
    "pods": "/api/v1/pods",
    "services": "/api/v1/services",
    "endpointslices": "/apis/discovery.k8s.io/v1/endpointslices",
    "ingresses": "/apis/networking.k8s.io/v1/ingresses",
    "httproutes": "/apis/gateway.networking.k8s.io/v1/httproutes",
    "virtualservices": "/apis/networking.istio.io/v1/virtualservices",
    "destinationrules": "/apis/networking.istio.io/v1/destinationrules",
}


# ---------------------------------------------------------------------------------------------
# Behaviour by image tag
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Behaviour:
    name: str
    error_permille: int
    latency: Latency
    quiet: bool = False


def image_tag(image: str) -> str:
    """`registry:5000/web:v2-bad@sha256:...` -> `v2-bad`; no tag -> `latest`."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def behaviour_of(images: Iterable[str]) -> Behaviour:
    tags = [image_tag(image) for image in images]

    def has(marker: str) -> bool:
        return any(marker in tag for tag in tags)

    errors, names = 10, []
    if has("-bad"):
        errors, names = 300, ["bad"]
    elif has("-flaky"):
        errors, names = 30, ["flaky"]
    latency = HEALTHY_LATENCY
    if has("-slow"):
        latency, names = SLOW_LATENCY, [*names, "slow"]
    quiet = has("-quiet")
    if quiet:
        names.append("quiet")
    return Behaviour("+".join(names) or "healthy", errors, latency, quiet)


# ---------------------------------------------------------------------------------------------
# What the cluster looks like
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    workload: str
    behaviour: Behaviour


def workload_of(obj: Obj) -> str:
    """The owner workload's name, as Istio derives `destination_workload`."""
    meta = obj.get("metadata") or {}
    owners = meta.get("ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if owner is None:
        return str(meta.get("name", ""))
    name = str(owner.get("name", ""))
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if owner.get("kind") == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return name[: -len(template_hash) - 1]
    return name


def pod_of(obj: Obj) -> Pod:
    meta = obj.get("metadata") or {}
    containers = (obj.get("spec") or {}).get("containers") or []
    return Pod(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        labels=dict(meta.get("labels") or {}),
        workload=workload_of(obj),
        behaviour=behaviour_of(str(c.get("image", "")) for c in containers),
    )


@dataclass
class Snapshot:
    pods: dict[Key, Pod] = field(default_factory=dict)
    services: set[Key] = field(default_factory=set)
    endpoints: dict[Key, tuple[Key, ...]] = field(default_factory=dict)  # Service -> Ready pods
    ingresses: list[Obj] = field(default_factory=list)
    httproutes: list[Obj] = field(default_factory=list)
    virtualservices: list[Obj] = field(default_factory=list)
    destinationrules: list[Obj] = field(default_factory=list)


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def snapshot_of(lists: Mapping[str, list[Obj]]) -> Snapshot:
    snap = Snapshot(
        pods={_key(o): pod_of(o) for o in lists["pods"]},
        services={_key(o) for o in lists["services"]},
        ingresses=lists["ingresses"],
        httproutes=lists["httproutes"],
        virtualservices=lists["virtualservices"],
        destinationrules=lists["destinationrules"],
    )
    ready: dict[Key, set[Key]] = {}
    for eps in lists["endpointslices"]:
        namespace = _key(eps)[0]
        service = ((eps.get("metadata") or {}).get("labels") or {}).get(
            "kubernetes.io/service-name"
        )
        if not service:
            continue
        pods = ready.setdefault((namespace, service), set())
        for endpoint in eps.get("endpoints") or []:
            target = endpoint.get("targetRef") or {}
            # An unset `ready` means ready (EndpointConditions API doc).
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            if target.get("kind") == "Pod" and target.get("name"):
                pods.add((str(target.get("namespace") or namespace), str(target["name"])))
    snap.endpoints = {svc: tuple(sorted(p)) for svc, p in ready.items()}
    return snap


# ---------------------------------------------------------------------------------------------
# Where the requests go (pure: a snapshot in, traffic sources out)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backend:
    namespace: str
    service: str
    share: float  # of the source's requests
    pods: tuple[Key, ...]
    labels: tuple[tuple[str, str], ...] = ()  # the data plane's labels for this backend


@dataclass(frozen=True)
class Source:
    kind: str  # nginx | istio | envoy | service
    namespace: str
    name: str
    backends: tuple[Backend, ...]

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    def describe(self) -> str:
        parts = [
            f"{b.service} {b.share * 100:.4g}% over {len(b.pods)} pods"
            for b in self.backends
            if b.share > 0
        ]
        return f"{self.key}: {', '.join(parts) or 'no backend'}"


def _annotations(obj: Obj) -> dict[str, str]:
    return {k: str(v) for k, v in ((obj.get("metadata") or {}).get("annotations") or {}).items()}


def canary_prefix(annotations: Mapping[str, str]) -> str | None:
    """`nginx.ingress.kubernetes.io/` for an NGINX canary Ingress (`<prefix>/canary: "true"`)."""
    for key, value in annotations.items():
        if key.endswith("/canary") and value.lower() == "true":
            return key[: -len("canary")]
    return None


def canary_share(annotations: Mapping[str, str], prefix: str, match_share: float) -> float:
    """NGINX: header, then cookie, then weight. Matching requests are `match_share` of all."""
    matched = 0.0
    if annotations.get(f"{prefix}canary-by-header") or annotations.get(f"{prefix}canary-by-cookie"):
        matched = match_share
    try:
        weight = float(annotations.get(f"{prefix}canary-weight") or 0)
        total = float(annotations.get(f"{prefix}canary-weight-total") or 100)
    except ValueError:
        weight, total = 0.0, 100.0
    weighted = min(max(weight / total, 0.0), 1.0) if total > 0 else 0.0
    return matched + (1 - matched) * weighted


def ingress_paths(obj: Obj) -> list[tuple[str, str, str, str]]:
    """(host, path, service, port) of every backend of an Ingress."""
    spec = obj.get("spec") or {}
    found: list[tuple[str, str, str, str]] = []
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            service = (path.get("backend") or {}).get("service") or {}
            if service.get("name"):
                port = service.get("port") or {}
                found.append(
                    (
                        str(rule.get("host") or ""),
                        str(path.get("path") or "/"),
                        str(service["name"]),
                        str(port.get("number") or port.get("name") or ""),
                    )
                )
    default = (spec.get("defaultBackend") or {}).get("service") or {}
    if not found and default.get("name"):
        port = default.get("port") or {}
        found.append(("", "/", str(default["name"]), str(port.get("number") or port.get("name"))))
    return found


def nginx_sources(snap: Snapshot, match_share: float) -> list[Source]:
    canaries: dict[tuple[str, str, str], tuple[str, str, float]] = {}
    mains: list[Obj] = []
    for ing in sorted(snap.ingresses, key=_key):
        annotations = _annotations(ing)
        prefix = canary_prefix(annotations)
        if prefix is None:
            mains.append(ing)
            continue
        share = canary_share(annotations, prefix, match_share)
        namespace = _key(ing)[0]
        for host, path, service, port in ingress_paths(ing):
            canaries.setdefault((namespace, host, path), (service, port, share))
    sources = []
    for ing in mains:
        namespace, name = _key(ing)
        paths = ingress_paths(ing)
        backends: list[Backend] = []
        for host, path, service, _port in paths:
            part = 1 / len(paths)
            base = {"namespace": namespace, "ingress": name, "service": service}
            base |= {"host": host or "_", "path": path, "method": "GET"}
            canary = canaries.get((namespace, host, path))
            weight = canary[2] if canary else 0.0
            backends.append(
                _backend(snap, namespace, service, part * (1 - weight), {**base, "canary": ""})
            )
            if canary and weight > 0:
                upstream = f"{namespace}-{canary[0]}-{canary[1]}"  # ingress-nginx's upstream name
                labels = {**base, "canary": upstream}
                backends.append(_backend(snap, namespace, canary[0], part * weight, labels))
        sources.append(Source("nginx", namespace, name, tuple(backends)))
    return sources


def _backend(
    snap: Snapshot,
    namespace: str,
    service: str,
    share: float,
    labels: Mapping[str, str],
    subset: Mapping[str, str] | None = None,
) -> Backend:
    """The Ready pods behind a Service (those a subset's labels select, if given)."""
    pods = snap.endpoints.get((namespace, service), ())
    if subset is not None:
        pods = tuple(
            p
            for p in pods
            if p in snap.pods and all(snap.pods[p].labels.get(k) == v for k, v in subset.items())
        )
    return Backend(namespace, service, share, pods, tuple(sorted(labels.items())))


def _conditional(matches: Sequence[Obj]) -> bool:
    return any(m.get("headers") or m.get("queryParams") for m in matches)


def rule_shares(conditional: Sequence[bool], match_share: float) -> list[float]:
    """Each conditional rule gets `match_share` of the requests, the others share the rest."""
    matched = sum(conditional)
    each = min(match_share, 1 / matched) if matched else 0.0
    plain = len(conditional) - matched
    rest = (1 - each * matched) / plain if plain else 0.0
    return [each if c else rest for c in conditional]


def weights(values: Sequence[float]) -> list[float]:
    total = sum(values)
    return [v / total for v in values] if total > 0 else [0.0 for _ in values]


def resolve_host(host: str, namespace: str) -> Key:
    """Istio's short host names: `web`, `web.ns`, `web.ns.svc[.cluster.local]`."""
    parts = host.split(".")
    if len(parts) == 1:
        return namespace, host
    return parts[1], parts[0]


def httproute_sources(snap: Snapshot, match_share: float) -> list[Source]:
    sources = []
    for route in sorted(snap.httproutes, key=_key):
        namespace, name = _key(route)
        rules = (route.get("spec") or {}).get("rules") or []
        shares = rule_shares([_conditional(r.get("matches") or []) for r in rules], match_share)
        backends = []
        for rule, share in zip(rules, shares, strict=True):
            refs = [
                r
                for r in rule.get("backendRefs") or []
                if r.get("kind", "Service") == "Service" and r.get("group", "") in ("", "core")
            ]
            for ref, part in zip(
                refs, weights([float(r.get("weight", 1)) for r in refs]), strict=True
            ):
                ns = str(ref.get("namespace") or namespace)
                cluster = f"{ns}_{ref['name']}_{ref.get('port', '')}"  # Contour's alt_stat_name
                labels = {"envoy_cluster_name": cluster}
                backends.append(_backend(snap, ns, str(ref["name"]), share * part, labels))
        sources.append(Source("envoy", namespace, name, tuple(backends)))
    return sources


def virtualservice_sources(snap: Snapshot, match_share: float) -> list[Source]:
    subsets: dict[tuple[Key, str], dict[str, str]] = {}
    for rule in snap.destinationrules:
        namespace = _key(rule)[0]
        spec = rule.get("spec") or {}
        host = resolve_host(str(spec.get("host", "")), namespace)
        for subset in spec.get("subsets") or []:
            subsets[(host, str(subset.get("name")))] = dict(subset.get("labels") or {})
    sources = []
    for vs in sorted(snap.virtualservices, key=_key):
        namespace, name = _key(vs)
        spec = vs.get("spec") or {}
        gateways = [g for g in spec.get("gateways") or [] if g != "mesh"]
        source = ("istio-ingressgateway", "istio-system") if gateways else ("unknown", "unknown")
        routes = spec.get("http") or []
        shares = rule_shares([_conditional(r.get("match") or []) for r in routes], match_share)
        backends = []
        for route, share in zip(routes, shares, strict=True):
            dests = route.get("route") or []
            if len(dests) == 1:
                parts = [1.0]
            else:
                parts = weights([float(d.get("weight", 0)) for d in dests])
            for dest, part in zip(dests, parts, strict=True):
                target = dest.get("destination") or {}
                svc_ns, svc = resolve_host(str(target.get("host", "")), namespace)
                labels = {
                    "reporter": "destination",
                    "source_workload": source[0],
                    "source_workload_namespace": source[1],
                    "destination_service": f"{svc}.{svc_ns}.svc.cluster.local",
                    "destination_service_name": svc,
                    "destination_service_namespace": svc_ns,
                    "request_protocol": "http",
                    "response_flags": "-",
                    "connection_security_policy": "mutual_tls",
                }
                subset = None
                if target.get("subset"):  # an unknown subset selects nothing (Istio: 503)
                    subset = subsets.get(((svc_ns, svc), str(target["subset"])), {"": "\n"})
                backends.append(_backend(snap, svc_ns, svc, share * part, labels, subset))
        sources.append(Source("istio", namespace, name, tuple(backends)))
    return sources


def plan(snap: Snapshot, match_share: float) -> list[Source]:
    """Every traffic source: routing objects, then the Services none of them covers."""
    sources = [
        *nginx_sources(snap, match_share),
        *httproute_sources(snap, match_share),
        *virtualservice_sources(snap, match_share),
    ]
    # Every Service a routing object names gets its traffic only through it, even at weight 0.
    covered = {(b.namespace, b.service) for s in sources for b in s.backends}
    for ing in snap.ingresses:
        covered |= {(_key(ing)[0], service) for _, _, service, _ in ingress_paths(ing)}
    for vs in snap.virtualservices:  # a VirtualService's hosts are its Services' traffic too
        namespace = _key(vs)[0]
        hosts = (vs.get("spec") or {}).get("hosts") or []
        covered |= {resolve_host(str(h), namespace) for h in hosts}
    for namespace, service in sorted(snap.endpoints):
        if (namespace, service) not in covered and (namespace, service) in snap.services:
            backend = _backend(snap, namespace, service, 1.0, {})
            sources.append(Source("service", namespace, service, (backend,)))
    return sources


# ---------------------------------------------------------------------------------------------
# Metrics: counters and histograms in the Prometheus text format
# ---------------------------------------------------------------------------------------------
Owner = tuple[str, ...]


class Family:
    """One metric family; each series remembers the object it belongs to (pruned with it)."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str],
        buckets: Sequence[float] | None = None,
        const: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(float(b) for b in buckets) if buckets is not None else None
        self.const = tuple(sorted((const or {}).items()))
        self.counts: dict[tuple[str, ...], int] = {}
        self.histograms: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        self.owners: dict[tuple[str, ...], Owner] = {}

    def _labels(self, labels: Mapping[str, str], owner: Owner) -> tuple[str, ...]:
        key = tuple(str(labels.get(n, "")) for n in self.labelnames)
        self.owners[key] = owner
        return key

    def inc(self, labels: Mapping[str, str], owner: Owner, amount: int = 1) -> None:
        key = self._labels(labels, owner)
        self.counts[key] = self.counts.get(key, 0) + amount

    def observe(self, labels: Mapping[str, str], owner: Owner, values: Iterable[float]) -> None:
        assert self.buckets is not None
        key = self._labels(labels, owner)
        counts, total = self.histograms.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
        for value in values:
            counts[bisect.bisect_left(self.buckets, value)] += 1  # first bucket with value <= le
            total[0] += value

    def prune(self, live: set[Owner]) -> None:
        for key, owner in list(self.owners.items()):
            if owner not in live:
                del self.owners[key]
                self.counts.pop(key, None)
                self.histograms.pop(key, None)

    def render(self, out: list[str]) -> None:
        kind = "histogram" if self.buckets is not None else "counter"
        out.append(f"# HELP {self.name} {self.help}")
        out.append(f"# TYPE {self.name} {kind}")
        for key, value in sorted(self.counts.items()):
            out.append(f"{self.name}{self._format(key)} {value}")
        for key, (counts, total) in sorted(self.histograms.items()):
            assert self.buckets is not None
            running = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                le = (("le", _number(bound)),)
                out.append(f"{self.name}_bucket{self._format(key, le)} {running}")
            out.append(f"{self.name}_sum{self._format(key)} {_number(total[0])}")
            out.append(f"{self.name}_count{self._format(key)} {running}")

    def _format(self, key: tuple[str, ...], extra: tuple[tuple[str, str], ...] = ()) -> str:
        pairs = [*zip(self.labelnames, key, strict=True), *self.const, *extra]
        return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in pairs) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


NGINX_LABELS = ("namespace", "ingress", "service", "canary", "status", "method", "path", "host")
ISTIO_LABELS = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "destination_workload",
    "destination_workload_namespace",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "request_protocol",
    "response_code",
    "response_flags",
    "connection_security_policy",
    "namespace",
    "pod",
)


class Metrics:
    def __init__(self) -> None:
        self.app_requests = Family(
            "http_requests_total",
            "Requests the pod answered (generic app metric).",
            ("namespace", "pod", "code"),
        )
        self.app_duration = Family(
            "http_request_duration_seconds",
            "Latency of the requests the pod answered (generic app metric).",
            ("namespace", "pod"),
            SECONDS_BUCKETS,
        )
        self.nginx_requests = Family(
            "nginx_ingress_controller_requests",
            "The total number of client requests",
            NGINX_LABELS,
            const=NGINX_CONST,
        )
        self.nginx_duration = Family(
            "nginx_ingress_controller_request_duration_seconds",
            "The request processing time in seconds",
            NGINX_LABELS,
            SECONDS_BUCKETS,
            const=NGINX_CONST,
        )
        self.istio_requests = Family("istio_requests_total", "Requests (Istio)", ISTIO_LABELS)
        self.istio_duration = Family(
            "istio_request_duration_milliseconds",
            "Request duration (Istio)",
            ISTIO_LABELS,
            ENVOY_MS_BUCKETS,
        )
        cluster = ("envoy_cluster_name",)
        self.envoy_total = Family("envoy_cluster_upstream_rq_total", "Upstream requests", cluster)
        self.envoy_rq = Family(
            "envoy_cluster_upstream_rq",
            "Upstream requests by response code",
            (*cluster, "envoy_response_code"),
        )
        self.envoy_xx = Family(
            "envoy_cluster_upstream_rq_xx",
            "Upstream requests by response code class",
            (*cluster, "envoy_response_code_class"),
        )
        self.envoy_time = Family(
            "envoy_cluster_upstream_rq_time",
            "Upstream request time (ms)",
            cluster,
            ENVOY_MS_BUCKETS,
        )
        self.families = [v for v in vars(self).values() if isinstance(v, Family)]
        self.requests_sent = 0
        self.read_errors = 0
        self.sources = 0

    def record(self, source: Source, backend: Backend, pod: Pod, requests: Sequence[Req]) -> None:
        self.requests_sent += len(requests)
        pod_owner: Owner = ("pod", pod.uid)
        by_code: dict[int, list[float]] = {}
        for code, seconds in requests:
            by_code.setdefault(code, []).append(seconds)
        base = dict(backend.labels)
        for code, latencies in by_code.items():
            app = {"namespace": pod.namespace, "pod": pod.name, "code": str(code)}
            self.app_requests.inc(app, pod_owner, len(latencies))
            self.app_duration.observe(app, pod_owner, latencies)
            if source.kind == "nginx":
                owner = ("ingress", source.namespace, source.name)
                labels = {**base, "status": str(code)}
                self.nginx_requests.inc(labels, owner, len(latencies))
                self.nginx_duration.observe(labels, owner, latencies)
            elif source.kind == "istio":
                labels = {**base, **istio_pod_labels(pod), "response_code": str(code)}
                self.istio_requests.inc(labels, pod_owner, len(latencies))
                self.istio_duration.observe(labels, pod_owner, [s * 1000 for s in latencies])
            elif source.kind == "envoy":
                owner = ("service", backend.namespace, backend.service)
                self.envoy_total.inc(base, owner, len(latencies))
                self.envoy_rq.inc({**base, "envoy_response_code": str(code)}, owner, len(latencies))
                xx = {**base, "envoy_response_code_class": str(code // 100)}
                self.envoy_xx.inc(xx, owner, len(latencies))
                self.envoy_time.observe(base, owner, [s * 1000 for s in latencies])

    def prune(self, snap: Snapshot) -> None:
        live: set[Owner] = {("pod", p.uid) for p in snap.pods.values()}
        live |= {("ingress", *_key(i)) for i in snap.ingresses}
        live |= {("service", *k) for k in snap.services}
        for family in self.families:
            family.prune(live)

    def render(self) -> str:
        out: list[str] = []
        for family in self.families:
            family.render(out)
        out += [
            "# HELP vp_simulator_requests_total Requests the simulator sent (all sources).",
            "# TYPE vp_simulator_requests_total counter",
            f"vp_simulator_requests_total {self.requests_sent}",
            "# HELP vp_simulator_read_errors_total Failed lists and watches of the cluster.",
            "# TYPE vp_simulator_read_errors_total counter",
            f"vp_simulator_read_errors_total {self.read_errors}",
            "# HELP vp_simulator_sources Routing objects and Services that get traffic.",
            "# TYPE vp_simulator_sources gauge",
            f"vp_simulator_sources {self.sources}",
        ]
        return "\n".join(out) + "\n"


def istio_pod_labels(pod: Pod) -> dict[str, str]:
    labels = pod.labels
    app = labels.get("app") or labels.get("app.kubernetes.io/name") or "unknown"
    version = labels.get("version") or labels.get("app.kubernetes.io/version") or "unknown"
    canonical = (
        labels.get("service.istio.io/canonical-name")
        or labels.get("app.kubernetes.io/name")
        or labels.get("app")
        or pod.workload
    )
    revision = (
        labels.get("service.istio.io/canonical-revision")
        or labels.get("app.kubernetes.io/version")
        or labels.get("version")
        or "latest"
    )
    return {
        "destination_workload": pod.workload,
        "destination_workload_namespace": pod.namespace,
        "destination_app": app,
        "destination_version": version,
        "destination_canonical_service": canonical,
        "destination_canonical_revision": revision,
        "namespace": pod.namespace,  # the scrape target's labels (the destination's sidecar)
        "pod": pod.name,
    }


# ---------------------------------------------------------------------------------------------
# Requests: exact shares, no random noise
# ---------------------------------------------------------------------------------------------
Req = tuple[int, float]  # (HTTP status, latency in seconds)


@dataclass
class Stream:
    """The requests one source sends to one pod through one backend."""

    pending: float = 0.0  # fractional requests carried to the next tick
    sent: int = 0
    per_segment: list[int] = field(default_factory=list)


def next_requests(
    stream: Stream, count: int, behaviour: Behaviour, rng: random.Random
) -> list[Req]:
    """`count` more requests: after N requests, floor(N * rate) were errors and each latency
    segment holds its share of N to within one request."""
    before, after = stream.sent, stream.sent + count
    stream.sent = after
    permille = behaviour.error_permille
    errors = after * permille // 1000 - before * permille // 1000
    knots = behaviour.latency
    if len(stream.per_segment) != len(knots) - 1:
        stream.per_segment = [0] * (len(knots) - 1)
    deficits = [
        after * (f1 - f0) / 10000 - done
        for (_, f0), (_, f1), done in zip(knots, knots[1:], stream.per_segment, strict=False)
    ]
    alloc = [max(0, math.floor(d)) for d in deficits]
    widths = [f1 - f0 for (_, f0), (_, f1) in itertools.pairwise(knots)]
    order = sorted(
        (i for i in range(len(alloc)) if widths[i] > 0),
        key=lambda i: deficits[i] - alloc[i],
        reverse=True,
    )
    left = count - sum(alloc)
    for i in order if left > 0 else ():
        if left == 0:
            break
        alloc[i] += 1
        left -= 1
    for i in reversed(order) if left < 0 else ():
        if left == 0:
            break
        if alloc[i] > 0:
            alloc[i] -= 1
            left += 1
    latencies: list[float] = []
    for i, n in enumerate(alloc):
        (x0, _), (x1, _) = knots[i], knots[i + 1]
        done = stream.per_segment[i]
        latencies += [x0 + (x1 - x0) * ((done + k + 0.5) * PHI % 1.0) for k in range(n)]
        stream.per_segment[i] = done + n
    rng.shuffle(latencies)
    return [(500 if k < errors else 200, s) for k, s in enumerate(latencies)]


class Engine:
    def __init__(self, metrics: Metrics, rps: float, match_share: float, seed: int) -> None:
        self.metrics = metrics
        self.rps = rps
        self.match_share = match_share
        self.rng = random.Random(seed)
        self.streams: dict[tuple[str, str, tuple[tuple[str, str], ...], str], Stream] = {}
        self.described: dict[str, str] = {}

    def tick(self, snap: Snapshot, dt: float) -> None:
        sources = plan(snap, self.match_share)
        self.metrics.sources = len(sources)
        self._log_changes(sources)
        for source in sources:
            for backend in source.backends:
                if backend.share <= 0 or not backend.pods:
                    continue
                per_pod = self.rps * dt * backend.share / len(backend.pods)
                for key in backend.pods:
                    pod = snap.pods.get(key)
                    if pod is None:
                        continue
                    stream_key = (source.key, backend.service, backend.labels, pod.uid)
                    stream = self.streams.setdefault(stream_key, Stream())
                    stream.pending += per_pod
                    count = math.floor(stream.pending)
                    stream.pending -= count
                    if count == 0 or pod.behaviour.quiet:
                        continue
                    requests = next_requests(stream, count, pod.behaviour, self.rng)
                    self.metrics.record(source, backend, pod, requests)

    def prune(self, snap: Snapshot) -> None:
        uids = {p.uid for p in snap.pods.values()}
        self.streams = {k: v for k, v in self.streams.items() if k[3] in uids}
        self.metrics.prune(snap)

    def _log_changes(self, sources: Sequence[Source]) -> None:
        now = {s.key: s.describe() for s in sources}
        for key, text in sorted(now.items()):
            if self.described.get(key) != text:
                log.info("traffic %s", text)
        for key in sorted(set(self.described) - set(now)):
            log.info("traffic %s: gone", key)
        self.described = now


# ---------------------------------------------------------------------------------------------
# The cluster: plain HTTPS lists with the kubeconfig's credentials
# ---------------------------------------------------------------------------------------------
class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        current = config.get("current-context")
        context = _named(config.get("contexts"), current)
        cluster = _named(config.get("clusters"), context.get("cluster"))
        user = _named(config.get("users"), context.get("user"))
        self.server = str(cluster["server"]).rstrip("/")
        self.headers = {"Accept": "application/json"}
        if user.get("token"):
            self.headers["Authorization"] = f"Bearer {user['token']}"
        base = kubeconfig.parent
        if cluster.get("certificate-authority-data"):
            ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
            self.ssl = ssl.create_default_context(cadata=ca)
        else:
            cafile = cluster.get("certificate-authority")
            self.ssl = ssl.create_default_context(cafile=str(base / cafile) if cafile else None)
        with tempfile.TemporaryDirectory(prefix="vp-simulator-") as tmp:
            cert = _material(user, "client-certificate", base, Path(tmp) / "client.crt")
            key = _material(user, "client-key", base, Path(tmp) / "client.key")
            if cert and key:
                self.ssl.load_cert_chain(cert, key)  # read now; the files go at once

    async def get(
        self, session: aiohttp.ClientSession, path: str, params: Mapping[str, str], **kw: Any
    ) -> aiohttp.ClientResponse:
        return await session.get(
            self.server + path, params=params, headers=self.headers, ssl=self.ssl, **kw
        )


class Informer:
    """A list + watch cache of one kind, cluster-wide (what a data plane's controller keeps)."""

    def __init__(self, kube: Kube, kind: str, path: str, metrics: Metrics) -> None:
        self.kube = kube
        self.kind = kind
        self.path = path
        self.metrics = metrics
        self.items: dict[str, Obj] = {}
        self.synced = False
        self.last_error = ""

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            try:
                version = await self._list(session)
                if version is None:  # the kind is not served (yet): no objects
                    await asyncio.sleep(2)
                    continue
                await self._watch(session, version)
            except (aiohttp.ClientError, TimeoutError, RuntimeError, OSError, ValueError) as err:
                self.metrics.read_errors += 1
                if str(err) != self.last_error:
                    log.warning("%s: %s (retrying every second)", self.kind, err)
                    self.last_error = str(err)
                await asyncio.sleep(1)

    async def _list(self, session: aiohttp.ClientSession) -> str | None:
        """Replace the cache with a list from the API server's cache; its resourceVersion."""
        async with await self.kube.get(session, self.path, {"resourceVersion": "0"}) as response:
            if response.status == 404:
                self.items, self.synced = {}, True
                return None
            if response.status != 200:
                text = (await response.text())[:200]
                raise RuntimeError(f"list: HTTP {response.status}: {text}")
            data = await response.json()
        self.items = {_uid(o): o for o in data.get("items") or []}
        self.synced = True
        self.last_error = ""
        return str((data.get("metadata") or {}).get("resourceVersion", ""))

    async def _watch(self, session: aiohttp.ClientSession, version: str) -> None:
        """Apply watch events until the server ends the watch (then the caller lists again)."""
        params = {
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=330)
        async with await self.kube.get(session, self.path, params, timeout=timeout) as response:
            if response.status != 200:
                text = (await response.text())[:200]
                raise RuntimeError(f"watch: HTTP {response.status}: {text}")
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind in ("ADDED", "MODIFIED"):
                    self.items[_uid(obj)] = obj
                elif kind == "DELETED":
                    self.items.pop(_uid(obj), None)
                elif kind == "ERROR":  # e.g. 410 Gone: the version is too old, list again
                    return


def _uid(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def _named(entries: Any, name: Any) -> Obj:
    for entry in entries or []:
        if entry.get("name") == name:
            inner: Obj = dict(
                entry.get("context") or entry.get("cluster") or entry.get("user") or {}
            )
            return inner
    raise SystemExit(f"simulator: kubeconfig has no entry named {name!r}")


def _material(user: Obj, field_name: str, base: Path, target: Path) -> str | None:
    if user.get(f"{field_name}-data"):
        target.write_bytes(base64.b64decode(user[f"{field_name}-data"]))
        target.chmod(0o600)
        return str(target)
    if user.get(field_name):
        return str(base / str(user[field_name]))
    return None


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def _env_float(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"simulator: {name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise SystemExit(f"simulator: {name}={raw} is outside [{low}, {high}]")
    return value


async def serve(args: argparse.Namespace) -> None:
    kube = Kube(args.kubeconfig)
    metrics = Metrics()
    engine = Engine(metrics, args.rps, args.match_share, args.seed)

    async def handle_metrics(_: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain", charset="utf-8")

    async def handle_health(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/healthz", handle_health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    log.info(
        "serving http://127.0.0.1:%d/metrics; %g requests/s per routing object or Service, "
        "match share %g; cluster %s",
        args.port,
        args.rps,
        args.match_share,
        kube.server,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    informers = [Informer(kube, kind, path, metrics) for kind, path in LISTS.items()]
    timeout = aiohttp.ClientTimeout(total=10)
    # read_bufsize: one watch event is one line, and a Pod's JSON can be large.
    async with aiohttp.ClientSession(timeout=timeout, read_bufsize=2**22) as session:
        tasks = [asyncio.create_task(i.run(session)) for i in informers]
        last = time.monotonic()
        while not stop.is_set():
            started = time.monotonic()
            if all(i.synced for i in informers):
                try:
                    snap = snapshot_of({i.kind: list(i.items.values()) for i in informers})
                    engine.prune(snap)
                    engine.tick(snap, min(started - last, 5.0))
                except Exception:  # a malformed object must not stop the traffic for good
                    log.exception("simulating a tick failed")
            last = started
            with contextlib.suppress(TimeoutError):
                wait = max(0.05, args.interval - (time.monotonic() - started))
                await asyncio.wait_for(stop.wait(), wait)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await runner.cleanup()
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="simulator.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True, help="serve /metrics on 127.0.0.1")
    parser.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rps = _env_float("VP_SIM_RPS", 50.0, 0.0, 100000.0)
    args.match_share = _env_float("VP_SIM_MATCH_SHARE", 0.1, 0.0, 1.0)
    args.seed = int(_env_float("VP_SIM_SEED", 1, 0, 2**32))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stdout,
    )
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
