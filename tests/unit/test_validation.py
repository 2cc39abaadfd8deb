"""The trait properties validator: the invalid corpus, defaults, paths, messages, Applications."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from vela_progressive.core.model import Strategy
from vela_progressive.core.validation import (
    InvalidSpec,
    Problem,
    apply_defaults,
    resolve_strategy,
    validate_application,
    validate_properties,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CORPUS = sorted((FIXTURES / "invalid").glob("*.yaml"))
APPS = sorted((FIXTURES / "apps").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path.name}: not a mapping"
    return loaded


def _problems(props: object, **kwargs: Any) -> str:
    with pytest.raises(InvalidSpec) as caught:
        validate_properties(props, **kwargs)
    return str(caught.value)


# --------------------------------------------------------------------------------------------
# The shared invalid corpus (the CUE tier runs the same files through vela dry-run)


def test_the_invalid_corpus_has_at_least_forty_cases() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_case_is_well_formed(path: Path) -> None:
    case = _load(path)
    assert set(case) == {"description", "properties", "error"}, path.name
    assert isinstance(case["description"], str)
    assert case["description"]
    assert isinstance(case["error"], str)
    assert case["error"]
    assert re.fullmatch(r"\d\d-[a-z0-9-]+", path.stem), "files are named NN-short-name.yaml"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_invalid_properties_are_rejected_with_the_expected_message(path: Path) -> None:
    case = _load(path)
    message = _problems(case["properties"], component="web")
    assert case["error"] in message, f"{path.name}: {case['description']}\n{message}"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_every_problem_line_names_a_field_and_a_fix(path: Path) -> None:
    case = _load(path)
    with pytest.raises(InvalidSpec) as caught:
        validate_properties(case["properties"], component="web")
    for problem in caught.value.problems:
        assert problem.message, problem
        assert problem.fix, problem
        assert str(problem).startswith(f"{problem.path or 'properties'}: ")
        assert " — " in str(problem)


def test_corpus_error_strings_are_distinct() -> None:
    errors = [_load(p)["error"] for p in CORPUS]
    assert len(errors) == len(set(errors))


# --------------------------------------------------------------------------------------------
# Valid input and defaults


VALID: dict[str, Any] = {
    "canary": {
        "steps": [
            {"replicas": "20%", "weight": 20},
            {"replicas": "50%", "weight": 50, "duration": 60},
            {"replicas": "100%", "weight": 100},
        ],
        "trafficRoutings": [{"type": "ingress", "ingressName": "web"}],
    }
}


def test_valid_properties_get_the_schema_defaults() -> None:
    props = validate_properties(VALID, component="web")
    assert props["auto"] is False
    assert props["progressDeadlineSeconds"] == 600
    assert props["canary"]["disableGenerateCanaryService"] is False
    routing = props["canary"]["trafficRoutings"][0]
    assert routing["gracePeriodSeconds"] == 5
    assert routing["ingressClass"] == "nginx"


def test_defaults_are_applied_inside_array_items_and_through_refs() -> None:
    props = validate_properties(
        {
            "canary": {
                "steps": [
                    {
                        "replicas": 1,
                        "matches": [
                            {"headers": [{"name": "x-canary", "value": "1"}]},
                            {"cookies": [{"name": "beta"}]},
                        ],
                    }
                ],
                "trafficRoutings": [{}],
            }
        }
    )
    matches = props["canary"]["steps"][0]["matches"]
    assert matches[0]["headers"][0]["type"] == "Exact"
    assert matches[1]["cookies"][0]["value"] == "always"
    assert props["canary"]["trafficRoutings"][0]["type"] == "ingress"


def test_defaults_never_create_absent_optional_objects() -> None:
    props = validate_properties({"canary": {"steps": [{"replicas": 1}]}})
    assert "trafficRoutings" not in props["canary"]
    assert "workloadType" not in props
    assert "matches" not in props["canary"]["steps"][0]


def test_user_values_win_over_defaults() -> None:
    props = validate_properties(
        {"auto": True, "progressDeadlineSeconds": 30, "canary": {"steps": [{"replicas": 1}]}}
    )
    assert props["auto"] is True
    assert props["progressDeadlineSeconds"] == 30


def test_validation_does_not_change_its_input() -> None:
    before = copy.deepcopy(VALID)
    validate_properties(VALID)
    assert before == VALID


def test_apply_defaults_of_a_scalar_is_the_scalar() -> None:
    assert apply_defaults(3, {"type": "integer", "default": 1}) == 3


def test_validated_properties_feed_the_typed_strategy() -> None:
    strategy = Strategy.from_properties(validate_properties(VALID, component="web"), "web")
    assert [s.weight for s in strategy.steps] == [20, 50, 100]
    assert strategy.routings[0].object_name == "web"


def test_resolve_strategy_names_every_routing_object_after_the_component() -> None:
    props = validate_properties(
        {
            "canary": {
                "steps": [{"weight": 10}],
                "trafficRoutings": [
                    {"type": "ingress"},
                    {"type": "gateway"},
                    {"type": "istio", "service": "api"},
                ],
            }
        },
        component="web",
    )
    routings = resolve_strategy(props, "web")["canary"]["trafficRoutings"]
    assert (routings[0]["ingressName"], routings[0]["service"]) == ("web", "web")
    assert routings[1]["gatewayHTTPRouteName"] == "web"
    assert (routings[2]["virtualServiceName"], routings[2]["service"]) == ("web", "api")
    assert "ingressName" not in props["canary"]["trafficRoutings"][0], "input left alone"


@pytest.mark.parametrize(
    "props",
    [
        # a last step below 100% is allowed: the release finalises after it
        {"canary": {"steps": [{"replicas": "20%"}, {"replicas": "50%"}]}},
        # mixed units are left to the planner (it knows the real replicas)
        {"canary": {"steps": [{"replicas": 5}, {"replicas": "20%"}]}},
        # equal consecutive values never decrease
        {
            "canary": {
                "steps": [{"replicas": 2, "weight": 10}, {"replicas": 2, "weight": 10}],
                "trafficRoutings": [{"type": "ingress"}],
            }
        },
        # weight 0 with pods: warm the new version up without traffic
        {"canary": {"steps": [{"replicas": 1, "weight": 0}, {"replicas": "100%"}]}},
        # istio serves every match feature
        {
            "canary": {
                "steps": [
                    {
                        "replicas": 1,
                        "matches": [
                            {
                                "headers": [
                                    {"name": "a", "value": "1"},
                                    {"name": "b", "value": "2"},
                                ],
                                "cookies": [{"name": "c", "value": "x"}],
                                "queryParams": [{"name": "q", "value": "1"}],
                                "path": {"value": "/api"},
                            }
                        ],
                    }
                ],
                "trafficRoutings": [{"type": "istio"}],
            }
        },
        # NGINX: one header and one cookie, each in its own match entry, regex header
        {
            "canary": {
                "steps": [
                    {
                        "replicas": 1,
                        "matches": [
                            {
                                "headers": [
                                    {
                                        "name": "ua",
                                        "value": ".*Mobile.*",
                                        "type": "RegularExpression",
                                    }
                                ]
                            },
                            {"cookies": [{"name": "beta"}]},
                        ],
                    }
                ],
                "trafficRoutings": [{"type": "ingress"}],
            }
        },
        # subsets route without the canary Service
        {
            "canary": {
                "steps": [{"replicas": 1, "weight": 10}],
                "disableGenerateCanaryService": True,
                "trafficRoutings": [{"type": "istio", "destinationRuleName": "web"}],
            }
        },
        {"stepPartition": 2, "canary": {"steps": [{"replicas": 1}, {"replicas": "100%"}]}},
        {"releaseMode": "batch", "canary": {"steps": [{"weight": 50}]}},
        {"failureThreshold": "10%", "canary": {"steps": [{"replicas": 1}]}},
    ],
)
def test_valid_edge_cases_are_accepted(props: dict[str, Any]) -> None:
    validate_properties(props, component="web")


def test_two_routings_of_different_objects_are_accepted() -> None:
    validate_properties(
        {
            "canary": {
                "steps": [{"weight": 10}],
                "trafficRoutings": [
                    {"type": "ingress", "ingressName": "public"},
                    {"type": "ingress", "ingressName": "private"},
                    {"type": "gateway", "gatewayHTTPRouteName": "public"},
                ],
            }
        }
    )


# --------------------------------------------------------------------------------------------
# Targeted messages


def test_problem_renders_path_message_and_fix() -> None:
    problem = Problem("canary.steps[1].weight", "30 is lower", "raise it")
    assert str(problem) == "canary.steps[1].weight: 30 is lower — raise it"
    assert str(Problem("", "bad", "")) == "properties: bad"


def test_problem_paths_can_be_moved_under_a_prefix() -> None:
    problem = Problem("canary.steps[0]", "m", "f").under("spec.components[0].traits[1].properties")
    assert problem.path == "spec.components[0].traits[1].properties.canary.steps[0]"
    assert Problem("", "m").under("x").path == "x"
    assert Problem("[0]", "m").under("items").path == "items[0]"


def test_every_problem_is_reported_not_just_the_first() -> None:
    with pytest.raises(InvalidSpec) as caught:
        validate_properties({"canary": {"steps": [{"weight": 101}, {"duration": -1}]}})
    paths = [p.path for p in caught.value.problems]
    assert paths == ["canary.steps[0].weight", "canary.steps[1].duration"]


def test_a_miscased_key_is_one_problem_not_also_a_missing_key() -> None:
    message = _problems(
        {
            "canary": {
                "steps": [{"replicas": 1, "matches": [{"headers": [{"Name": "a", "value": "1"}]}]}],
                "trafficRoutings": [{}],
            }
        }
    )
    assert "unknown property 'Name'" in message
    assert "missing" not in message


def test_a_misspelt_key_gets_a_suggestion() -> None:
    message = _problems({"canary": {"steps": [{"replicas": 1, "durations": 5}]}})
    assert "did you mean 'duration'?" in message


def test_a_weight_decrease_after_a_step_without_weight_names_that_step() -> None:
    message = _problems(
        {
            "canary": {
                "steps": [
                    {"replicas": 1, "weight": 40},
                    {"replicas": 2},
                    {"replicas": 3, "weight": 20},
                ],
                "trafficRoutings": [{}],
            }
        }
    )
    assert "20 is lower than canary.steps[0]'s 40" in message


def test_replicas_are_compared_like_with_like() -> None:
    message = _problems(
        {"canary": {"steps": [{"replicas": 4}, {"replicas": "50%"}, {"replicas": 2}]}}
    )
    assert "canary.steps[2].replicas: 2 is lower than canary.steps[0]'s 4" in message


def test_a_provider_problem_names_the_provider_the_feature_and_the_field() -> None:
    message = _problems(
        {
            "canary": {
                "steps": [
                    {"weight": 10},
                    {"weight": 20},
                    {"weight": 30, "matches": [{"queryParams": [{"name": "q", "value": "1"}]}]},
                ],
                "trafficRoutings": [{"type": "ingress"}],
            }
        }
    )
    assert message == (
        "canary.steps[2].matches[0].queryParams: canary.trafficRoutings[0] (ingress/nginx) "
        "cannot route by query — use type gateway or istio, or drop "
        "canary.steps[2].matches[0].queryParams"
    )


def test_every_routing_is_checked_for_the_features_a_step_uses() -> None:
    with pytest.raises(InvalidSpec) as caught:
        validate_properties(
            {
                "canary": {
                    "steps": [{"replicas": 1, "matches": [{"cookies": [{"name": "beta"}]}]}],
                    "trafficRoutings": [{"type": "istio"}, {"type": "gateway"}],
                }
            }
        )
    assert [p.message for p in caught.value.problems] == [
        "canary.trafficRoutings[1] (gateway) cannot route by cookie"
    ]


def test_default_routing_names_collide_when_the_component_is_known() -> None:
    message = _problems(
        {
            "canary": {
                "steps": [{"weight": 10}],
                "trafficRoutings": [{"type": "ingress"}, {"type": "ingress", "ingressName": "web"}],
            }
        },
        component="web",
    )
    assert (
        "canary.trafficRoutings[1]: changes Ingress 'web' like canary.trafficRoutings[0]" in message
    )


def test_canary_mode_is_rejected_for_a_statefulset_component() -> None:
    message = _problems(
        {"releaseMode": "canary", "canary": {"steps": [{"replicas": 1}]}},
        workload_kind="StatefulSet",
    )
    assert "releaseMode: canary mode" in message
    assert "this workload is a StatefulSet" in message


def test_workload_type_wins_over_the_component_kind() -> None:
    validate_properties(
        {
            "releaseMode": "canary",
            "workloadType": {"apiVersion": "apps/v1", "kind": "Deployment"},
            "canary": {"steps": [{"replicas": 1}]},
        },
        workload_kind="StatefulSet",
    )


@pytest.mark.parametrize("props", [None, [], "canary", 3])
def test_properties_that_are_not_a_mapping_are_rejected(props: object) -> None:
    assert _problems(props).startswith("properties: expected a mapping of properties")


# --------------------------------------------------------------------------------------------
# Applications


def _app(*components: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "shop"}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": meta,
        "spec": {"components": list(components)},
    }


def _component(
    name: str = "web", ctype: str = "webservice", props: Any = None, **extra: Any
) -> dict[str, Any]:
    trait = {
        "type": "progressive-rollout",
        "properties": props or {"canary": {"steps": [{"replicas": 1}]}},
    }
    return {"name": name, "type": ctype, "properties": {"image": "x"}, "traits": [trait], **extra}


def test_application_components_with_the_trait_are_found() -> None:
    plain = {"name": "db", "type": "webservice", "properties": {"image": "x"}}
    found = validate_application(_app(plain, _component(), namespace="prod"))
    assert [(c.component, c.kind, c.namespace, c.path) for c in found] == [
        ("web", "Deployment", "prod", "spec.components[1].traits[0]")
    ]


@pytest.mark.parametrize(
    ("ctype", "kind"),
    [
        ("webservice", "Deployment"),
        ("worker", "Deployment"),
        ("statefulset", "StatefulSet"),
        ("daemon", "DaemonSet"),
    ],
)
def test_component_types_map_to_workload_kinds(ctype: str, kind: str) -> None:
    assert validate_application(_app(_component(ctype=ctype)))[0].kind == kind


def test_an_unknown_component_type_needs_a_workload_type() -> None:
    with pytest.raises(InvalidSpec) as caught:
        validate_application(_app(_component(ctype="k8s-objects")))
    assert "spec.components[0].traits[0].properties.workloadType" in str(caught.value)
    props = {
        "workloadType": {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet"},
        "canary": {"steps": [{"replicas": 1}]},
    }
    found = validate_application(_app(_component(ctype="k8s-objects", props=props)))
    assert (found[0].api_version, found[0].kind) == ("apps.kruise.io/v1alpha1", "CloneSet")


def test_replicas_come_from_the_scaler_trait_then_the_component_then_one() -> None:
    scaled = _component()
    scaled["traits"].append({"type": "scaler", "properties": {"replicas": 7}})
    scaled["properties"]["replicas"] = 3
    own = _component(name="api")
    own["properties"]["replicas"] = 3
    bare = _component(name="bare")
    found = validate_application(_app(scaled, own, bare))
    assert [(c.replicas, c.replicas_source) for c in found] == [
        (7, "scaler trait"),
        (3, "component properties"),
        (1, "default"),
    ]


def test_trait_problems_carry_the_path_inside_the_application() -> None:
    bad = _component(props={"canary": {"steps": [{"weight": 50}, {"weight": 30}]}})
    with pytest.raises(InvalidSpec) as caught:
        validate_application(_app(bad))
    assert str(caught.value).startswith(
        "spec.components[0].traits[0].properties.canary.steps[1].weight: 30 is lower"
    )


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ([], "expected an Application (a mapping), got a list"),
        ({"kind": "Deployment", "metadata": {"name": "x"}}, "kind: expected an Application"),
        ({"kind": "Application", "spec": {}}, "metadata.name: missing"),
        ({"kind": "Application", "metadata": {"name": "a"}}, "spec.components: missing or empty"),
        (
            {"kind": "Application", "metadata": {"name": "a"}, "spec": {"components": ["x"]}},
            "spec.components[0]: expected a mapping",
        ),
        (
            {
                "kind": "Application",
                "metadata": {"name": "a"},
                "spec": {"components": [{"name": "w", "type": "webservice"}]},
            },
            "no component of Application 'a' has a progressive-rollout trait",
        ),
        (
            {
                "kind": "Application",
                "metadata": {"name": "a"},
                "spec": {
                    "components": [
                        {
                            "name": "w",
                            "type": "webservice",
                            "traits": [{"type": "progressive-rollout"}],
                        }
                    ]
                },
            },
            "spec.components[0].traits[0].properties: the progressive-rollout trait has no "
            "properties",
        ),
        (
            {
                "kind": "Application",
                "metadata": {"name": "a"},
                "spec": {
                    "components": [
                        {
                            "type": "webservice",
                            "traits": [{"type": "progressive-rollout", "properties": {}}],
                        }
                    ]
                },
            },
            "spec.components[0].name: missing",
        ),
        (
            _app(
                dict(
                    _component(),
                    traits=[
                        {"type": "scaler", "properties": {"replicas": "3"}},
                        _component()["traits"][0],
                    ],
                )
            ),
            "spec.components[0].traits[0].properties.replicas: expected a number of pods",
        ),
    ],
)
def test_malformed_applications_are_explained(app: object, expected: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        validate_application(app)
    assert expected in str(caught.value)


def test_problems_of_several_components_are_all_reported() -> None:
    bad = {"canary": {"steps": [{"weight": 101}]}}
    with pytest.raises(InvalidSpec) as caught:
        validate_application(_app(_component("a", props=bad), _component("b", props=bad)))
    assert [p.path.split(".")[1] for p in caught.value.problems] == [
        "components[0]",
        "components[1]",
    ]


def _trait_apps(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return [
        d
        for d in docs
        if d.get("kind") == "Application"
        and any(
            t.get("type") == "progressive-rollout"
            for c in d.get("spec", {}).get("components", [])
            for t in c.get("traits") or []
        )
    ]


TRAIT_APPS = [p for p in APPS if _trait_apps(p)]


def test_there_are_example_applications_with_the_trait() -> None:
    assert len(TRAIT_APPS) >= 3


@pytest.mark.parametrize("path", TRAIT_APPS, ids=lambda p: p.stem)
def test_example_applications_are_valid(path: Path) -> None:
    for app in _trait_apps(path):
        assert validate_application(app)


def test_a_k8s_objects_component_releases_its_first_object() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "search-backend"},
        "spec": {"replicas": 6},
    }
    comp = _component(ctype="k8s-objects")
    comp["properties"] = {"objects": [deployment, {"apiVersion": "v1", "kind": "Service"}]}
    (found,) = validate_application(_app(comp))
    assert (found.kind, found.workload_name, found.replicas) == ("Deployment", "search-backend", 6)
    assert found.replicas_source == "component object"


@pytest.mark.parametrize(
    "routings",
    [
        [{"type": "ingress"}],
        [{"type": "aliyun-alb", "ingressName": "pub", "service": "api"}],
        [{"type": "ingress", "ingressClass": "higress", "gracePeriodSeconds": 0}],
        [{"type": "gateway"}, {"type": "istio", "destinationRuleName": "dr"}],
    ],
)
def test_the_resolved_strategy_reads_back_as_the_same_strategy(
    routings: list[dict[str, Any]],
) -> None:
    props = validate_properties(
        {"canary": {"steps": [{"weight": 10}], "trafficRoutings": routings}}, component="web"
    )
    resolved = resolve_strategy(props, "web")
    assert Strategy.from_properties(resolved, "other") == Strategy.from_properties(props, "web")
    validate_properties(resolved, component="other")
