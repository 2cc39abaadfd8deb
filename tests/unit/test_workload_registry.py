"""The registry of workload kinds is the one list: everything that lists kinds derives from it."""

from __future__ import annotations

import copy

import kopf
import pytest

from vela_progressive import handlers
from vela_progressive.core import admission
from vela_progressive.core.model import HOLD_LABEL, ReleaseMode, Step, Strategy
from vela_progressive.core.workloads import (
    APP_REVISION_LABEL,
    SUPPORTED_KINDS,
    hold_patch,
    registry,
)
from vela_progressive.shell.kube import KNOWN_KINDS
from vela_progressive.shell.workloads import adapter_for

STRATEGY = Strategy(steps=(Step(replicas="100%"),))


def test_supported_kinds_are_the_registrys() -> None:
    assert tuple(k.key for k in registry.REGISTRY) == SUPPORTED_KINDS
    assert SUPPORTED_KINDS == (
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "CloneSet.apps.kruise.io",
        "StatefulSet.apps.kruise.io",
        "DaemonSet.apps.kruise.io",
    )


def test_a_kind_is_found_by_any_version_it_serves_and_by_its_group() -> None:
    assert registry.find_type("apps/v1", "StatefulSet") is registry.lookup("StatefulSet")
    advanced = registry.lookup("StatefulSet.apps.kruise.io")
    assert registry.find_type("apps.kruise.io/v1beta1", "StatefulSet") is advanced
    assert registry.find_type("apps.kruise.io/v1alpha1", "StatefulSet") is advanced
    assert registry.find_type("apps.kruise.io/v1alpha1", "CloneSet") is not None
    assert registry.find_type("apps.kruise.io/v1beta1", "CloneSet") is None  # not served
    assert registry.find_type("apps/v1beta1", "Deployment") is None


def test_every_kind_names_a_default_style_it_has() -> None:
    for kind in registry.REGISTRY:
        assert kind.default_style in kind.styles
        assert STRATEGY.mode_for(kind.key) is kind.default_style
        for mode, style in kind.styles.items():
            assert style.mode is mode
            assert registry.style_for(kind.key, mode) is style
        for version in kind.api_versions:
            assert KNOWN_KINDS[(version, kind.kind)] == (kind.plural, True)


def test_the_default_styles() -> None:
    assert STRATEGY.mode_for("Deployment") is ReleaseMode.CANARY
    assert STRATEGY.mode_for("StatefulSet") is ReleaseMode.BATCH
    assert STRATEGY.mode_for("CronJob") is ReleaseMode.BATCH


def test_an_unknown_kind_or_style_has_no_adapter() -> None:
    with pytest.raises(ValueError, match="unsupported workload kind CronJob"):
        adapter_for(None, "CronJob", "ns", "x", ReleaseMode.BATCH)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="StatefulSet has no canary release style"):
        adapter_for(None, "StatefulSet", "ns", "x", ReleaseMode.CANARY)  # type: ignore[arg-type]
    assert hold_patch("CronJob", {"spec": {}}, {"spec": {"template": {"a": 1}}}) is None


def test_a_hold_webhook_per_kind_and_a_kopf_watch_per_kind_not_copied() -> None:
    registered = kopf.get_default_registry()
    hooks = {(k.group, k.plural, hook) for hook, k in admission.HOLDS.items()}
    assert hooks == {
        ("apps", "deployments", "hold-deployments"),
        ("apps", "statefulsets", "hold-statefulsets"),
        ("apps", "daemonsets", "hold-daemonsets"),
        ("apps.kruise.io", "clonesets", "hold-clonesets-apps-kruise-io"),
        ("apps.kruise.io", "statefulsets", "hold-statefulsets-apps-kruise-io"),
        ("apps.kruise.io", "daemonsets", "hold-daemonsets-apps-kruise-io"),
    }
    watches = {
        (h.selector.group, h.selector.any_name, tuple(h.labels or {}))
        for h in registered._watching.get_all_handlers()
        if h.fn is handlers.workload_changed
    }
    released = (HOLD_LABEL, APP_REVISION_LABEL)  # a KubeVela workload whose trait was removed
    # The core kinds wake their rollouts from their watch-backed copies (handlers._watch_copies),
    # the others through Kopf: every kind one way, none both.
    copied = {(k.group, k.plural) for k in handlers.COPIED_WORKLOADS}
    assert copied == {("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets")}
    kinds = {(k.group, k.plural) for k in registry.REGISTRY} - copied
    assert watches == {
        *((group, plural, (HOLD_LABEL,)) for group, plural in kinds),
        *((group, plural, released) for group, plural in kinds),
    }


def test_every_rule_of_a_kind_reaches_the_merged_rbac() -> None:
    merged = {(r.api_groups, r.resources): set(r.verbs) for r in registry.rbac_rules()}
    for kind in registry.REGISTRY:
        for rule in kind.rbac:
            assert set(rule.verbs) <= merged[(rule.api_groups, rule.resources)]
            assert rule.why
        assert ((kind.group,), (kind.plural,)) in merged


def _template(image: str) -> dict[str, object]:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }


@pytest.mark.parametrize(
    ("key", "mode"),
    [(kind.key, mode) for kind in registry.REGISTRY for mode in kind.styles],
)
@pytest.mark.parametrize(("new", "old"), [(0, 4), (1, 4), (1, 3), (2, 2), (4, 0)])
def test_every_style_leaves_what_it_read_unchanged(
    key: str, mode: ReleaseMode, new: int, old: int
) -> None:
    """The shell hands a style the objects of its watch-backed copies themselves, not copies
    (``shell.workloads.base.read``): a style that changed one would change the copy."""
    style = registry.style_for(key, mode)
    obs = style.example("shop", "web", 4, _template("v2"), new, old)
    found = [
        [o for o in (*obs.objects, *obs.pods) if o["kind"] == read.kind]
        for read in style.reads(obs.workload)
    ]
    before = copy.deepcopy((obs.workload, obs.objects, obs.pods, found))
    observed = style.observed(obs.workload, found, None)
    for hint in (None, "<stable>"):
        view = style.view(observed, hint)
        style.new_revision_pods(observed, view)
        style.canary_selector(observed, view)
        style.stable_selector(observed, view)
        style.hold(observed, view)
        for n in (0, 1, 2, 4):
            for ready in (False, True):
                writes = style.scale_to(observed, view, n, surge_ready=ready)
                style.view(observed.after_all(writes), hint)  # as WorkloadAdapter.foresee
        style.abort(observed, view)
        style.finalize(observed, view)
    assert (obs.workload, obs.objects, obs.pods, found) == before
