#!/usr/bin/env python3
"""Generate every file derived from the trait's JSON Schema, the single source.

    .venv/bin/python hack/gen.py            write the generated files
    .venv/bin/python hack/gen.py --check    exit 1 and list each generated file that is stale

From ``controller/vela_progressive/core/schemas/progressive-rollout.schema.json`` and the names
in ``vela_progressive.core.model``:

* ``definitions/progressive-rollout.cue``: the TraitDefinition, rendered from
  ``templates/cue/progressive-rollout.cue.j2`` with the CUE ``parameter`` block and the
  ``spec.strategy`` copy generated here;
* ``addon/resources/crd.yaml``: the ``ProgressiveRollout`` CRD (``templates/crd/``); its
  ``spec.strategy`` schema is the JSON Schema converted to a Kubernetes structural schema;
* ``addon/resources/names.cue``: the shared names (API group, hold label, ...) for the addon CUE;
* the property table of ``docs/trait-reference.md`` (between the ``GENERATED`` markers).

Templates are rendered with :func:`vela_progressive.core.rendering.render_text` (sandboxed
Jinja2, ``StrictUndefined``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vela_progressive.core import capabilities, model
from vela_progressive.core.rendering import render_text

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "controller/vela_progressive/core/schemas/progressive-rollout.schema.json"
TEMPLATES = ROOT / "templates"

TRAIT_FILE = ROOT / "definitions" / f"{model.TRAIT_TYPE}.cue"
CRD_FILE = ROOT / "addon/resources/crd.yaml"
NAMES_FILE = ROOT / "addon/resources/names.cue"
REFERENCE_FILE = ROOT / "docs/trait-reference.md"

#: Markers around the generated part of docs/trait-reference.md.
BEGIN_MARK = "<!-- BEGIN GENERATED: hack/gen.py writes the table below from the JSON Schema -->"
END_MARK = "<!-- END GENERATED -->"

#: Workload annotation that makes KubeVela's built-in webservice/statefulset health checks
#: report healthy while a release keeps part of the pods on the old version.
DISABLE_HEALTH_CHECK = "app.oam.dev/disable-health-check"

Json = dict[str, Any]


class SchemaError(ValueError):
    """The JSON Schema uses something a generator cannot express; the message names the field."""


# ---------------------------------------------------------------------------------------------
# JSON Schema helpers


def load_schema(path: Path = SCHEMA_PATH) -> Json:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: the schema must be a JSON object")
    return data


def resolve(root: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[str | None, Json]:
    """``(definition name, target)`` for a ``$ref`` node, ``(None, node)`` otherwise."""
    ref = node.get("$ref")
    if ref is None:
        return None, dict(node)
    prefix = "#/definitions/"
    if not isinstance(ref, str) or not ref.startswith(prefix):
        raise SchemaError(f"unsupported $ref {ref!r}: only {prefix}<name> is supported")
    name = ref[len(prefix) :]
    target = root.get("definitions", {}).get(name)
    if not isinstance(target, dict):
        raise SchemaError(f"$ref {ref!r} names no definition")
    return name, target


def description_of(root: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """The node's own description, else its ``$ref`` target's."""
    text = node.get("description")
    if text is None:
        text = resolve(root, node)[1].get("description")
    return " ".join(str(text).split()) if text is not None else None


def default_of(root: Mapping[str, Any], node: Mapping[str, Any]) -> Any:
    if "default" in node:
        return node["default"]
    return resolve(root, node)[1].get("default")


def is_struct(node: Mapping[str, Any]) -> bool:
    return node.get("type") == "object" and "properties" in node


def is_int_or_string(branches: list[Json]) -> bool:
    return sorted(str(b.get("type")) for b in branches) == ["integer", "string"]


# ---------------------------------------------------------------------------------------------
# JSON Schema -> CUE


_CUE_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_CUE_KEYWORDS = frozenset({"package", "import", "for", "in", "if", "let", "true", "false", "null"})


def cue_label(name: str) -> str:
    if _CUE_IDENT.match(name) and name not in _CUE_KEYWORDS:
        return name
    return json.dumps(name)


def cue_literal(value: Any) -> str:
    """A JSON value as a CUE literal (JSON scalars, lists and objects are valid CUE)."""
    return json.dumps(value)


def definition_label(name: str) -> str:
    """``headerMatch`` -> ``#HeaderMatch``."""
    return "#" + name[0].upper() + name[1:]


