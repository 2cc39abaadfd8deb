"""The trait's JSON Schema as data: loading, ``$ref``, defaults and descriptions.

The schema (``schemas/progressive-rollout.schema.json``, static package data) is the single
source of the trait's properties. This module only reads it; the validator
(:mod:`vela_progressive.core.validation`), the routing defaults
(:func:`vela_progressive.core.capabilities.resolve_routing`) and the generators of the CUE, the
CRD and the docs (:mod:`vela_progressive.core.codegen`) all read it through here.

Only local references of the form ``#/definitions/<name>`` are supported.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).parent / "schemas" / "progressive-rollout.schema.json"

Json = dict[str, Any]

_REF_PREFIX = "#/definitions/"


class SchemaError(ValueError):
    """The JSON Schema uses something this code cannot express; the message names the field."""


def load(path: Path = SCHEMA_PATH) -> Json:
    """Read a schema file (not cached: the generators read the file they are given)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: the schema must be a JSON object")
    return data


@cache
def schema() -> Json:
    """The trait's JSON Schema (bundled with the package; read once). Do not mutate it."""
    return load()


def resolve(root: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[str | None, Json]:
    """``(definition name, target)`` for a ``$ref`` node, ``(None, node)`` otherwise.

    >>> resolve({"definitions": {"a": {"type": "string"}}}, {"$ref": "#/definitions/a"})
    ('a', {'type': 'string'})
    """
    ref = node.get("$ref")
    if ref is None:
        return None, dict(node)
    if not isinstance(ref, str) or not ref.startswith(_REF_PREFIX):
        raise SchemaError(f"unsupported $ref {ref!r}: only {_REF_PREFIX}<name> is supported")
    name = ref[len(_REF_PREFIX) :]
    target = root.get("definitions", {}).get(name)
    if not isinstance(target, dict):
        raise SchemaError(f"$ref {ref!r} names no definition")
    return name, target


def merged(root: Mapping[str, Any], node: Mapping[str, Any]) -> Json:
    """The node with its ``$ref`` target merged in (the node's own keywords win)."""
    out = dict(node)
    while "$ref" in out:
        _, target = resolve(root, out)
        out.pop("$ref")
        out = {**target, **out}
    return out


def description_of(root: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """The node's own description, else its ``$ref`` target's, on one line."""
    text = node.get("description")
    if text is None:
        text = resolve(root, node)[1].get("description")
    return " ".join(str(text).split()) if text is not None else None


def default_of(root: Mapping[str, Any], node: Mapping[str, Any]) -> Any:
    """The node's ``default``, else its ``$ref`` target's (None: no default)."""
    if "default" in node:
        return node["default"]
    return resolve(root, node)[1].get("default")


def is_struct(node: Mapping[str, Any]) -> bool:
    return node.get("type") == "object" and "properties" in node


def is_int_or_string(branches: list[Json]) -> bool:
    return sorted(str(b.get("type")) for b in branches) == ["integer", "string"]


def definition(name: str, root: Mapping[str, Any] | None = None) -> Json:
    """The object under ``definitions/<name>`` of the trait's schema (or of ``root``)."""
    found = (root if root is not None else schema()).get("definitions", {}).get(name)
    if not isinstance(found, dict):
        raise SchemaError(f"the schema has no definition {name!r}")
    return found


def defaults_of(node: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> Json:
    """The ``default`` of each property of an object node that has one.

    >>> defaults_of(definition("trafficRouting"))
    {'type': 'ingress', 'gracePeriodSeconds': 5, 'ingressClass': 'nginx'}
    """
    top = root if root is not None else schema()
    out: Json = {}
    for key, prop in merged(top, node).get("properties", {}).items():
        value = default_of(top, prop)
        if value is not None:
            out[key] = value
    return out


def apply_defaults(
    value: Any, node: Mapping[str, Any] | None = None, root: Mapping[str, Any] | None = None
) -> Any:
    """A copy of ``value`` with the schema's ``default`` values filled in, recursively.

    Defaults are filled inside objects that are present (never creating an absent parent),
    in array items and through ``$ref``.

    >>> apply_defaults({"canary": {"steps": [{"matches": [{"cookies": [{"name": "c"}]}]}]}})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'canary': {'steps': [{'matches': [{'cookies': [{'name': 'c', 'value': 'always'}]}]}],
                'disableGenerateCanaryService': False},
     'auto': False, 'progressDeadlineSeconds': 600, 'onFailure': 'abort'}
    """
    top = root if root is not None else schema()
    here = merged(top, node if node is not None else top)
    if isinstance(value, dict):
        props: dict[str, Any] = here.get("properties", {})
        out = {k: apply_defaults(v, props[k], top) if k in props else v for k, v in value.items()}
        for key, sub in props.items():
            resolved = merged(top, sub)
            if key not in out and "default" in resolved:
                out[key] = apply_defaults(copy.deepcopy(resolved["default"]), resolved, top)
        return out
    if isinstance(value, list) and isinstance(here.get("items"), dict):
        return [apply_defaults(item, here["items"], top) for item in value]
    return value
