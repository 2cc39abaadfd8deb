"""hack/bench/audit_count.py: API requests by user, verb and resource from an audit log."""

from __future__ import annotations

import datetime
import json
from typing import Any

from hack.bench import audit_count
from hack.bench.audit_count import Key

KRUISE = "system:serviceaccount:kruise-rollout:kruise-rollout-controller-manager"
OURS = "system:serviceaccount:vela-system:vela-progressive-controller"


def event(
    audit_id: str,
    user: str,
    verb: str,
    at: str = "2026-12-02T03:05:00.000000Z",
    stage: str = "ResponseComplete",
    **ref: str,
) -> str:
    body: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": stage,
        "requestURI": "/apis/apps/v1?timeout=32s",
        "verb": verb,
        "user": {"username": user},
        "requestReceivedTimestamp": at,
    }
    if ref:
        body["objectRef"] = ref
    return json.dumps(body)


LOG = [
    event("1", KRUISE, "patch", resource="deployments", namespace="n", name="web"),
    event("2", KRUISE, "update", resource="rollouts", subresource="status"),
    event("3", KRUISE, "watch", stage="ResponseStarted", resource="pods"),
    event("3", KRUISE, "watch", stage="ResponseComplete", resource="pods"),  # the same watch
    event("4", OURS, "patch", resource="deployments"),
    event("5", OURS, "get"),  # discovery: no objectRef
    event("6", OURS, "patch", at="2026-12-02T03:06:00Z", resource="deployments"),
    "",
]


def test_each_request_counts_once_by_user_verb_and_resource() -> None:
    assert audit_count.count(LOG) == {
        Key(KRUISE, "patch", "deployments"): 1,
        Key(KRUISE, "update", "rollouts/status"): 1,
        Key(KRUISE, "watch", "pods"): 1,
        Key(OURS, "patch", "deployments"): 2,
        Key(OURS, "get", "/apis/apps/v1"): 1,
    }


def test_users_and_a_time_window() -> None:
    since = audit_count.parse_time("2026-12-02T03:05:30Z")
    assert audit_count.count(LOG, users=[OURS], since=since) == {
        Key(OURS, "patch", "deployments"): 1
    }
    until = audit_count.parse_time(str(since.timestamp()))
    assert until == since.astimezone(datetime.UTC)
    assert sum(audit_count.count(LOG, users=[KRUISE], until=until).values()) == 3


def test_markdown_has_a_table_per_user_with_totals() -> None:
    text = audit_count.markdown(audit_count.count(LOG))
    assert f"### {KRUISE}: 3 requests" in text
    assert f"### {OURS}: 3 requests (patch 2, get 1)" in text
    assert "| patch | deployments | 2 |" in text
    assert audit_count.markdown(audit_count.count([])) == "no requests in the audit log match\n"