@dataclass
class CueWriter:
    """Turns (a supported subset of) a draft-07 JSON Schema into CUE.

    * objects become closed structs: ``close({...})``, or a definition ``#Name`` for an object
      under ``definitions`` (definitions are closed), so unknown keys are rejected;
    * ``default`` becomes ``*x | T``; an enum's default is the starred member;
    * enums become disjunctions of literals; ``oneOf`` becomes a disjunction;
    * ``minimum``/``maximum`` become bounds, ``pattern`` ``=~``,
    * ``minItems``, ``maxItems``, ``minProperties`` and the bounds of a number with a default
      become :meth:`limits` on the rendered strategy;
    * what vela's OpenAPI encoder (TraitDefinition schema ConfigMap, ``vela addon enable``)
      cannot encode is avoided: ``minLength`` is ``strings.MinRunes`` (not ``!=""``);
    * every field gets ``// +usage=`` from its description (a missing one is an error).
    """

    root: Json
    indent: str = "\t"
    imports: set[str] = field(default_factory=set)

    def definitions(self, depth: int) -> list[str]:
        """One CUE definition per object under ``definitions``, in schema order."""
        lines: list[str] = []
        for name, node in self.root.get("definitions", {}).items():
            if not is_struct(node):
                continue
            pad = self.indent * depth
            if node.get("description"):
                lines.append(f"{pad}// {description_of(self.root, node)}")
            label = definition_label(name)
            lines.append(f"{pad}{label}: {self.struct(node, depth, f'definitions.{name}')}")
        return lines

    def parameter(self, depth: int) -> list[str]:
        pad = self.indent * depth
        return [f"{pad}parameter: {self.struct(self.root, depth, 'parameter', wrap=True)}"]

    def struct(self, node: Mapping[str, Any], depth: int, path: str, wrap: bool = False) -> str:
        """A struct literal; ``wrap`` puts it in ``close()`` (definitions are already closed)."""
        if node.get("additionalProperties", True) is not False:
            raise SchemaError(f"{path}: objects must set additionalProperties: false")
        required = set(node.get("required", []))
        body: list[str] = []
        for name, prop in node["properties"].items():
            body.extend(self.field(name, prop, name in required, depth + 1, f"{path}.{name}"))
        pad = self.indent * depth
        text = "{\n" + "\n".join(body) + f"\n{pad}}}"
        return f"close({text})" if wrap else text

    def field(
        self, name: str, node: Mapping[str, Any], required: bool, depth: int, path: str
    ) -> list[str]:
        pad = self.indent * depth
        text = description_of(self.root, node)
        if not text:
            raise SchemaError(f"{path}: add a description (it becomes the // +usage= of the field)")
        default = default_of(self.root, node)
        _, target = resolve(self.root, node)
        marker = "" if required else "?"
        if default is not None and _bounded_number(target):
            # cue-lang/cue#4305: vela's OpenAPI encoder fails on `*600 | int & >=1`; the
            # bounds are checked on the rendered strategy instead (limits()).
            marker, expr = "", f"*{cue_literal(default)} | {_CUE_NUMBER[target['type']]}"
        elif default is not None:
            marker, expr = "", self.with_default(node, self.expr(node, depth, path), default, path)
        else:
            expr = self.expr(node, depth, path)
        return [f"{pad}// +usage={text}", f"{pad}{cue_label(name)}{marker}: {expr}"]

    def with_default(self, node: Mapping[str, Any], expr: str, default: Any, path: str) -> str:
        _, target = resolve(self.root, node)
        if isinstance(default, dict | list):
            raise SchemaError(f"{path}: only scalar defaults are supported")
        if "enum" in target:
            if default not in target["enum"]:
                raise SchemaError(f"{path}: default {default!r} is not one of the enum values")
            return " | ".join(
                ("*" if v == default else "") + cue_literal(v) for v in target["enum"]
            )
        return f"*{cue_literal(default)} | {expr}"

    def expr(self, node: Mapping[str, Any], depth: int, path: str) -> str:
        """The CUE type expression of a schema node (without its default)."""
        name, target = resolve(self.root, node)
        if name is not None:
            if is_struct(target):
                return definition_label(name)
            return self.expr(target, depth, path)
        for key in ("oneOf", "anyOf"):
            if key in node:
                return " | ".join(self.expr(b, depth, f"{path}.{key}") for b in node[key])
        if "enum" in node:
            return " | ".join(cue_literal(v) for v in node["enum"])
        kind = node.get("type")
        if kind == "boolean":
            return "bool"
        if kind in _CUE_NUMBER:
            return self.number(_CUE_NUMBER[kind], node)
        if kind == "string":
            return self.string(node)
        if kind == "array":
            return self.array(node, depth, path)
        if is_struct(node):
            return self.struct(node, depth, path, wrap=True)
        raise SchemaError(f"{path}: unsupported schema {dict(node)!r}")

    @staticmethod
    def number(base: str, node: Mapping[str, Any]) -> str:
        parts = [base]
        if "minimum" in node:
            parts.append(f">={node['minimum']}")
        if "maximum" in node:
            parts.append(f"<={node['maximum']}")
        return " & ".join(parts)

    def string(self, node: Mapping[str, Any]) -> str:
        parts = ["string"]
        # (not `!=""`: vela's OpenAPI encoder has no `!=` for strings)
        if "minLength" in node:
            self.imports.add("strings")
            parts.append(f"strings.MinRunes({int(node['minLength'])})")
        if "maxLength" in node:
            self.imports.add("strings")
            parts.append(f"strings.MaxRunes({int(node['maxLength'])})")
        if "pattern" in node:
            parts.append(f"=~{cue_literal(node['pattern'])}")
        return " & ".join(parts)

    def array(self, node: Mapping[str, Any], depth: int, path: str) -> str:
        item = self.expr(node.get("items", {}), depth, f"{path}[]")
        if "|" in item or "&" in item:
            item = f"({item})"
        return f"[...{item}]"

    def limits(self, node: Mapping[str, Any], seen: tuple[str, ...] = ()) -> str | None:
        """What the parameter cannot carry, for a node and everything below it, as one CUE
        constraint on open structs (``None`` when there is nothing): ``minItems``, ``maxItems``,
        ``minProperties`` (their validators hide a parameter from ``vela show``) and the bounds
        of a number with a default (cue-lang/cue#4305 in vela's OpenAPI encoder)."""
        name, target = resolve(self.root, node)
        if name is not None:
            if name in seen:
                raise SchemaError(f"recursive $ref to {name!r} is not supported")
            seen = (*seen, name)
        parts: list[str] = []
        if "default" in {**target, **node} and _bounded_number(target):
            parts.extend(self.number("", target).split(" & ")[1:])
        if target.get("type") == "array":
            for key, fn in (("minItems", "MinItems"), ("maxItems", "MaxItems")):
                if key in target:
                    self.imports.add("list")
                    parts.append(f"list.{fn}({int(target[key])})")
            item = self.limits(target.get("items", {}), seen)
            if item is not None:
                parts.append(f"[...{item}]")
        if is_struct(target):
            if "minProperties" in target:
                self.imports.add("struct")
                parts.append(f"struct.MinFields({int(target['minProperties'])})")
            fields = []
            for prop_name, prop in target["properties"].items():
                sub = self.limits(prop, seen)
                if sub is not None:
                    fields.append(f"{cue_label(prop_name)}?: {sub}")
            if fields:
                parts.append("{" + ", ".join(fields) + "}")
        return " & ".join(parts) if parts else None


