"""The registry of workload kinds is the one list: everything that lists kinds derives from it."""

from __future__ import annotations

import kopf
import pytest

from vela_progressive import handlers
from vela_progressive.core.model import HOLD_LABEL, ReleaseMode, Step, Strategy
from vela_progressive.core.workloads import (
    APP_REVISION_LABEL,
    SUPPORTED_KINDS,
    hold_patch,
    registry,
)
from vela_progressive.shell.kube import KNOWN_KINDS
from vela_progressive.shell.workloads import CANARY_OF_LABEL, adapter_for

STRATEGY = Strategy(steps=(Step(replicas="100%"),))


def test_supported_kinds_are_the_registrys() -> None:
    assert tuple(k.kind for k in registry.REGISTRY) == SUPPORTED_KINDS
    assert SUPPORTED_KINDS == ("Deployment", "StatefulSet", "DaemonSet")


def test_every_kind_names_a_default_style_it_has() -> None:
    for kind in registry.REGISTRY:
        assert kind.default_style in kind.styles
        assert STRATEGY.mode_for(kind.kind) is kind.default_style
        for mode, style in kind.styles.items():
            assert style.mode is mode
            assert registry.style_for(kind.kind, mode) is style
        assert (kind.api_version, kind.kind) in KNOWN_KINDS
        assert KNOWN_KINDS[(kind.api_version, kind.kind)] == (kind.plural, True)


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


def test_kopf_has_a_hold_webhook_and_a_watch_per_kind() -> None:
    registered = kopf.get_default_registry()
    hooks = {
        (h.selector.any_name, h.id)
        for h in registered._webhooks.get_all_handlers()
        if h.fn is handlers.hold
    }
    assert hooks == {(k.plural, f"hold-{k.plural}") for k in registry.REGISTRY}
    watches = {
        (h.selector.any_name, tuple(h.labels or {}))
        for h in registered._watching.get_all_handlers()
        if h.fn is handlers.workload_changed
    }
    released = (HOLD_LABEL, APP_REVISION_LABEL)  # a KubeVela workload whose trait was removed
    assert watches == {
        ("deployments", (HOLD_LABEL,)),
        ("statefulsets", (HOLD_LABEL,)),
        ("daemonsets", (HOLD_LABEL,)),
        ("deployments", released),
        ("statefulsets", released),
        ("daemonsets", released),
        ("deployments", (CANARY_OF_LABEL,)),
    }


def test_every_rule_of_a_kind_reaches_the_merged_rbac() -> None:
    merged = {(r.api_groups, r.resources): set(r.verbs) for r in registry.rbac_rules()}
    for kind in registry.REGISTRY:
        for rule in kind.rbac:
            assert set(rule.verbs) <= merged[(rule.api_groups, rule.resources)]
            assert rule.why
        assert (("apps",), (kind.plural,)) in merged
