"""``vela addon disable vela-progressive``: refused while an Application uses the trait, and
once none does it removes everything enabling added (except the CRD, kept on purpose).

The module is named to run last in the tier (pytest runs files in name order): the other e2e
tests need the addon. Afterwards the addon is enabled again and the session's controller
restarted, so the tiers that run later in the same session (integration) find them as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.addon import ADDON, ADDON_APP, CRD, TRAIT, Addon
from tests.e2e.kit import Release
from tests.support.cluster import Cluster
from tests.support.controller import WEBHOOK_CONFIG, Controller

pytestmark = [pytest.mark.e2e]

#: Kinds an addon's objects can have besides what its Application's ResourceTrackers list
#: (definitions and their schema ConfigMaps are owned by the addon Application).
OWNED_KINDS = (
    "traitdefinitions.core.oam.dev",
    "componentdefinitions.core.oam.dev",
    "policydefinitions.core.oam.dev",
    "workflowstepdefinitions.core.oam.dev",
    "configmaps",
    "secrets",
)


def _items(cluster: Cluster, *args: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", *args, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out).get("items", [])
    return items


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']}"


def addon_objects(cluster: Cluster) -> dict[str, str]:
    """Everything the addon installed: ``{"Kind ns/name": kubectl resource}``.

    The addon Application's ResourceTracker entries, plus the objects in vela-system owned by
    the addon Application or by one of those (the TraitDefinition's schema ConfigMaps).
    """
    found: dict[str, str] = {}
    trackers = _items(
        cluster, "resourcetrackers.core.oam.dev", "-l", f"app.oam.dev/name={ADDON_APP}"
    )
    for tracker in trackers:
        for res in tracker["spec"].get("managedResources", []):
            if res.get("deleted"):
                continue
            group = res.get("apiVersion", "").rpartition("/")[0]
            kind = f"{res['kind'].lower()}{'.' + group if group else ''}"
            ns = res.get("namespace") or ""
            found[f"{res['kind']} {ns}/{res['name']}"] = f"{kind}/{res['name']}" + (
                f" -n {ns}" if ns else ""
            )
    app = _items(cluster, "applications.core.oam.dev", "-n", "vela-system")
    owners = {a["metadata"]["uid"] for a in app if a["metadata"]["name"] == ADDON_APP}
    candidates = [o for kind in OWNED_KINDS for o in _items(cluster, kind, "-n", "vela-system")]
    grew = True
    while grew:  # owner chains: the app owns the TraitDefinition, which owns its ConfigMaps
        grew = False
        for obj in candidates:
            refs = {r["uid"] for r in obj["metadata"].get("ownerReferences", [])}
            if refs & owners and obj["metadata"]["uid"] not in owners:
                owners.add(obj["metadata"]["uid"])
                kind = obj["kind"].lower()
                group = obj["apiVersion"].rpartition("/")[0]
                resource = f"{kind}{'.' + group if group else ''}/{obj['metadata']['name']}"
                found[_key(obj)] = f"{resource} -n vela-system"
                grew = True
    return found


def exists(cluster: Cluster, resource: str) -> bool:
    return cluster.kubectl("get", *resource.split(), "-o", "name", check=False).returncode == 0


def apps_using_the_trait(cluster: Cluster) -> list[str]:
    return [
        f"{a['metadata']['namespace']}/{a['metadata']['name']}"
        for a in _items(cluster, "applications.core.oam.dev", "-A")
        if any(
            t.get("type") == TRAIT
            for c in a["spec"].get("components", [])
            for t in c.get("traits", []) or []
        )
    ]


def restore(addon: Addon, controller: Controller) -> None:
    """Enable the addon again; a controller that authenticates as the addon's ServiceAccount
    (recreated, so its old token is void) gets a new token and a restart."""
    addon.enable()
    controller.restart_with_new_token()


async def test_disable_is_refused_while_an_application_uses_the_trait_then_removes_the_addon(
    cluster: Cluster, release_of: Callable[[str], Release], addon: Addon, controller: Controller
) -> None:
    try:
        await _disable(cluster, release_of, addon)
    finally:
        restore(addon, controller)


async def _disable(cluster: Cluster, release_of: Callable[[str], Release], addon: Addon) -> None:
    rel = release_of("05-manual-approval")
    await rel.deploy_v1(replicas=4)

    refused = cluster.vela("addon", "disable", ADDON, check=False, input="")
    assert refused.returncode != 0, refused.stdout
    assert f"{rel.ns}/{rel.app}" in refused.stdout + refused.stderr
    assert addon.enabled(), "a refused disable removed the trait"

    cluster.kubectl("delete", "application", rel.app, "-n", rel.ns, "--wait=true", timeout=120)
    # Applications of earlier tests go away with their namespaces; wait for all of them.
    cluster.wait_for(
        lambda: not apps_using_the_trait(cluster), 180, "no Application using the trait"
    )

    installed = addon_objects(cluster)
    assert any(k.startswith("TraitDefinition ") for k in installed), installed
    assert any(k.startswith("CustomResourceDefinition ") for k in installed), installed
    cluster.vela("addon", "disable", ADDON, input="", timeout=180)

    kept = {k: r for k, r in installed.items() if k.startswith("CustomResourceDefinition ")}
    removed = {k: r for k, r in installed.items() if k not in kept}
    cluster.wait_for(
        lambda: not [k for k, r in removed.items() if exists(cluster, r)],
        120,
        f"every object the addon installed to be deleted: {sorted(removed)}",
    )
    assert not exists(cluster, f"applications.core.oam.dev/{ADDON_APP} -n vela-system")
    # Kept on purpose (garbage-collect policy "never"): deleting it would delete every rollout.
    assert exists(cluster, f"crd/{CRD}")
    assert list(kept) == [f"CustomResourceDefinition /{CRD}"]
    # The local controller's own webhook registration is the controller's, not the addon's.
    assert exists(cluster, f"mutatingwebhookconfiguration/{WEBHOOK_CONFIG}")