_CUE_NUMBER = {"integer": "int", "number": "number"}


def _bounded_number(node: Mapping[str, Any]) -> bool:
    return node.get("type") in _CUE_NUMBER and ("minimum" in node or "maximum" in node)


def cue_parameter_block(schema: Json, depth: int = 1) -> tuple[str, str, list[str]]:
    """The trait's ``#Definitions`` and ``parameter``, the limits of the CR's strategy (list
    sizes, non-empty objects), and the imports they need.

    The limits constrain the rendered strategy rather than ``parameter`` because ``vela show``
    cannot document a parameter carrying ``list.MaxItems`` or ``struct.MinFields`` (it prints
    ``_|_`` and drops the field's table); the error still names the field.
    """
    writer = CueWriter(schema)
    lines = [*writer.definitions(depth), "", *writer.parameter(depth)]
    limits = writer.limits(schema) or "{}"
    return "\n".join(lines), limits, sorted(writer.imports)


def cue_copy_block(schema: Json, depth: int, special: Mapping[str, str]) -> str:
    """CUE fields copying ``parameter`` into the CR's ``spec.strategy``, defaults applied.

    A property that is required or has a default is always copied, an optional one only when
    set. An object holding a ``special`` path (dotted) is copied field by field, and the special
    field's value is the CUE expression given (e.g. the resolved traffic routings).
    """

    def copy(node: Mapping[str, Any], source: str, path: str) -> list[str]:
        required = set(node.get("required", []))
        out: list[str] = []
        for name, prop in node["properties"].items():
            here = f"{path}.{name}" if path else name
            ref = f"{source}.{name}" if _CUE_IDENT.match(name) else f"{source}[{json.dumps(name)}]"
            _, target = resolve(schema, prop)
            if here in special:
                body = [f"{cue_label(name)}: {special[here]}"]
            elif is_struct(target) and any(s.startswith(here + ".") for s in special):
                body = [
                    f"{cue_label(name)}: {{",
                    *(f"\t{line}" for line in copy(target, ref, here)),
                    "}",
                ]
            else:
                body = [f"{cue_label(name)}: {ref}"]
            if name in required or default_of(schema, prop) is not None:
                out.extend(body)
            else:
                out.extend([f"if {ref} != _|_ {{", *(f"\t{line}" for line in body), "}"])
        return out

    pad = "\t" * depth
    return "\n".join(pad + line for line in copy(schema, "parameter", ""))


