"""The generated ProgressiveRollout CRD: names, structural-schema rules, and that its
``spec.strategy`` schema accepts and rejects what the trait's JSON Schema does."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hack import gen

from vela_progressive.core import model
from vela_progressive.core.status import STATUS_KEYS, Ending, Phase, Stage, StepState

ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "tests/fixtures/invalid").glob("*.yaml"))


def _schema_rejects(case: Path) -> bool:
    props = yaml.safe_load(case.read_text())["properties"]
    return any(jsonschema.Draft7Validator(gen.load_schema()).iter_errors(props))


#: Invalid-corpus cases the JSON Schema itself rejects (the others break cross-field rules).
SCHEMA_REJECTED = [case for case in INVALID if _schema_rejects(case)]


@cache
def _crd() -> dict[str, Any]:
    crd = yaml.safe_load(gen.CRD_FILE.read_text())
    assert isinstance(crd, dict)
    return crd


def _version() -> dict[str, Any]:
    versions = _crd()["spec"]["versions"]
    assert len(versions) == 1
    version: dict[str, Any] = versions[0]
    return version


def _root_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _version()["schema"]["openAPIV3Schema"]
    return schema


def _strategy_schema() -> dict[str, Any]:
    strategy: dict[str, Any] = _root_schema()["properties"]["spec"]["properties"]["strategy"]
    return strategy


def _nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(node, dict):
        return
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from _nodes(prop, f"{path}.{name}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the API server would prune (not declared, no x-kubernetes-preserve-unknown-fields)."""
    found: list[str] = []
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                found.extend(unknown_fields(item, props[key], f"{path}.{key}"))
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                found.append(f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found.extend(unknown_fields(item, schema["items"], f"{path}[{i}]"))
    return found


def crd_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    """What the API server would reject: schema violations (Draft 4 semantics, like OpenAPI 3.0)."""
    validator = jsonschema.Draft4Validator(schema)
    return [e.message for e in validator.iter_errors(value)]


def test_names_come_from_the_model() -> None:
    crd = _crd()
    assert crd["metadata"]["name"] == f"{model.PLURAL}.{model.API_GROUP}"
    names = crd["spec"]["names"]
    assert names["kind"] == model.KIND
    assert names["plural"] == model.PLURAL
    assert names["shortNames"] == [model.SHORT_NAME]
    assert crd["spec"]["group"] == model.API_GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    assert _version()["name"] == model.API_VERSION
    assert _version()["subresources"] == {"status": {}}


def test_the_schema_is_structural() -> None:
    """The rules kube-apiserver applies to a v1 CRD schema (apiextensions validation)."""
    for path, node in _nodes(_root_schema()):
        where = path or "<root>"
        for banned in ("$ref", "oneOf", "default", "definitions", "title", "$schema", "$id"):
            assert banned not in node, f"{where}: {banned}"
        if "properties" in node:
            assert "additionalProperties" not in node, f"{where}: additionalProperties"
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], where
            assert "type" not in node, where
        else:
            assert "anyOf" not in node, where
            assert node.get("type") in {
                "object",
                "array",
                "string",
                "integer",
                "number",
                "boolean",
            }, where
        if node.get("type") == "array":
            assert "items" in node, where


def test_the_strategy_schema_keeps_the_json_schema_property_order() -> None:
    schema = gen.load_schema()
    assert list(_strategy_schema()["properties"]) == list(schema["properties"])


def test_printer_columns_read_documented_status_fields() -> None:
    status = _root_schema()["properties"]["status"]
    columns = {c["name"]: c["jsonPath"] for c in _version()["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Step"] == ".status.currentStep"
    assert columns["Steps"] == ".status.totalSteps"
    assert columns["Message"] == ".status.message"
    assert columns["Age"] == ".metadata.creationTimestamp"
    for name, path in columns.items():
        if path.startswith(".status."):
            assert path.removeprefix(".status.") in status["properties"], name


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (0, True),
        (3, True),
        ("0%", True),
        ("100%", True),
        ("50%", True),
        (-1, False),
        ("101%", False),
        ("50", False),
        (" 50%", False),
        (1.5, False),
        (True, False),
    ],
)
def test_int_or_percent_keeps_its_constraints(value: object, ok: bool) -> None:
    node = _strategy_schema()["properties"]["failureThreshold"]
    assert node["x-kubernetes-int-or-string"] is True
    assert (crd_errors(value, node) == []) is ok


def test_a_valid_strategy_validates_and_nothing_is_pruned() -> None:
    strategy = {
        "auto": False,
        "progressDeadlineSeconds": 600,
        "failureThreshold": "10%",
        "canary": {
            "steps": [
                {
                    "replicas": "20%",
                    "weight": 20,
                    "matches": [
                        {
                            "headers": [{"type": "Exact", "name": "x-user", "value": "beta"}],
                            "cookies": [{"name": "canary", "value": "always"}],
                            "queryParams": [{"type": "Exact", "name": "v", "value": "2"}],
                            "path": {"type": "PathPrefix", "value": "/api"},
                        }
                    ],
                },
                {"replicas": 10, "duration": 60},
            ],
            "trafficRoutings": [
                {
                    "type": "istio",
                    "service": "web",
                    "gracePeriodSeconds": 5,
                    "virtualServiceName": "web",
                    "destinationRuleName": "web",
                }
            ],
            "disableGenerateCanaryService": False,
        },
    }
    assert crd_errors(strategy, _strategy_schema()) == []
    assert unknown_fields(strategy, _strategy_schema()) == []
    jsonschema.Draft7Validator(gen.load_schema()).validate(strategy)


@pytest.mark.parametrize("case", SCHEMA_REJECTED, ids=lambda p: p.stem)
def test_what_the_json_schema_rejects_the_crd_rejects_or_prunes(case: Path) -> None:
    """The CRD cannot say additionalProperties: false (structural schemas prune instead)."""
    props = yaml.safe_load(case.read_text())["properties"]
    strategy = _strategy_schema()
    assert crd_errors(props, strategy) or unknown_fields(props, strategy), case.name


def test_the_invalid_corpus_is_present() -> None:
    assert len(INVALID) >= 40
    assert len(SCHEMA_REJECTED) >= 20


def test_unknown_fields_are_found_where_the_api_server_would_prune_them() -> None:
    strategy = copy.deepcopy({"canary": {"steps": [{"weight": 5, "pause": {}}]}, "x": 1})
    assert unknown_fields(strategy, _strategy_schema()) == [".canary.steps[0].pause", ".x"]


def test_every_status_field_the_controller_writes_is_documented_and_nothing_else_is_kept() -> None:
    status = _root_schema()["properties"]["status"]
    assert "x-kubernetes-preserve-unknown-fields" not in status
    assert set(status["properties"]) == set(STATUS_KEYS)
    for key in STATUS_KEYS:
        assert status["properties"][key].get("description"), key


def test_status_enums_list_every_value_of_the_typed_status() -> None:
    fields = _root_schema()["properties"]["status"]["properties"]
    for key, kind in (
        ("phase", Phase),
        ("stepState", StepState),
        ("ending", Ending),
        ("endingStage", Stage),
    ):
        assert fields[key]["enum"] == [v.value for v in kind], key
