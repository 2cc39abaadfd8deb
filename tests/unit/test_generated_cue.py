"""The JSON Schema -> CUE generator (vela_progressive.core.codegen, run by hack/gen.py) and the
generated TraitDefinition."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hack import gen

from vela_progressive.core import capabilities, model, trait_schema
from vela_progressive.core.codegen import cue, structural
from vela_progressive.core.codegen.cue import Text
from vela_progressive.core.trait_schema import SchemaError
from vela_progressive.core.validation import problem


def _param(schema: dict[str, Any]) -> str:
    block, _, _ = cue.cue_parameter_block({"additionalProperties": False, **schema}, depth=0)
    return block


def _walk_properties(schema: dict[str, Any]) -> list[str]:
    """Every property of the schema (definitions included) as 'owner.name'."""
    found = [f"parameter.{name}" for name in schema["properties"]]

    def nested(node: dict[str, Any], owner: str) -> None:
        for name, prop in node.get("properties", {}).items():
            _, target = trait_schema.resolve(schema, prop)
            if trait_schema.is_struct(target) and "$ref" not in prop:
                found.extend(f"{owner}.{name}.{k}" for k in target["properties"])
                nested(target, f"{owner}.{name}")

    nested(schema, "parameter")
    for def_name, node in schema["definitions"].items():
        if trait_schema.is_struct(node):
            found.extend(f"{def_name}.{k}" for k in node["properties"])
            nested(node, def_name)
    return found


def test_generated_files_are_up_to_date() -> None:
    stale = gen.stale_files(gen.generated_files())
    assert stale == [], "run .venv/bin/python hack/gen.py and commit the result"


def test_every_parameter_gets_a_usage_comment_from_its_description() -> None:
    schema = gen.load_schema()
    block, _, _ = cue.cue_parameter_block(schema)
    lines = block.splitlines()
    fields = [i for i, line in enumerate(lines) if re.match(r"\s*[A-Za-z]\w*\??: ", line)]
    fields = [i for i in fields if not lines[i].lstrip().startswith(("parameter:", "#"))]
    assert len(fields) == len(_walk_properties(schema))
    for i in fields:
        assert lines[i - 1].lstrip().startswith("// +usage="), lines[i]


def test_a_property_without_description_is_an_error_naming_it() -> None:
    schema = {"properties": {"auto": {"type": "boolean"}}}
    with pytest.raises(SchemaError, match=r"parameter\.auto: add a description"):
        _param(schema)


def test_a_default_becomes_a_starred_disjunction() -> None:
    schema = {"properties": {"class": {"type": "string", "default": "nginx", "description": "c"}}}
    assert 'class: *"nginx" | string' in _param(schema)


def test_a_bounded_number_with_default_keeps_its_bounds_on_the_strategy() -> None:
    """cue-lang/cue#4305: vela's OpenAPI encoder fails on `*600 | int & >=1`."""
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "deadline": {"type": "integer", "minimum": 1, "default": 600, "description": "d"},
            "count": {"type": "integer", "minimum": 1, "maximum": 9, "description": "c"},
        },
    }
    block, limits, _ = cue.cue_parameter_block(schema, depth=0)
    assert "deadline: *600 | int\n" in block
    assert "count?: int & >=1 & <=9" in block
    assert limits == "{deadline?: >=1}"


def test_an_enum_default_stars_the_member() -> None:
    schema = {
        "properties": {
            "type": {"type": "string", "enum": ["a", "b"], "default": "b", "description": "t"}
        }
    }
    assert 'type: "a" | *"b"' in _param(schema)


def test_required_fields_are_regular_and_others_optional() -> None:
    schema = {
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "description": "n"},
            "alias": {"type": "string", "description": "a"},
        },
    }
    text = _param(schema)
    assert "name: string & strings.MinRunes(1)" in text
    assert "alias?: string" in text


def test_int_or_percent_becomes_an_int_or_pattern_disjunction() -> None:
    block, _, _ = cue.cue_parameter_block(gen.load_schema())
    assert 'replicas?: int & >=0 | string & =~"^(100|[1-9]?[0-9])%$"' in block
    assert 'failureThreshold?: int & >=0 | string & =~"^(100|[1-9]?[0-9])%$"' in block


def test_objects_are_closed_so_unknown_keys_are_rejected() -> None:
    block, _, imports = cue.cue_parameter_block(gen.load_schema())
    assert "\tparameter: close({" in block
    assert "workloadType?: close({" in block
    assert "canary: close({" in block
    # objects under definitions become CUE definitions, which are closed
    for name in ("#Step", "#Match", "#HeaderMatch", "#CookieMatch", "#PathMatch"):
        assert re.search(rf"^\t{name}: \{{", block, re.M), name
    assert imports == ["list", "strings", "struct"]


