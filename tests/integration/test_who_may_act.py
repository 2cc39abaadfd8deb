"""Who may act on a release, with real identities (client certificates from the test world's
CA): RBAC on the rollout decides who may approve; the controller's admission webhook records
who did, and a stamp nobody but the controller could have written is told apart from a forged
one."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.release_kit import V2, Release, eventually
from tests.support.cluster import Cluster
from tests.support.controller import Controller, rendered_objects
from tests.support.users import bind, user_kubeconfig
from vela_progressive.core import identity
from vela_progressive.core.access import OPERATOR, RESOURCE, USER_ROLES, VIEWER
from vela_progressive.core.release import APPROVE_ANNOTATION, STAMP_ANNOTATION
from vela_progressive.shell.kube import Kube

pytestmark = [pytest.mark.integration]

STEPS = [{"replicas": "20%"}, {"replicas": "100%"}]
CLI = Path(sys.executable).parent / "kubectl-progressive"
STAMP = STAMP_ANNOTATION


@pytest.fixture(scope="module")
def user_roles(cluster: Cluster) -> Iterator[None]:
    """The addon's ClusterRoles for people, exactly as it renders them."""
    roles = rendered_objects({"ClusterRole"}, {r.name for r in USER_ROLES})
    assert len(roles) == len(USER_ROLES)
    cluster.apply_yaml("\n---\n".join(yaml.safe_dump(r) for r in roles))
    yield
    for role in USER_ROLES:
        cluster.kubectl("delete", "clusterrole", role.name, "--ignore-not-found")


def progressive(cluster: Cluster, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI as the user of ``kubeconfig``."""
    return subprocess.run(
        [str(CLI), "--kubeconfig", str(kubeconfig), *args],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def events(kube: Kube, ns: str, reason: str) -> list[str]:
    found = await kube.list("v1", "Event", ns)
    return [e["message"] for e in found if e.get("reason") == reason]


async def waiting_for_approval(kube: Kube, namespace: str) -> Release:
    """A 10-pod Deployment released to v2, its step 1 waiting for approval."""
    rel = Release(kube, namespace, "Deployment")
    await rel.create(10, STEPS, releaseMode="batch")
    await rel.set_image(V2, "app-v2")
    await rel.wait_step(1)
    return rel


async def approval_entry(rel: Release) -> dict[str, object] | None:
    timeline = ((await rel.cr()).get("status") or {}).get("timeline") or []
    return next((e for e in timeline if e.get("state") == "Approved"), None)


async def test_a_viewer_is_refused_with_what_to_ask_for_and_an_operator_approves_as_herself(
    controller: Controller,
    kube: Kube,
    cluster: Cluster,
    namespace: str,
    user_roles: None,
    tmp_path: Path,
) -> None:
    alice = user_kubeconfig(cluster, tmp_path, "alice", "shop-team")
    bob = user_kubeconfig(cluster, tmp_path, "bob", "auditors")
    bind(cluster, namespace, "alice", OPERATOR.name)
    bind(cluster, namespace, "bob", VIEWER.name)
    rel = await waiting_for_approval(kube, namespace)

    seen = progressive(cluster, bob, "status", "app", "-n", namespace)
    assert seen.returncode == 0, seen.stderr
    assert "WaitingApproval" in seen.stdout or "waiting for approval" in seen.stdout

    refused = progressive(cluster, bob, "approve", "app", "-n", namespace)
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert f"kubectl progressive approve was refused in namespace {namespace}" in refused.stderr
    assert 'User "bob" cannot patch resource "progressiverollouts"' in refused.stderr
    assert f"approve needs get, list, watch, patch on {RESOURCE}" in refused.stderr
    assert f"--clusterrole={OPERATOR.name}" in refused.stderr
    assert APPROVE_ANNOTATION not in ((await rel.cr())["metadata"].get("annotations") or {})

    approved = progressive(cluster, alice, "approve", "app", "-n", namespace)
    assert approved.returncode == 0, approved.stderr
    await rel.wait_phase("Healthy")

    entry = await approval_entry(rel)
    assert entry is not None
    by, saw = entry["by"], entry["seen"]
    assert isinstance(by, dict)
    assert isinstance(saw, dict)
    assert (by["user"], by["verified"], by["value"]) == ("alice", True, "app-v2/1")
    assert "shop-team" in by["groups"]
    assert saw == {"newPods": 2, "newReady": 2, "replicas": 10}
    (message,) = await events(kube, namespace, "Approved")
    assert f"step 1/2 approved by alice at {by['at']}" in message
    assert "saw 2/10 pods new (2 Ready)" in message

    shown = progressive(cluster, bob, "status", "app", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    assert "approve    1     alice" in shown.stdout


async def test_the_standard_edit_role_may_operate_releases_and_view_may_only_read(
    cluster: Cluster, namespace: str, user_roles: None
) -> None:
    bind(cluster, namespace, "dave", "edit")
    bind(cluster, namespace, "erin", "view")

    def can(user: str, verb: str) -> bool:
        done = cluster.kubectl(
            "auth", "can-i", verb, RESOURCE, "-n", namespace, f"--as={user}", check=False
        )
        return done.stdout.strip() == "yes"

    # the clusterrole-aggregation controller copies the rules in a moment
    cluster.wait_for(lambda: can("dave", "patch"), 30, "edit to include patch on rollouts")
    cluster.wait_for(lambda: can("erin", "list"), 30, "view to include list on rollouts")
    assert not can("erin", "patch")
    assert not can("erin", "delete")
    assert not can("dave", "delete")  # operating a release never needs delete


async def test_a_client_written_stamp_is_replaced_by_the_webhook_and_unverified_if_it_was_down(
    controller: Controller, kube: Kube, namespace: str
) -> None:
    rel = await waiting_for_approval(kube, namespace)
    forged = json.dumps(
        {
            "approve": {
                "value": "app-v2/1",
                "user": "the-boss",
                "groups": ["system:masters"],
                "at": "2026-01-01T00:00:00Z",
                "mac": "0" * 64,
            }
        }
    )
    # With the webhook up, a client's stamp never lands: the controller's replaces it.
    await rel.annotate(STAMP, forged)
    assert STAMP not in ((await rel.cr())["metadata"].get("annotations") or {})

    # With the controller (and so the fail-open webhook) down, an admin writes the approval and
    # a stamp naming someone else; the controller acts on the approval but does not believe it.
    controller.kill()
    try:
        await rel.kube.patch(
            "rollout.vela-progressive.io/v1alpha1",
            "ProgressiveRollout",
            rel.name,
            namespace,
            {"metadata": {"annotations": {APPROVE_ANNOTATION: "app-v2/1", STAMP: forged}}},
        )
        stored = (await rel.cr())["metadata"]["annotations"]
        assert stored[STAMP] == forged  # the webhook really was down
    finally:
        controller.start()
    await rel.wait_phase("Healthy")
    entry = await approval_entry(rel)
    assert entry is not None
    by = entry["by"]
    assert isinstance(by, dict)
    assert (by["user"], by["verified"], by["problem"]) == ("the-boss", False, identity.FORGED)
    messages = await eventually(
        lambda: events(kube, namespace, "ApprovedUnverified"), 10, "an ApprovedUnverified Event"
    )
    assert (
        "approved by the-boss (unverified: the stamp's signature is not the controller's"
        in (messages[0])
    )
