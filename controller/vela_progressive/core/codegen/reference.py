"""The property table of ``docs/trait-reference.md``, from the JSON Schema, and the provider
table, from :mod:`vela_progressive.core.capabilities`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from vela_progressive.core import capabilities
from vela_progressive.core.trait_schema import (
    Json,
    default_of,
    description_of,
    is_int_or_string,
    is_struct,
    resolve,
)


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


def provider_table(templates_root: str | None = None) -> str:
    """What each traffic provider serves, and the rules of canary-annotation Ingresses: the
    same table and words the validator and the trait's CUE use."""
    features = list(capabilities.FEATURES)
    lines = [
        "| provider | " + " | ".join(features) + " | limits |",
        "|---|" + "---|" * len(features) + "---|",
    ]
    for pid, provider in capabilities.provider_table(templates_root).items():
        cells = ["yes" if f in provider.features else "no" for f in features]
        limits = ", ".join(f"`{limit}`" for limit in sorted(provider.limits))
        lines.append(f"| `{pid}` | " + " | ".join(cells) + f" | {limits} |")
    lines += ["", "| rule | applies to | the routing ... | fix |", "|---|---|---|---|"]
    for key, rule in capabilities.RULES.items():
        if key == "feature":
            scope = "every provider"
        elif key in capabilities.LIMITS:
            scope = f"Ingress classes with the limit `{key}`"
        else:
            scope = "every Ingress class (canary annotations)"
        message, fix = (_shown(text) for text in (rule.message, rule.fix))
        lines.append(f"| `{key}` | {scope} | {message} | {fix} |")
    return "\n".join(lines)


def _shown(template: str) -> str:
    """A rule's wording for a Markdown table: placeholders as ``<name>``."""
    return re.sub(r"\{(\w+)\}", r"<\1>", template).replace("|", "\\|").replace("<", "\\<")
