"""JSON Schema -> Kubernetes structural OpenAPI schema (the CRD's ``spec.strategy``).

Every ``$ref`` is inlined, an int-or-percent ``oneOf`` becomes ``x-kubernetes-int-or-string``,
and a keyword without a structural equivalent is an error naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vela_progressive.core.trait_schema import Json, SchemaError, is_int_or_string, resolve

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
