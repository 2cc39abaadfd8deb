"""OpenKruise kinds' pure compute: CloneSet, Advanced StatefulSet and Advanced DaemonSet.

The writes each style computes, applied to its example of the workload (``Observed.after``
simulates the API server's merge). The real kruise-manager runs them in
tests/integration/test_kruise_workloads.py.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.workloads import (
    CONTROLLER_REVISION_HASH,
    ORIGINAL_ANNOTATION,
    POD_TEMPLATE_HASH,
    Observed,
    hold_patch,
    registry,
)
from vela_progressive.core.workloads.advanced_daemonset import HELD_PARTITION
from vela_progressive.core.workloads.cloneset import partition_pods, short_hash

Obj = dict[str, Any]
NS, NAME = "shop", "cart"
TEMPLATE: Obj = {
    "metadata": {"labels": {"app": NAME}},
    "spec": {"containers": [{"name": "cart", "image": "cart:v2"}]},
}
CLONESET = registry.style_for("CloneSet.apps.kruise.io", ReleaseMode.BATCH)
ADVANCED_STS = registry.style_for("StatefulSet.apps.kruise.io", ReleaseMode.BATCH)
ADVANCED_DS = registry.style_for("DaemonSet.apps.kruise.io", ReleaseMode.BATCH)


def strategy(obs: Observed) -> Obj:
    value: Obj = obs.workload["spec"]["updateStrategy"]
    return value


# ---------------------------------------------------------------------------------- CloneSet
def test_cloneset_partition_counts_the_pods_kept_on_the_old_revision() -> None:
    start = CLONESET.example(NS, NAME, 10, TEMPLATE, 0, 10)
    held = start.after_all(CLONESET.hold(start, CLONESET.view(start, None)))
    assert strategy(held)["partition"] == "100%"
    saved = json.loads(held.workload["metadata"]["annotations"][ORIGINAL_ANNOTATION])
    assert saved["updateStrategy"] == strategy(start), "the user's strategy is saved"
    for new_pods, partition in ((2, 8), (5, 5), (10, 0)):
        view = CLONESET.view(held, None)
        held = held.after_all(CLONESET.scale_to(held, view, new_pods, surge_ready=False))
        assert strategy(held)["partition"] == partition


def test_cloneset_percent_partitions_round_up_as_the_controller_does() -> None:
    assert partition_pods("100%", 7) == 7
    assert partition_pods("50%", 5) == 3
    assert partition_pods(4, 10) == 4


def test_cloneset_hold_webhook_saves_the_users_strategy_and_holds_every_pod() -> None:
    old = CLONESET.example(NS, NAME, 10, TEMPLATE, 0, 10).workload
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "cart:v3"
    patch = hold_patch("CloneSet.apps.kruise.io", old, new)
    assert patch is not None
    assert patch["spec"] == {"updateStrategy": {"partition": "100%"}}
    saved = json.loads(patch["metadata"]["annotations"][ORIGINAL_ANNOTATION])
    assert saved == {"updateStrategy": old["spec"]["updateStrategy"]}
    assert hold_patch("CloneSet.apps.kruise.io", old, old) is None, "no template change"


def test_cloneset_scale_up_in_a_release_keeps_the_new_pods_at_the_step() -> None:
    # The partition counts the pods kept on old revisions: unheld, a scale-up from 10 to 12 at
    # step 2 (partition 8) would make the CloneSet controller create both pods on v3.
    example = CLONESET.example(NS, NAME, 10, TEMPLATE, 2, 8)
    assert strategy(example)["partition"] == 8
    mid = example.workload
    scaled = copy.deepcopy(mid)
    scaled["spec"]["replicas"] = 12
    assert hold_patch("CloneSet.apps.kruise.io", mid, scaled) == {
        "spec": {"updateStrategy": {"partition": 10}}
    }, "12 - 10: still the step's 2 new pods"
    assert hold_patch("CloneSet.apps.kruise.io", scaled, mid) is None, "a scale-down: no new pod"
    plain = CLONESET.example(NS, NAME, 10, TEMPLATE, 0, 10).workload
    bigger = copy.deepcopy(plain)
    bigger["spec"]["replicas"] = 12
    assert hold_patch("CloneSet.apps.kruise.io", plain, bigger) is None, "not in a release"


def test_cloneset_canary_and_stable_services_select_the_short_hash() -> None:
    obs = CLONESET.example(NS, NAME, 10, TEMPLATE, 2, 8)
    view = CLONESET.view(obs, None)
    canary = CLONESET.canary_selector(obs, view)
    assert canary == {POD_TEMPLATE_HASH: short_hash(view.update_revision)}
    selected = [
        p
        for p in obs.pods
        if p["metadata"]["labels"][POD_TEMPLATE_HASH] == canary[POD_TEMPLATE_HASH]
    ]
    assert len(selected) == view.new_pods == 2
    stable = CLONESET.stable_selector(obs, view)
    assert stable == {POD_TEMPLATE_HASH: short_hash(view.stable_revision or "")}


def test_cloneset_abort_holds_every_pod_and_deletes_those_off_the_stable_revision() -> None:
    obs = CLONESET.example(NS, NAME, 10, TEMPLATE, 5, 5)
    view = CLONESET.view(obs, None)
    writes = CLONESET.abort(obs, view)
    patches = [w for w in writes if w.verb == "patch"]
    deletes = [w for w in writes if w.verb == "delete"]
    assert [p.body["spec"]["updateStrategy"]["partition"] for p in patches if p.body] == ["100%"]
    assert len(deletes) == 5
    new = {
        p["metadata"]["name"]
        for p in obs.pods
        if p["metadata"]["labels"][CONTROLLER_REVISION_HASH] == view.update_revision
    }
    assert {d.name for d in deletes} == new


def test_cloneset_hand_back_restores_the_users_strategy_exactly() -> None:
    obs = CLONESET.example(NS, NAME, 10, TEMPLATE, 10, 0)
    original = json.loads(obs.workload["metadata"]["annotations"][ORIGINAL_ANNOTATION])
    writes, done = CLONESET.finalize(obs, CLONESET.view(obs, None))
    assert not done
    after = obs.after_all(writes)
    assert strategy(after) == original["updateStrategy"]
    assert ORIGINAL_ANNOTATION not in (after.workload["metadata"].get("annotations") or {})
    again, done = CLONESET.finalize(after, CLONESET.view(after, None))
    assert again == ()
    assert done


def test_cloneset_pods_of_a_superseded_revision_are_deleted_mid_release() -> None:
    obs = CLONESET.example(NS, NAME, 10, TEMPLATE, 2, 8)
    view = CLONESET.view(obs, None)
    stray = copy.deepcopy(obs.pods[5])
    stray["metadata"]["name"] = f"{NAME}-stray"
    stray["metadata"]["labels"][CONTROLLER_REVISION_HASH] = f"{NAME}-superseded"
    obs = Observed(obs.workload, pods=(*obs.pods[:5], stray, *obs.pods[6:]))
    deletes = [w for w in CLONESET.scale_to(obs, view, 2, surge_ready=False) if w.verb == "delete"]
    assert [d.name for d in deletes] == [f"{NAME}-stray"]


# ---------------------------------------------------------------------- Advanced StatefulSet
def test_advanced_statefulset_moves_the_partition_on_its_own_api_version() -> None:
    start = ADVANCED_STS.example(NS, NAME, 10, TEMPLATE, 0, 10)
    assert start.workload["apiVersion"] == "apps.kruise.io/v1beta1"
    view = ADVANCED_STS.view(start, None)
    (write,) = ADVANCED_STS.scale_to(start, view, 2, surge_ready=False)
    assert write.api_version == "apps.kruise.io/v1beta1"
    assert write.body is not None
    assert write.body["spec"]["updateStrategy"]["rollingUpdate"] == {"partition": 8}


def test_an_advanced_statefulset_in_v1alpha1_is_the_same_kind() -> None:
    entry = registry.find_type("apps.kruise.io/v1alpha1", "StatefulSet")
    assert entry is registry.lookup("StatefulSet.apps.kruise.io")
    assert entry.ordinal_pods


# ------------------------------------------------------------------------ Advanced DaemonSet
def test_advanced_daemonset_is_held_at_a_partition_beyond_any_node_count() -> None:
    start = ADVANCED_DS.example(NS, NAME, 10, TEMPLATE, 0, 10)
    held = start.after_all(ADVANCED_DS.hold(start, ADVANCED_DS.view(start, None)))
    rolling = strategy(held)["rollingUpdate"]
    assert rolling["partition"] == HELD_PARTITION
    assert rolling["rollingUpdateType"] == "Standard", "the user's fields stay"
    assert ADVANCED_DS.view(held, None).held


@pytest.mark.parametrize(("new_pods", "partition"), [(2, 8), (5, 5), (10, 0)])
def test_advanced_daemonset_steps_lower_the_partition_and_delete_nothing(
    new_pods: int, partition: int
) -> None:
    obs = ADVANCED_DS.example(NS, NAME, 10, TEMPLATE, 2, 8)
    view = ADVANCED_DS.view(obs, None)
    writes = ADVANCED_DS.scale_to(obs, view, new_pods, surge_ready=False)
    assert all(w.verb == "patch" for w in writes)
    after = obs.after_all(writes)
    assert strategy(after)["rollingUpdate"]["partition"] == partition


def test_advanced_daemonset_step_already_in_force_writes_nothing() -> None:
    obs = ADVANCED_DS.example(NS, NAME, 10, TEMPLATE, 2, 8)
    view = ADVANCED_DS.view(obs, None)
    assert ADVANCED_DS.scale_to(obs, view, 2, surge_ready=False) == ()


def test_advanced_daemonset_abort_puts_the_stable_template_back_and_holds_every_pod() -> None:
    obs = ADVANCED_DS.example(NS, NAME, 10, TEMPLATE, 5, 5)
    view = ADVANCED_DS.view(obs, None)
    (write,) = ADVANCED_DS.abort(obs, view)
    after = obs.after(write)
    assert strategy(after)["rollingUpdate"]["partition"] == HELD_PARTITION
    template = after.workload["spec"]["template"]
    assert template["spec"] == "<the stable pod spec>", "the stable template is back"


def test_advanced_daemonset_hand_back_restores_the_users_strategy_exactly() -> None:
    obs = ADVANCED_DS.example(NS, NAME, 10, TEMPLATE, 10, 0)
    original = json.loads(obs.workload["metadata"]["annotations"][ORIGINAL_ANNOTATION])
    writes, _ = ADVANCED_DS.finalize(obs, ADVANCED_DS.view(obs, None))
    after = obs.after_all(writes)
    assert strategy(after) == original["updateStrategy"]


def test_the_advanced_daemonset_webhook_holds_a_template_change() -> None:
    old = ADVANCED_DS.example(NS, NAME, 10, TEMPLATE, 0, 10).workload
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "cart:v3"
    patch = hold_patch("DaemonSet.apps.kruise.io", old, new)
    assert patch is not None
    assert patch["spec"]["updateStrategy"]["rollingUpdate"] == {"partition": HELD_PARTITION}
    # the native DaemonSet's rule is a different one (OnDelete)
    native = hold_patch("DaemonSet", old, new)
    assert native is not None
    assert native["spec"]["updateStrategy"]["type"] == "OnDelete"


def test_a_reapply_without_the_webhooks_defaults_is_not_held_but_a_new_image_is() -> None:
    # KubeVela applies the manifest as written; kruise's webhook fills the defaults in later.
    old = CLONESET.example(NS, NAME, 10, TEMPLATE, 0, 10).workload
    old["spec"]["template"]["metadata"]["creationTimestamp"] = None
    old["spec"]["template"]["spec"].update(dnsPolicy="ClusterFirst", restartPolicy="Always")
    container = old["spec"]["template"]["spec"]["containers"][0]
    container.update(imagePullPolicy="Always", terminationMessagePath="/dev/termination-log")
    container["ports"] = [{"containerPort": 9898, "protocol": "TCP"}]
    raw = copy.deepcopy(old)
    raw["spec"]["template"] = copy.deepcopy(TEMPLATE)
    raw["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 9898}]
    assert hold_patch("CloneSet.apps.kruise.io", old, raw) is None
    raw["spec"]["template"]["spec"]["containers"][0]["image"] = "cart:v3"
    assert hold_patch("CloneSet.apps.kruise.io", old, raw) is not None
