"""The webhooks' match conditions on the real API server: it calls a webhook only for a request
the webhook could change (``core.admission``). Checked with the conditions pointing at a URL
nobody serves and ``failurePolicy: Fail``, so a request the API server sends to the webhook is
refused, and one it does not send goes through."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import AsyncIterator, Awaitable

import pytest

from tests.integration.release_kit import V1, V2, rollout, workload
from tests.support.controller import Controller
from vela_progressive.core import admission
from vela_progressive.core.release import APPROVE_ANNOTATION, STAMP_ANNOTATION
from vela_progressive.core.workloads import ORIGINAL_ANNOTATION
from vela_progressive.shell.kube import Kube, KubeError

pytestmark = [pytest.mark.integration]

ADMISSION = "admissionregistration.k8s.io/v1"
#: Named to sort before the controller's own configuration: the API server calls mutating
#: webhooks in that order, and each sees the request as the ones before it left it.
CONFIG = "0-vp-test-match-conditions"


@pytest.fixture
async def unserved(kube: Kube, namespace: str) -> AsyncIterator[str]:
    """The addon's webhooks, failing closed at a dead URL, for objects labelled for this test."""
    config = admission.configuration(
        CONFIG, "https://127.0.0.1:1", base64.b64encode(b"-").decode(), "Fail"
    )
    mine = {"vp-test-conditions": namespace}
    for hook in config["webhooks"]:
        hook["failurePolicy"] = "Fail"
        selector = hook.setdefault("objectSelector", {"matchLabels": {}})
        selector["matchLabels"].update(mine)
    await kube.create(config)
    try:
        await _in_force(kube, namespace)
        yield namespace
    finally:
        await kube.delete(ADMISSION, "MutatingWebhookConfiguration", CONFIG)


async def _in_force(kube: Kube, ns: str) -> None:
    """Wait until the API server calls the new webhooks (its view of them trails the create)."""
    await kube.create(_labelled(workload("Deployment", "probe", ns, 1, V1), ns))
    deadline = time.monotonic() + 30
    for n in itertools.count():
        image = {"spec": {"containers": [{"name": "main", "image": f"probe:{n}"}]}}
        change = {"spec": {"template": image}}
        if await _refused(kube.patch("apps/v1", "Deployment", "probe", ns, change)):
            return
        assert time.monotonic() < deadline, "the API server never called the test's webhooks"
        await asyncio.sleep(0.2)


def _labelled(obj: dict[str, object], namespace: str) -> dict[str, object]:
    meta = obj["metadata"]
    assert isinstance(meta, dict)
    meta.setdefault("labels", {})["vp-test-conditions"] = namespace
    return obj


async def _refused(write: Awaitable[object]) -> str:
    """Why the API server refused the write (empty: it did not)."""
    try:
        await write
    except KubeError as exc:
        return exc.message
    return ""


async def test_only_a_changed_pod_template_of_a_governed_workload_reaches_the_hold_webhook(
    kube: Kube, unserved: str
) -> None:
    ns = unserved
    await kube.create(_labelled(workload("Deployment", "web", ns, 2, V1), ns))
    # What a release writes itself (pause, strategy, replicas) is not sent to the webhook.
    await kube.patch("apps/v1", "Deployment", "web", ns, {"spec": {"paused": True, "replicas": 3}})
    await kube.patch("apps/v1", "Deployment", "web", ns, {"metadata": {"annotations": {"a": "b"}}})
    template = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": V2}]}}}}
    refused = await _refused(kube.patch("apps/v1", "Deployment", "web", ns, template))
    assert "failed calling webhook" in refused, refused
    assert "hold-deployments" in refused


async def test_a_statefulset_scale_up_reaches_the_hold_webhook_and_a_scale_down_does_not(
    kube: Kube, unserved: str
) -> None:
    ns = unserved
    await kube.create(_labelled(workload("StatefulSet", "db", ns, 2, V1), ns))
    await kube.patch("apps/v1", "StatefulSet", "db", ns, {"spec": {"replicas": 1}})
    refused = await _refused(
        kube.patch("apps/v1", "StatefulSet", "db", ns, {"spec": {"replicas": 3}})
    )
    assert "hold-statefulsets" in refused, refused


async def test_any_update_of_a_daemonset_in_a_release_reaches_the_hold_webhook(
    kube: Kube, unserved: str
) -> None:
    ns = unserved
    await kube.create(_labelled(workload("DaemonSet", "agent", ns, 1, V1), ns))
    await kube.patch("apps/v1", "DaemonSet", "agent", ns, {"metadata": {"labels": {"a": "b"}}})
    in_release = {"metadata": {"annotations": {ORIGINAL_ANNOTATION: "{}"}}}
    refused = await _refused(kube.patch("apps/v1", "DaemonSet", "agent", ns, in_release))
    assert "hold-daemonsets" in refused, refused


async def test_only_an_operation_or_its_stamp_reaches_the_stamp_webhook(
    controller: Controller, kube: Kube, unserved: str
) -> None:  # the controller fixture installs the rollout's CRD
    ns = unserved
    cr = "rollout.vela-progressive.io/v1alpha1", "ProgressiveRollout", "web", ns
    await kube.create(_labelled(rollout("web", ns, "Deployment", [{"replicas": "100%"}]), ns))
    # Status, spec and other annotations (KubeVela, Kopf's bookkeeping) pass untouched.
    await kube.patch(*cr, {"metadata": {"annotations": {"kopf.zalando.org/x": "1"}}})
    await kube.patch(*cr, {"spec": {"revision": {"name": "app-v2", "number": 2}}})
    await kube.patch(*cr, {"status": {"phase": "Progressing"}}, subresource="status")
    for change in ({APPROVE_ANNOTATION: "app-v2/1"}, {STAMP_ANNOTATION: "{}"}):
        refused = await _refused(kube.patch(*cr, {"metadata": {"annotations": change}}))
        assert "stamp-operations" in refused, (change, refused)
    # A rollout created with an operation on it is stamped; one without is not sent.
    with_op = _labelled(rollout("api", ns, "Deployment", [{"replicas": "100%"}]), ns)
    with_op["metadata"]["annotations"] = {APPROVE_ANNOTATION: "app-v1/1"}  # type: ignore[index]
    assert "stamp-operations" in await _refused(kube.create(with_op))