def test_an_object_that_allows_unknown_keys_is_refused() -> None:
    schema = {"properties": {"o": {"type": "object", "properties": {}, "description": "o"}}}
    with pytest.raises(SchemaError, match=r"parameter\.o: objects must set additionalProperties"):
        _param(schema)


def test_header_match_keys_are_lower_case() -> None:
    trait = gen.TRAIT_FILE.read_text()
    header = trait.split("#HeaderMatch: {", 1)[1].split("\n\t}", 1)[0]
    keys = re.findall(r"^\t\t(\w+)\??:", header, re.M)
    assert keys == ["type", "name", "value"]


def test_value_bounds_are_on_the_parameter_and_size_limits_on_the_strategy() -> None:
    block, limits, _ = cue.cue_parameter_block(gen.load_schema())
    assert "weight?: int & >=0 & <=100" in block
    assert 'value: string & =~"^/"' in block
    # list and struct validators on a parameter hide it from `vela show`
    assert "steps: [...#Step]" in block
    assert "list." not in block
    assert "struct." not in block
    metrics = (
        "metrics?: list.MinItems(1) & list.MaxItems(10) & [...{interval?: >=1 & <=3600, count?: "
        ">=1 & <=100, failureLimit?: >=0, inconclusiveLimit?: >=0, minSamples?: >=0}]"
    )
    assert limits == (
        "{progressDeadlineSeconds?: >=1, blueGreen?: {scaleDownDelaySeconds?: >=0}, "
        "canary?: {steps?: list.MinItems(1) & list.MaxItems(50)"
        " & [...{matches?: [...struct.MinFields(1)], analysis?: {" + metrics + "}}], "
        "trafficRoutings?: [...{gracePeriodSeconds?: >=0}], analysis?: {startingStep?: >=1, "
        + metrics
        + "}, webhooks?: list.MaxItems(20) & [...{timeoutSeconds?: >=1 & <=60}]}}"
    )
    assert "weight?: int & >=0 & <=100" in block
    assert 'value: string & =~"^/"' in block


def test_the_strategy_copies_every_property_and_resolves_routings() -> None:
    schema = gen.load_schema()
    block = cue.cue_copy_block(schema, 0, {"canary.trafficRoutings": "_resolvedRoutings"})
    for name, prop in schema["properties"].items():
        if name == "canary":
            continue
        expected = f"{name}: parameter.{name}"
        assert expected in block
        optional = name not in schema.get("required", []) and "default" not in prop
        assert (f"if parameter.{name} != _|_ {{" in block) == optional, name
    assert "\tsteps: parameter.canary.steps" in block
    assert "\t\ttrafficRoutings: _resolvedRoutings" in block
    assert "\tdisableGenerateCanaryService: parameter.canary.disableGenerateCanaryService" in block


def test_the_trait_uses_the_model_names() -> None:
    trait = gen.TRAIT_FILE.read_text()
    assert trait.count(f'"{model.TRAIT_TYPE}": {{') == 1
    assert f'apiVersion: "{model.API_GROUP}/{model.API_VERSION}"' in trait
    assert f'kind:       "{model.KIND}"' in trait
    assert f'labels: "{model.HOLD_LABEL}": "true"' in trait
    assert 'annotations: "app.oam.dev/disable-health-check": "true"' in trait
    assert 'stage: "PreDispatch"' in trait


def test_an_unsupported_union_is_refused_in_the_crd() -> None:
    schema = {
        "definitions": {},
        "type": "object",
        "properties": {"x": {"oneOf": [{"type": "boolean"}, {"type": "string"}]}},
    }
    with pytest.raises(SchemaError, match=r"^x: oneOf can only be an int-or-string union"):
        structural.strategy_schema(schema)


def test_a_keyword_without_structural_equivalent_is_refused() -> None:
    schema = {"type": "object", "patternProperties": {"^a": {"type": "string"}}}
    with pytest.raises(SchemaError, match="'patternProperties' has no structural equivalent"):
        structural.strategy_schema(schema)


