"""Shared traffic machinery: merge patches, saved originals, the order of operations, previews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.golden import assert_matches_golden

from vela_progressive.core.model import Match, TrafficRouting
from vela_progressive.core.traffic import (
    ORIGINAL_ANNOTATION,
    RouteState,
    TrafficConfigError,
    check_routings,
    provider_for,
)
from vela_progressive.core.traffic.original import original_of, patched
from vela_progressive.core.traffic.patch import apply_merge_patch, diff, update_patch
from vela_progressive.core.traffic.preview import PREVIEW_ANNOTATION, preview_step

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "traffic" / "preview"

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "resourceVersion": "5",
        "annotations": {"team": "checkout"},
    },
    "spec": {"clusterIP": "10.0.0.9", "selector": {"app": "web"}, "ports": [{"port": 80}]},
}


# ------------------------------------------------------------------ merge patches
@pytest.mark.parametrize(
    ("current", "desired"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 4}}),
        ({"list": [1, 2, 3]}, {"list": [3]}),
        ({"a": {"b": 1}}, {"a": "flat"}),
        ({}, {"new": {"deep": [1]}}),
    ],
)
def test_merge_patch_turns_current_into_desired(current: Any, desired: Any) -> None:
    assert apply_merge_patch(current, diff(current, desired)) == desired


def test_update_patch_is_empty_when_nothing_differs() -> None:
    assert update_patch(SERVICE, SERVICE, owned=False) == {}


def test_update_patch_carries_the_resource_version_read() -> None:
    desired = {**SERVICE, "spec": {**SERVICE["spec"], "selector": {"app": "web", "h": "1"}}}
    patch = update_patch(SERVICE, desired, owned=False)
    assert patch == {"metadata": {"resourceVersion": "5"}, "spec": {"selector": {"h": "1"}}}


def test_update_patch_of_an_owned_object_keeps_fields_the_server_filled_in() -> None:
    rendered = {**SERVICE, "spec": {"selector": {"app": "web2"}, "ports": [{"port": 80}]}}
    patch = update_patch(SERVICE, rendered, owned=True)
    assert patch["spec"] == {"selector": {"app": "web2"}}
    assert "clusterIP" not in patch["spec"]


def test_update_patch_removes_annotations_that_are_gone() -> None:
    desired = {**SERVICE, "metadata": {**SERVICE["metadata"], "annotations": {}}}
    assert update_patch(SERVICE, desired, owned=False)["metadata"]["annotations"] == {"team": None}


# ------------------------------------------------------------------ saved originals
def _pin(obj: dict[str, Any]) -> None:
    obj["spec"]["selector"]["h"] = "1"


def test_patched_object_saves_the_original_and_original_of_gives_it_back() -> None:
    changed = patched(SERVICE, _pin)
    assert changed["spec"]["selector"] == {"app": "web", "h": "1"}
    assert ORIGINAL_ANNOTATION in changed["metadata"]["annotations"]
    restored = original_of(changed)
    assert restored["spec"] == SERVICE["spec"]
    assert restored["metadata"]["annotations"] == {"team": "checkout"}


def test_touched_annotations_are_saved_and_restored_including_absent_ones() -> None:
    def annotate(obj: dict[str, Any]) -> None:
        obj["metadata"]["annotations"].update(team="release", extra="x")

    changed = patched(SERVICE, annotate, touched_annotations=("team", "extra"))
    assert original_of(changed)["metadata"]["annotations"] == {"team": "checkout"}


def test_a_change_that_changes_nothing_leaves_no_annotation() -> None:
    assert patched(SERVICE, lambda obj: None) == original_of(SERVICE)


def test_a_damaged_saved_original_is_reported_with_the_object() -> None:
    broken = {
        **SERVICE,
        "metadata": {**SERVICE["metadata"], "annotations": {ORIGINAL_ANNOTATION: "{"}},
    }
    with pytest.raises(TrafficConfigError, match=r"Service shop/web: annotation .*original-spec"):
        original_of(broken)


# ------------------------------------------------------------------ routings together
def test_the_same_object_twice_is_reported() -> None:
    web = TrafficRouting.from_dict({"type": "gateway"}, "web")
    (problem,) = check_routings([web, web])
    assert problem.startswith("trafficRoutings[1] changes the same gateway object 'web'")


def test_unknown_routing_type_is_a_clear_error() -> None:
    with pytest.raises(TrafficConfigError, match="unknown type 'nginx'"):
        provider_for(TrafficRouting(type="nginx", service="web"))


def test_weights_outside_0_to_100_are_refused() -> None:
    with pytest.raises(TrafficConfigError, match=r"within 0\.\.100"):
        RouteState(101)


# ------------------------------------------------------------------ offline preview
HEADER = Match.from_dict({"headers": [{"name": "x-canary", "value": "yes"}]})
PREVIEWS: dict[str, tuple[dict[str, Any], RouteState]] = {
    "ingress-nginx-weight-20": ({"type": "ingress"}, RouteState(20)),
    "aliyun-alb-header": ({"type": "aliyun-alb"}, RouteState(0, (HEADER,))),
    "gateway-header-and-weight": ({"type": "gateway"}, RouteState(30, (HEADER,))),
    "istio-host-weight-50": ({"type": "istio"}, RouteState(50)),
    "istio-subset-header": (
        {"type": "istio", "destinationRuleName": "web-dr"},
        RouteState(0, (HEADER,)),
    ),
}


@pytest.mark.parametrize("case", sorted(PREVIEWS))
def test_preview_of_a_step_matches_golden(case: str) -> None:
    raw, route = PREVIEWS[case]
    objects = preview_step(TrafficRouting.from_dict(raw, "web"), "shop", route)
    assert objects
    assert all(PREVIEW_ANNOTATION in o["metadata"]["annotations"] for o in objects)
    assert_matches_golden(yaml.safe_dump_all(objects, sort_keys=True), GOLDEN / f"{case}.yaml")


def test_preview_reports_routes_the_provider_cannot_serve() -> None:
    routing = TrafficRouting.from_dict({"type": "gateway"}, "web")
    cookie = Match.from_dict({"cookies": [{"name": "beta"}]})
    with pytest.raises(TrafficConfigError, match="cannot route by cookie"):
        preview_step(routing, "shop", RouteState(0, (cookie,)))


def test_preview_of_an_all_stable_step_shows_only_the_services() -> None:
    routing = TrafficRouting.from_dict({"type": "gateway"}, "web")
    kinds = [o["kind"] for o in preview_step(routing, "shop", RouteState())]
    assert kinds == ["Service", "Service"]