# ---------------------------------------------------------------------------------------------
# JSON Schema -> Kubernetes structural OpenAPI schema

#: Keywords copied as they are (they mean the same in a CRD's OpenAPI v3 schema).
_COPIED = (
    "type",
    "description",
    "enum",
    "minimum",
    "maximum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "format",
)
#: Keywords left out on purpose.
#: ``default``: the trait (CUE) and the Python validator apply defaults; API-server defaulting
#: would add fields the trait did not render. ``additionalProperties: false`` is forbidden next to
#: ``properties`` in a structural schema: the API server prunes unknown fields instead (and the
#: trait's closed CUE structs reject them before that). ``title``/``$schema``/``$id``/
#: ``definitions`` have no meaning once every ``$ref`` is inlined.
_DROPPED = ("default", "title", "$schema", "$id", "definitions", "additionalProperties")


def structural(root: Mapping[str, Any], node: Mapping[str, Any], path: str = "") -> Json:
    """Convert a JSON Schema node into a structural schema (``$ref`` inlined, int-or-string)."""
    _, target = resolve(root, node)
    if "$ref" in node:
        merged = dict(target)
        merged.update({k: v for k, v in node.items() if k != "$ref"})
        return structural(root, merged, path)
    for key in ("oneOf", "anyOf"):
        if key in node:
            return _int_or_string(root, node, key, path)
    out: Json = {}
    for key, value in node.items():
        if key in _COPIED:
            out[key] = value
        elif key == "properties":
            out[key] = {
                name: structural(root, prop, f"{path}.{name}" if path else name)
                for name, prop in value.items()
            }
        elif key == "items":
            out[key] = structural(root, value, f"{path}[]")
        elif key == "additionalProperties" and value is not False:
            raise SchemaError(f"{path}: only additionalProperties: false is supported")
        elif key not in _DROPPED:
            raise SchemaError(f"{path or '<root>'}: keyword {key!r} has no structural equivalent")
    if "type" not in out:
        raise SchemaError(f"{path or '<root>'}: a structural schema needs a type")
    return out


