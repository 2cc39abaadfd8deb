"""The hold webhooks' answers (``core.admission.hold_review``) and their serving next to Kopf's
(``handlers.HoldingServer``): pure, against every kind of the registry.

The real API server calling them is exercised by every release of tests/integration (and
tests/integration/test_admission_conditions.py for when it calls them).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import jsonpatch
import pytest

from vela_progressive import handlers
from vela_progressive.core import admission, identity
from vela_progressive.core.model import HOLD_LABEL
from vela_progressive.core.traffic.patch import apply_merge_patch, json_patch
from vela_progressive.core.workloads import registry
from vela_progressive.core.workloads.style import WorkloadKind
from vela_progressive.shell.metrics import Metrics

Obj = dict[str, Any]


def _template(image: str) -> Obj:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }


def _review(kind: WorkloadKind, old: Obj | None, new: Obj, operation: str = "UPDATE") -> Obj:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "operation": operation, "object": new, "oldObject": old},
    }


def _patched(new: Obj, answer: Obj) -> Obj:
    response = answer["response"]
    if "patch" not in response:
        return new
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    patched: Obj = jsonpatch.apply_patch(new, ops)
    return patched


def _updates(kind: WorkloadKind) -> list[tuple[str, Obj, Obj]]:
    """UPDATEs of a governed workload of ``kind``: its template changed, scaled up, both."""
    style = kind.style(kind.default_style)
    new = style.example("shop", "web", 4, _template("v2"), 0, 4).workload
    new.setdefault("metadata", {}).setdefault("labels", {})[HOLD_LABEL] = "true"
    changed = copy.deepcopy(new)
    changed["spec"]["template"] = _template("v1")
    smaller = copy.deepcopy(new)
    smaller["spec"]["replicas"] = 2
    both = copy.deepcopy(changed)
    both["spec"]["replicas"] = 2
    return [("template", changed, new), ("scale-up", smaller, new), ("both", both, new)]


@pytest.mark.parametrize("kind", registry.REGISTRY, ids=lambda k: k.handler_id)
def test_the_hold_answer_does_what_the_kinds_hold_rule_does(kind: WorkloadKind) -> None:
    for what, old, new in _updates(kind):
        before = copy.deepcopy(new)
        change = kind.hold(old, new)
        answer = admission.hold_review(_review(kind, old, new), kind, fail_open=True)
        assert answer["response"]["allowed"] is True, what
        assert answer["response"]["uid"] == "u-1"
        assert _patched(new, answer) == apply_merge_patch(new, change or {}), what
        assert new == before, "the request's object is left as it came"
        if what == "template":
            assert change, f"{kind.handler_id}: a template change is held"


def test_only_an_update_of_a_governed_workload_is_held() -> None:
    kind = admission.HOLDS["hold-deployments"]
    _, old, new = _updates(kind)[0]
    assert "patch" in admission.hold_review(_review(kind, old, new), kind, True)["response"]
    created = admission.hold_review(_review(kind, None, new, "CREATE"), kind, True)
    assert "patch" not in created["response"]
    ungoverned = copy.deepcopy(new)
    del ungoverned["metadata"]["labels"][HOLD_LABEL]
    answer = admission.hold_review(_review(kind, old, ungoverned), kind, True)
    assert answer["response"] == {"uid": "u-1", "allowed": True}


@pytest.mark.parametrize("fail_open", [True, False])
def test_a_hold_rule_that_fails_lets_the_change_through_only_when_failing_open(
    fail_open: bool,
) -> None:
    kind = admission.HOLDS["hold-deployments"]
    _, old, new = _updates(kind)[0]

    def broken(old: Obj | None, new: Obj) -> Obj | None:
        raise KeyError("spec")

    answer = admission.hold_review(_review(kind, old, new), replace(kind, hold=broken), fail_open)[
        "response"
    ]
    assert answer["allowed"] is fail_open
    said = answer["warnings"][0] if fail_open else answer["status"]["message"]
    assert said.startswith("holding Deployment shop/web: KeyError('spec')"), said
    assert "patch" not in answer


def test_a_merge_patch_becomes_operations_on_the_paths_it_names_only() -> None:
    obj = {
        "metadata": {"annotations": {"keep": "1", "drop": "2"}},
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
    }
    merge = {
        "metadata": {"annotations": {"a/b~c": "x", "drop": None, "absent": None}},
        "spec": {"strategy": {"type": "Recreate", "rollingUpdate": None}, "paused": True},
        "status": {"new": {"kept": 1, "gone": None}},
    }
    ops = json_patch(obj, merge)
    assert {"op": "add", "path": "/metadata/annotations/a~1b~0c", "value": "x"} in ops
    assert {"op": "add", "path": "/status", "value": {"new": {"kept": 1}}} in ops
    assert not [o for o in ops if o["path"].endswith("/absent")]
    assert jsonpatch.apply_patch(obj, ops) == apply_merge_patch(obj, merge)
    assert json_patch(obj, {"spec": {"strategy": {"type": "RollingUpdate"}}}) == []


class _Server:
    """A webhook server that hands the routed function two requests, as the API server would."""

    def __init__(self) -> None:
        self.answers: list[Any] = []

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        kind = admission.HOLDS["hold-deployments"]
        _, old, new = _updates(kind)[0]
        self.answers.append(await fn(_review(kind, old, new), webhook="hold-deployments"))
        self.answers.append(await fn({"request": {}}, webhook=identity.WEBHOOK_ID))
        yield {"url": "https://127.0.0.1:9443"}


async def test_the_hold_webhooks_are_answered_before_kopf_and_the_stamp_by_kopf() -> None:
    inner = _Server()
    kopf_calls: list[str | None] = []

    async def kopf_fn(request: Any, *, webhook: str | None = None, **_: Any) -> Any:
        kopf_calls.append(webhook)
        return {"response": {"allowed": True, "by": "kopf"}}

    metrics = Metrics()
    configs = [c async for c in handlers.HoldingServer(inner, metrics)(kopf_fn)]  # type: ignore[arg-type]
    assert configs == [{"url": "https://127.0.0.1:9443"}]
    assert kopf_calls == [identity.WEBHOOK_ID]
    held, stamped = inner.answers
    assert held["response"]["patchType"] == "JSONPatch"
    assert stamped["response"]["by"] == "kopf"