def test_check_mode_fails_listing_each_stale_file_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale, fresh = tmp_path / "stale.cue", tmp_path / "fresh.cue"
    stale.write_text("old\n")
    fresh.write_text("same\n")
    monkeypatch.setattr(gen, "generated_files", lambda: {stale: "new\n", fresh: "same\n"})
    assert gen.main(["--check"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"stale: {stale} (run: .venv/bin/python hack/gen.py)"
    ]
    assert stale.read_text() == "old\n"
    assert gen.main([]) == 0
    assert stale.read_text() == "new\n"
    assert gen.main(["--check"]) == 0


# --------------------------------------------------------------------------------------------
# One source: routing types, the capability table and the rules' words


def test_the_routing_types_are_the_schemas_type_enum() -> None:
    routing = trait_schema.definition("trafficRouting")
    assert list(capabilities.ROUTING_TYPES) == routing["properties"]["type"]["enum"]
    for rtype in capabilities.ROUTING_TYPES.values():
        for name in rtype.own_fields:
            assert name in routing["properties"], name


def test_the_routing_defaults_are_the_schemas() -> None:
    assert capabilities.routing_defaults() == {
        "type": "ingress",
        "gracePeriodSeconds": 5,
        "ingressClass": "nginx",
    }


@pytest.mark.parametrize("rtype", list(capabilities.ROUTING_TYPES))
def test_the_trait_resolves_each_routing_type_from_the_same_table(rtype: str) -> None:
    """The CUE _resolvedRoutings is generated from ROUTING_TYPES: each type's branch sets what
    resolve_routing sets (the CUE tier compares the rendered strategies end to end)."""
    block = cue.resolved_routings("parameter.canary.trafficRoutings", depth=0)
    branch = block.split(f'if r.type == "{rtype}" {{', 1)[1].split("\n\t\t}", 1)[0]
    resolved = capabilities.resolve_routing({"type": rtype}, "web")
    assert f'type: "{resolved["type"]}"' in branch
    field = capabilities.ROUTING_TYPES[rtype].object_field
    assert f"{field}: context.name" in branch
    if rtype == "aliyun-alb":
        assert 'ingressClass: "aliyun-alb"' in branch
    elif resolved["type"] == "ingress":
        assert "ingressClass: r.ingressClass" in branch
    else:
        assert "ingressClass" not in branch


def test_resolving_a_resolved_routing_changes_nothing() -> None:
    for rtype in capabilities.ROUTING_TYPES:
        once = capabilities.resolve_routing({"type": rtype, "destinationRuleName": "d"}, "web")
        assert capabilities.resolve_routing(once, "other") == once


def test_the_trait_carries_the_capability_table_of_core_capabilities() -> None:
    trait = gen.TRAIT_FILE.read_text()
    for pid, provider in capabilities.provider_table(str(gen.TEMPLATES)).items():
        row = re.search(rf'^\t\t"{re.escape(pid)}": \{{ (.*) \}}$', trait, re.M)
        assert row, pid
        for feature in capabilities.FEATURES:
            assert f"{feature}: {str(feature in provider.features).lower()}" in row.group(1)


def test_every_rule_of_the_trait_is_a_rule_of_the_validator() -> None:
    """The CUE messages are generated from the rules' wording; a rule the template names that
    nobody defines is an error at generation time."""
    with pytest.raises(SchemaError, match="no rule 'nope'"):
        cue.say("nope", "x")
    trait = gen.TRAIT_FILE.read_text()
    errs = trait.split("\terrs: ", 1)[1].split("\n\t// The workload this trait releases", 1)[0]
    for rule_id, rule in cue.rules().items():
        first_words = rule.message.replace("{who} ", "").split("{", 1)[0].strip()
        assert first_words[:20] in errs, rule_id


def test_a_cue_message_says_what_the_python_problem_says() -> None:
    rule = cue.rules()["weight-decrease"]
    cue_text = cue.cue_problem(
        rule,
        "canary.steps[{si}].weight",
        {
            "si": Text("1"),
            "weight": Text("30"),
            "whose": Text("the previous step's"),
            "before": Text("50"),
        },
    )
    python = problem(
        rule, "canary.steps[1].weight", weight=30, whose="the previous step's", before=50
    )
    assert cue_text == json.dumps(str(python), ensure_ascii=False)


def test_a_placeholder_without_a_value_is_an_error() -> None:
    with pytest.raises(SchemaError, match=r"give a value for \{count\}"):
        cue.say("one-header", "x", who="who")


def test_the_reference_lists_every_provider_and_rule() -> None:
    doc = gen.REFERENCE_FILE.read_text()
    for pid in capabilities.provider_table(str(gen.TEMPLATES)):
        assert f"| `{pid}` |" in doc
    for rule_id in capabilities.RULES:
        assert f"| `{rule_id}` |" in doc
