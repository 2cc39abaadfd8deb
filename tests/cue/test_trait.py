"""The progressive-rollout TraitDefinition evaluated by vela: vet, dry-run goldens of the fixture
Applications, and the rendered ProgressiveRollout against the CRD, the JSON Schema and the
Python model (CUE and Python must resolve the same strategy)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from tests.cue.conftest import TRAIT, fixture_apps
from tests.cue.vela import REPO, Vela
from tests.support.golden import assert_matches_golden

from vela_progressive.core import model
from vela_progressive.core.model import Strategy
from vela_progressive.core.validation import resolve_strategy, validate_properties

GOLDEN = REPO / "tests/golden/cue/apps"
CRD = REPO / "addon/resources/crd.yaml"
SCHEMA = REPO / "controller/vela_progressive/core/schemas/progressive-rollout.schema.json"
APPS = fixture_apps()

#: The property naming the object each routing type changes.
OBJECT_NAME_KEY = {
    "ingress": "ingressName",
    "gateway": "gatewayHTTPRouteName",
    "istio": "virtualServiceName",
}


@cache
def _crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@cache
def _json_schema() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SCHEMA.read_text())
    return data


def _pruned(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields of ``value`` the API server would prune under ``schema``."""
    found: list[str] = []
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                found.extend(_pruned(item, props[key], f"{path}.{key}"))
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                found.append(f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found.extend(_pruned(item, schema["items"], f"{path}[{i}]"))
    return found


@cache
def _render(vela: Vela, definitions: Path, app: Path) -> tuple[str, tuple[dict[str, Any], ...]]:
    out = vela.check("dry-run", "--offline", "-d", str(definitions), "-f", str(app))
    docs = tuple(d for d in yaml.safe_load_all(out) if isinstance(d, dict))
    return out, docs


def _rollouts(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == model.KIND]


def _trait_properties(app: Path) -> dict[str, dict[str, Any]]:
    """Trait properties per component name."""
    spec = yaml.safe_load(app.read_text())["spec"]
    found = {}
    for comp in spec["components"]:
        for trait in comp.get("traits") or []:
            if trait["type"] == model.TRAIT_TYPE:
                found[comp["name"]] = trait.get("properties") or {}
    return found


def test_vela_def_vet_accepts_the_trait(vela: Vela) -> None:
    out = vela.check("def", "vet", str(TRAIT))
    assert f"Validation {TRAIT} succeed." in out


def test_vela_converts_the_trait_into_a_trait_definition(vela: Vela) -> None:
    out = vela.check("def", "render", str(TRAIT))
    title, body = out.split("\n", 1)
    assert title == f"--- {TRAIT.name} ---"
    rendered = yaml.safe_load(body)
    assert rendered["kind"] == "TraitDefinition"
    assert rendered["metadata"]["name"] == model.TRAIT_TYPE
    spec = rendered["spec"]
    assert spec["stage"] == "PreDispatch"
    assert spec["podDisruptive"] is True
    assert spec["appliesToWorkloads"] == ["*"]
    assert "isHealth:" in spec["status"]["healthPolicy"]
    assert "message:" in spec["status"]["customStatus"]


def test_vela_show_documents_every_property(vela: Vela, tmp_path: Path) -> None:
    """`vela show progressive-rollout` is how users read the properties: no field may render
    as an error (_|_), and every property has a row."""
    i18n = tmp_path / "i18n.json"
    i18n.write_text("{}")
    out = vela.check("show", str(TRAIT), "--i18n", str(i18n))
    assert "_|_" not in out
    rows = {line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")}
    schema = _json_schema()
    names = set(schema["properties"])
    for node in schema["definitions"].values():
        names |= set(node.get("properties", {}))
    names |= set(schema["properties"]["canary"]["properties"])
    names |= set(schema["properties"]["workloadType"]["properties"])
    assert names <= rows


def test_there_are_fixture_apps_for_every_routing_type_and_workload_kind() -> None:
    seen: set[str] = set()
    for app in APPS:
        for props in _trait_properties(app).values():
            routings = props["canary"].get("trafficRoutings", [])
            seen.update(r.get("type", "ingress") for r in routings)
            seen.update(f"istio+dr={'destinationRuleName' in r}" for r in routings)
            seen.update(
                f"match:{k}"
                for s in props["canary"]["steps"]
                for m in s.get("matches", [])
                for k in m
            )
            seen.update(k for k in ("auto", "stepPartition", "releaseMode") if k in props)
        seen.update(c["type"] for c in yaml.safe_load(app.read_text())["spec"]["components"])
    expected = {
        "ingress",
        "aliyun-alb",
        "gateway",
        "istio",
        "istio+dr=True",
        "istio+dr=False",
        "match:headers",
        "match:cookies",
        "match:queryParams",
        "match:path",
        "auto",
        "stepPartition",
        "releaseMode",
        "webservice",
        "statefulset",
    }
    assert expected <= seen


@pytest.mark.parametrize("app", APPS, ids=lambda p: p.stem)
def test_dry_run_renders_the_app_like_the_golden(vela: Vela, definitions: Path, app: Path) -> None:
    out, docs = _render(vela, definitions, app)
    assert len(_rollouts(docs)) == len(_trait_properties(app))
    assert_matches_golden(out, GOLDEN / f"{app.stem}.yaml")


@pytest.mark.parametrize("app", APPS, ids=lambda p: p.stem)
def test_the_rendered_rollout_is_valid_for_the_crd_and_the_schema(
    vela: Vela, definitions: Path, app: Path
) -> None:
    _, docs = _render(vela, definitions, app)
    for rollout in _rollouts(docs):
        errors = [e.message for e in jsonschema.Draft4Validator(_crd_schema()).iter_errors(rollout)]
        assert errors == []
        # (metadata is the API server's own; everything else must be declared, or it is pruned)
        pruned = [p for p in _pruned(rollout, _crd_schema()) if not p.startswith(".metadata.")]
        assert pruned == []
        jsonschema.Draft7Validator(_json_schema()).validate(rollout["spec"]["strategy"])


@pytest.mark.parametrize("app", APPS, ids=lambda p: p.stem)
def test_cue_and_python_resolve_the_same_strategy(vela: Vela, definitions: Path, app: Path) -> None:
    """The CR's strategy is exactly validation.resolve_strategy of the user's properties, and
    Strategy.from_properties reads the same strategy from both."""
    _, docs = _render(vela, definitions, app)
    props_by_component = _trait_properties(app)
    for rollout in _rollouts(docs):
        component = rollout["spec"]["application"]["component"]
        rendered = rollout["spec"]["strategy"]
        validated = validate_properties(props_by_component[component], component=component)
        assert Strategy.from_properties(rendered, component) == Strategy.from_properties(
            validated, component
        )
        # Exactly what the Python side computes for the CR (defaults and routings resolved).
        assert rendered == resolve_strategy(validated, component)
        # Every routing names its stable Service and the object it changes.
        for routing in rendered["canary"].get("trafficRoutings", []):
            assert routing["service"]
            assert routing[OBJECT_NAME_KEY[routing["type"]]]


@pytest.mark.parametrize("app", APPS, ids=lambda p: p.stem)
def test_the_workload_is_labelled_for_the_hold_webhook(
    vela: Vela, definitions: Path, app: Path
) -> None:
    _, docs = _render(vela, definitions, app)
    for rollout in _rollouts(docs):
        ref = rollout["spec"]["workloadRef"]
        workloads = [
            d
            for d in docs
            if d["kind"] == ref["kind"]
            and d["apiVersion"] == ref["apiVersion"]
            and d["metadata"]["name"] == ref["name"]
        ]
        assert len(workloads) == 1, ref
        meta = workloads[0]["metadata"]
        assert meta["labels"][model.HOLD_LABEL] == "true"
        assert meta["annotations"]["app.oam.dev/disable-health-check"] == "true"
        assert rollout["metadata"]["name"] == rollout["spec"]["application"]["component"]
        assert rollout["metadata"]["namespace"] == meta["namespace"]
