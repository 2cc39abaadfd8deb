"""The controller's RBAC is least privilege, and exactly what docs/reliability.md lists.

The addon's ServiceAccount, ClusterRole and ClusterRoleBinding are applied as vela renders them
(the CUE tier's golden), with only their names moved so they cannot meet the session's own
controller: the ServiceAccount into the test's namespace, the ClusterRole and its binding under
a per-test name. ``kubectl auth can-i --list`` as that ServiceAccount, minus what Kubernetes
grants any ServiceAccount, must equal the documented table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from tests.support.cluster import REPO, Cluster
from tests.support.controller import SERVICE_ACCOUNT, _rbac_objects

DOC = REPO / "docs" / "reliability.md"
#: (resource as can-i prints it, resource names, verbs)
Grant = tuple[str, tuple[str, ...], tuple[str, ...]]
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}


def documented() -> set[Grant]:
    """The rows of the table under ``## Controller permissions``."""
    text = DOC.read_text()
    section = text.split("\n## Controller permissions\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows, f"no permission table in {DOC}"
    out = set()
    for row in rows:
        resource, names, verbs, _why = (c.strip() for c in row.strip("|").split("|"))
        out.add((resource.strip("`"), tuple(re.findall(r"`([^`]+)`", names)), tuple(verbs.split())))
    return out


def can_i_list(cluster: Cluster, user: str, namespace: str) -> set[Grant]:
    """``kubectl auth can-i --list`` as ``user`` in ``namespace``: the resource rows."""
    out = cluster.kubectl("auth", "can-i", "--list", f"--as={user}", "-n", namespace).stdout
    header, *lines = out.splitlines()
    cols = [header.index(h) for h in ("Non-Resource URLs", "Resource Names", "Verbs")]
    grants = set()
    for line in lines:
        resource = line[: cols[0]].strip()
        if not resource:
            continue  # a non-resource URL (discovery, health): not ours to grant
        names = line[cols[1] : cols[2]].strip().strip("[]").split()
        verbs = line[cols[2] :].strip().strip("[]").split()
        grants.add((resource, tuple(names), tuple(verbs)))
    return grants


@pytest.fixture
def controller_identity(cluster: Cluster, namespace: str) -> Iterator[str]:
    """The addon's RBAC as rendered, for a ServiceAccount in ``namespace``; its user name."""
    role = f"vela-progressive-controller-{namespace}"
    docs = []
    for rendered in _rbac_objects():
        obj = {**rendered, "metadata": {**rendered["metadata"]}}
        if obj["kind"] == "ServiceAccount":
            obj["metadata"]["namespace"] = namespace
        else:
            obj["metadata"]["name"] = role
        if obj["kind"] == "ClusterRoleBinding":
            obj["roleRef"] = {**obj["roleRef"], "name": role}
            obj["subjects"] = [{**s, "namespace": namespace} for s in obj["subjects"]]
        docs.append(obj)
    cluster.apply_yaml("\n---\n".join(yaml.safe_dump(d) for d in docs))
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    yield f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT[1]}"
    cluster.kubectl("delete", "clusterrolebinding", role, "--ignore-not-found")
    cluster.kubectl("delete", "clusterrole", role, "--ignore-not-found")


def granted_by_the_addon(cluster: Cluster, user: str, namespace: str) -> set[Grant]:
    """What ``user`` may do in ``namespace`` beyond what any ServiceAccount may do."""
    baseline = can_i_list(cluster, f"system:serviceaccount:{namespace}:nobody", namespace)
    return can_i_list(cluster, user, namespace) - baseline


def test_the_controller_may_do_exactly_what_the_docs_list_and_nothing_more(
    cluster: Cluster, namespace: str, controller_identity: str
) -> None:
    here = granted_by_the_addon(cluster, controller_identity, namespace)
    baseline = can_i_list(cluster, f"system:serviceaccount:{namespace}:nobody", namespace)
    elsewhere = can_i_list(cluster, controller_identity, "default") - baseline
    assert here == elsewhere  # one ClusterRole: the same in every namespace
    expected = documented()
    assert here == expected, (
        f"granted but not documented: {sorted(here - expected)}; "
        f"documented but not granted: {sorted(expected - here)}"
    )


def test_the_controller_has_no_secrets_no_wildcards_and_no_unnamed_cluster_wide_write(
    cluster: Cluster, namespace: str, controller_identity: str
) -> None:
    granted = granted_by_the_addon(cluster, controller_identity, namespace)
    assert granted
    assert not [g for g in granted if g[0].split(".")[0].split("/")[0] == "secrets"]
    assert not [g for g in granted if "*" in g[0] or "*" in g[2]]
    cluster_scoped = set(
        cluster.kubectl("api-resources", "--namespaced=false", "-o", "name").stdout.split()
    )
    unnamed_writes = [
        g
        for g in granted
        if g[0].split("/")[0] in cluster_scoped and WRITE_VERBS & set(g[2]) and not g[1]
    ]
    assert not unnamed_writes

    def can(*args: str) -> bool:
        done = cluster.kubectl("auth", "can-i", *args, f"--as={controller_identity}", check=False)
        return done.stdout.strip() == "yes"

    assert not can("get", "secrets", "--all-namespaces")
    assert not can("list", "secrets", "-n", namespace)
    assert not can("update", "mutatingwebhookconfigurations/someone-elses")
    assert can("update", "mutatingwebhookconfigurations/vela-progressive-hold")
    assert not can("create", "clusterrolebindings")
    assert not can("patch", "nodes")
    assert not can("delete", "namespaces")
    assert not can("list", "services", "-n", namespace)  # read by name only