def _int_or_string(root: Mapping[str, Any], node: Mapping[str, Any], key: str, path: str) -> Json:
    branches = [resolve(root, b)[1] for b in node[key]]
    if not is_int_or_string(branches):
        raise SchemaError(
            f"{path}: {key} can only be an int-or-string union in a structural schema"
        )
    out: Json = {
        "x-kubernetes-int-or-string": True,
        # The only anyOf a structural schema allows with int-or-string.
        "anyOf": [{"type": "integer"}, {"type": "string"}],
    }
    if "description" in node:
        out["description"] = " ".join(str(node["description"]).split())
    # minimum/maximum apply to integers only and pattern/minLength to strings only (in JSON
    # Schema and in the API server), so the branches' constraints can sit side by side.
    for branch in branches:
        for k, v in branch.items():
            if k in ("type", "description"):
                continue
            if k not in _COPIED or k in out:
                raise SchemaError(f"{path}: cannot merge {k!r} of the {key} branches")
            out[k] = v
    return out


#: Key order of a schema node in the generated YAML (``tojson`` sorts keys alphabetically).
_KEY_ORDER = {
    key: i
    for i, key in enumerate(
        (
            "description",
            "type",
            "nullable",
            "x-kubernetes-int-or-string",
            "x-kubernetes-preserve-unknown-fields",
            "anyOf",
            "enum",
            "format",
            "minimum",
            "maximum",
            "minLength",
            "maxLength",
            "pattern",
            "minItems",
            "maxItems",
            "minProperties",
            "maxProperties",
            "required",
            "items",
            "properties",
        )
    )
}


def readable_order(node: Any) -> Any:
    """A schema with its keywords in a fixed, readable order (property order is kept)."""
    if isinstance(node, list):
        return [readable_order(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "properties" in node and isinstance(node["properties"], dict):
        node = {**node, "properties": {k: readable_order(v) for k, v in node["properties"].items()}}
    keys = sorted(node, key=lambda k: _KEY_ORDER.get(k, len(_KEY_ORDER)))
    return {k: node[k] if k == "properties" else readable_order(node[k]) for k in keys}


def strategy_schema(schema: Json) -> Json:
    return structural(schema, {k: v for k, v in schema.items() if k != "definitions"})


# ---------------------------------------------------------------------------------------------
# Reference table (docs/trait-reference.md)


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str
    description: str


def reference_rows(schema: Json) -> Iterator[Row]:
    def type_words(node: Mapping[str, Any]) -> str:
        _, target = resolve(schema, node)
        if "oneOf" in target and is_int_or_string([resolve(schema, b)[1] for b in target["oneOf"]]):
            return "int or percent (`N%`)"
        if "enum" in target:
            return " \\| ".join(f"`{v}`" for v in target["enum"])
        kind = target.get("type")
        bounds = []
        if "minimum" in target:
            bounds.append(f">= {target['minimum']}")
        if "maximum" in target:
            bounds.append(f"<= {target['maximum']}")
        if kind == "array":
            _, item = resolve(schema, target.get("items", {}))
            inner = "objects" if is_struct(item) else type_words(target.get("items", {}))
            sizes = []
            if "minItems" in target:
                sizes.append(f"{target['minItems']}..{target.get('maxItems', '')}")
            return f"list of {inner}" + (f" ({sizes[0]})" if sizes else "")
        words = {"boolean": "bool", "integer": "int", "string": "string", "object": "object"}
        text = words.get(str(kind), str(kind))
        return text + (f" ({', '.join(bounds)})" if bounds else "")

    def walk(node: Mapping[str, Any], prefix: str) -> Iterator[Row]:
        required = set(node.get("required", []))
        for name, prop in node["properties"].items():
            path = f"{prefix}{name}"
            _, target = resolve(schema, prop)
            default = default_of(schema, prop)
            shown = f"`{json.dumps(default)}`" if default is not None else ""
            if not shown and name in required:
                shown = "required"
            yield Row(path, type_words(prop), shown, description_of(schema, prop) or "")
            if is_struct(target):
                yield from walk(target, f"{path}.")
            elif target.get("type") == "array":
                _, item = resolve(schema, target.get("items", {}))
                if is_struct(item):
                    yield from walk(item, f"{path}[].")

    yield from walk(schema, "")


def reference_table(schema: Json) -> str:
    lines = ["| property | type | default | meaning |", "|---|---|---|---|"]
    for row in reference_rows(schema):
        desc = row.description.replace("|", "\\|").replace("<", "\\<")
        lines.append(f"| `{row.path}` | {row.type} | {row.default} | {desc} |")
    return "\n".join(lines)


def reference_doc(current: str, schema: Json) -> str:
    """``docs/trait-reference.md`` with the generated table replaced."""
    if BEGIN_MARK not in current or END_MARK not in current:
        raise SchemaError(f"{REFERENCE_FILE}: the GENERATED markers are missing")
    head, rest = current.split(BEGIN_MARK, 1)
    _, tail = rest.split(END_MARK, 1)
    return f"{head}{BEGIN_MARK}\n{reference_table(schema)}\n{END_MARK}{tail}"


# ---------------------------------------------------------------------------------------------
# The generated files


def generated_header(*sources: str) -> str:
    """The "Code generated ... DO NOT EDIT." comment text (one line per source)."""
    return "\n".join(
        ["Code generated by hack/gen.py. DO NOT EDIT.", "Sources:", *(f"  {s}" for s in sources)]
    )


def names() -> dict[str, str]:
    """Names shared by the trait, the CRD and the addon (from vela_progressive.core.model)."""
    return {
        "addonName": model.ADDON_NAME,
        "traitType": model.TRAIT_TYPE,
        "group": model.API_GROUP,
        "version": model.API_VERSION,
        "apiVersion": f"{model.API_GROUP}/{model.API_VERSION}",
        "kind": model.KIND,
        "plural": model.PLURAL,
        "shortName": model.SHORT_NAME,
        "holdLabel": model.HOLD_LABEL,
        "annotationPrefix": model.ANNOTATION_PREFIX,
        "disableHealthCheck": DISABLE_HEALTH_CHECK,
    }


#: Match keys of a step (trait property names) and the capability each one needs.
MATCH_FEATURES = (
    ("headers", "header"),
    ("cookies", "cookie"),
    ("queryParams", "query"),
    ("path", "path"),
)


def capability_table() -> dict[str, dict[str, Any]]:
    """Per provider id: which match features it serves, and who serves each missing one.

    The same table the Python validator uses (core.capabilities), Ingress classes from their
    templates included, so CUE and Python reject the same requests.
    """
    table = {pid: set(features) for pid, features in capabilities.PROVIDER_FEATURES.items()}
    for ingress_class in capabilities.known_ingress_classes(str(TEMPLATES)):
        table.setdefault(
            f"ingress/{ingress_class}",
            set(capabilities.template_features(ingress_class, str(TEMPLATES))),
        )
    out: dict[str, dict[str, Any]] = {}
    for pid in sorted(table):
        out[pid] = {feature: feature in table[pid] for _, feature in MATCH_FEATURES}
    return out


def supporting_types() -> dict[str, str]:
    """For each match feature, the routing types that serve it, for the error message.

    >>> supporting_types()["query"]
    'gateway or istio'
    """
    table = capability_table()
    words = {}
    for _, feature in MATCH_FEATURES:
        classes = [p.split("/", 1)[1] for p, caps in table.items() if caps[feature] and "/" in p]
        types = [p for p, caps in table.items() if caps[feature] and "/" not in p]
        if classes:
            types.append(f"ingress (class {', '.join(sorted(classes))})")
        words[feature] = " or ".join(sorted(types))
    return words


def render_trait(schema: Json) -> str:
    parameter_block, strategy_limits, imports = cue_parameter_block(schema, depth=1)
    # _resolvedRoutings is defined in the template: what TrafficRouting.from_dict computes.
    strategy_block = cue_copy_block(
        schema, depth=4, special={"canary.trafficRoutings": "_resolvedRoutings"}
    )
    header = generated_header(
        f"templates/cue/{model.TRAIT_TYPE}.cue.j2", str(SCHEMA_PATH.relative_to(ROOT))
    )
    return render_text(
        f"cue/{model.TRAIT_TYPE}.cue.j2",
        str(TEMPLATES),
        header=header,
        imports=imports,
        description=schema["description"],
        names=names(),
        parameter_block=parameter_block,
        strategy_limits=strategy_limits,
        strategy_block=strategy_block,
        capabilities=capability_table(),
        match_features=MATCH_FEATURES,
        supporting=supporting_types(),
        ingress_classes=[
            p.split("/", 1)[1] for p in capability_table() if p.startswith("ingress/")
        ],
    )


def render_crd(schema: Json) -> str:
    strategy = strategy_schema(schema)
    rendered = render_text(
        "crd/progressive-rollout.crd.yaml.j2", str(TEMPLATES), names=names(), strategy=strategy
    )
    obj = yaml.safe_load(rendered)
    if not isinstance(obj, dict) or obj.get("kind") != "CustomResourceDefinition":
        raise SchemaError("templates/crd/progressive-rollout.crd.yaml.j2 must render one CRD")
    for version in obj["spec"]["versions"]:
        root = version["schema"]["openAPIV3Schema"]
        spec = root["properties"]["spec"]["properties"]
        # tojson sorted the keys: put the properties back in the JSON Schema's order.
        if spec.get("strategy") != strategy:
            raise SchemaError("the CRD template must insert the strategy schema as given")
        spec["strategy"] = strategy
        version["schema"]["openAPIV3Schema"] = readable_order(root)
    header = generated_header(
        "templates/crd/progressive-rollout.crd.yaml.j2", str(SCHEMA_PATH.relative_to(ROOT))
    )
    body = yaml.safe_dump(obj, sort_keys=False, width=100, allow_unicode=True)
    return "".join(f"# {line}\n" for line in header.split("\n")) + body


def render_names() -> str:
    header = generated_header("templates/cue/names.cue.j2", "vela_progressive.core.model")
    return render_text("cue/names.cue.j2", str(TEMPLATES), header=header, names=names())


def generated_files() -> dict[Path, str]:
    schema = load_schema()
    current_doc = REFERENCE_FILE.read_text() if REFERENCE_FILE.exists() else ""
    return {
        TRAIT_FILE: render_trait(schema),
        CRD_FILE: render_crd(schema),
        NAMES_FILE: render_names(),
        REFERENCE_FILE: reference_doc(current_doc, schema),
    }


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def stale_files(files: Mapping[Path, str]) -> list[Path]:
    return [p for p, text in files.items() if not p.exists() or p.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if a generated file is stale"
    )
    args = parser.parse_args(argv)
    try:
        files = generated_files()
    except (SchemaError, OSError, ValueError) as exc:
        print(f"hack/gen.py: error: {exc}", file=sys.stderr)
        return 2
    stale = stale_files(files)
    if args.check:
        for path in stale:
            print(f"stale: {shown(path)} (run: .venv/bin/python hack/gen.py)")
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        print(f"wrote {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
