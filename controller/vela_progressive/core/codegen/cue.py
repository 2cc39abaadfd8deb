"""JSON Schema -> CUE: the ``parameter`` block of the trait, its ``#Definitions``, the limits a
parameter cannot carry, the copy of the parameter into the CR's strategy, and the rules' messages
as CUE strings (the same words as the Python validator's).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vela_progressive.core import capabilities
from vela_progressive.core.capabilities import Rule
from vela_progressive.core.trait_schema import (
    Json,
    SchemaError,
    default_of,
    definition,
    description_of,
    is_struct,
    merged,
    resolve,
)
from vela_progressive.core.validation import providers as provider_rules
from vela_progressive.core.validation import rules as step_rules
from vela_progressive.core.validation.schema import RULES as SCHEMA_RULES
from vela_progressive.core.validation.schema import field_fix, max_items_fix, required_fix

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
# Messages: a rule's wording as a CUE string


@dataclass(frozen=True)
class Text:
    """A literal value for a placeholder of a rule (a CUE expression is the default)."""

    value: str


def cue_escape(text: str) -> str:
    """``text`` inside a CUE double-quoted string (the escapes of JSON are CUE's too)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def cue_interpolated(template: str, values: Mapping[str, str | Text]) -> str:
    """The body of a CUE string for a ``str.format`` template: literal text escaped, each
    ``{name}`` replaced by ``\\(<CUE expression>)`` (or by the literal text of a :class:`Text`).

    >>> cue_interpolated('steps[{i}] has "{n}"', {"i": "si", "n": Text("a")})
    'steps[\\\\(si)] has \\\\"a\\\\"'
    """
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        out.append(cue_escape(literal))
        if name is None:
            continue
        if spec or conversion or name not in values:
            raise SchemaError(f"template {template!r}: give a value for {{{name}}}")
        value = values[name]
        out.append(cue_escape(value.value) if isinstance(value, Text) else f"\\({value})")
    return "".join(out)


def cue_problem(rule: Rule, path: str, values: Mapping[str, str | Text]) -> str:
    """A CUE string literal saying what :func:`vela_progressive.core.validation.problem` says:
    ``<path>: <message> — <fix>``. ``path`` is a template too (e.g. ``canary.steps[{si}]``).

    >>> print(cue_problem(Rule("{n} is odd", "use {m}"), "steps[{i}]", {"i": "si", "n": "x",
    ...                   "m": Text("2")}))
    "steps[\\(si)]: \\(x) is odd — use 2"
    """
    parts = [
        cue_interpolated(path, values),
        ": ",
        cue_interpolated(rule.message, values),
        cue_escape(" — "),
        cue_interpolated(rule.fix, values),
    ]
    return '"' + "".join(parts) + '"'


def rules() -> dict[str, Rule]:
    """Every rule the trait's CUE checks, by id: the validator's step, mode and routing rules,
    and the provider rules, whose message follows ``{who}`` (the routing's name)."""
    tables = (SCHEMA_RULES, step_rules.RULES, provider_rules.RULES)
    found: dict[str, Rule] = {k: v for table in tables for k, v in table.items()}
    for key, rule in capabilities.RULES.items():
        found[key] = Rule("{who} " + rule.message, rule.fix)
    if len(found) != sum(map(len, tables)) + len(capabilities.RULES):
        raise SchemaError("two rules share an id")
    return found


def say(rule_id: str, path: str, **values: str | Text) -> str:
    """What the trait template calls: the CUE string of rule ``rule_id`` at ``path``."""
    known = rules()
    if rule_id not in known:
        raise SchemaError(f"no rule {rule_id!r}; known: {', '.join(sorted(known))}")
    return cue_problem(known[rule_id], path, values)


# ---------------------------------------------------------------------------------------------
# Routings and providers, from core.capabilities


def resolved_routings(source: str, depth: int) -> str:
    """CUE list of the routings in ``source`` resolved as
    :func:`vela_progressive.core.capabilities.resolve_routing` resolves them (from
    :data:`~vela_progressive.core.capabilities.ROUTING_TYPES`); the schema's own defaults
    (type, grace period, class) come with the generated ``parameter``."""
    lines = [
        "[",
        f"\tif {source} != _|_ for r in {source} {{",
        "\t\tif r.service != _|_ {",
        "\t\t\tservice: r.service",
        "\t\t}",
        "\t\tif r.service == _|_ {",
        "\t\t\tservice: context.name",
        "\t\t}",
        "\t\tgracePeriodSeconds: r.gracePeriodSeconds",
    ]
    for rtype in capabilities.ROUTING_TYPES.values():
        lines.append(f"\t\tif r.type == {cue_literal(rtype.name)} {{")
        lines.append(f"\t\t\ttype: {cue_literal(rtype.provider)}")
        if rtype.ingress_class is not None:
            lines.append(f"\t\t\tingressClass: {cue_literal(rtype.ingress_class)}")
        elif rtype.provider == "ingress":
            lines.append("\t\t\tingressClass: r.ingressClass")
        name = rtype.object_field
        lines += [
            f"\t\t\tif r.{name} != _|_ {{",
            f"\t\t\t\t{name}: r.{name}",
            "\t\t\t}",
            f"\t\t\tif r.{name} == _|_ {{",
            f"\t\t\t\t{name}: context.name",
            "\t\t\t}",
        ]
        for extra in rtype.extra_fields:
            lines += [f"\t\t\tif r.{extra} != _|_ {{", f"\t\t\t\t{extra}: r.{extra}", "\t\t\t}"]
        lines.append("\t\t}")
    lines += ["\t},", "]"]
    pad = "\t" * depth
    return "\n".join(lines[:1] + [pad + line for line in lines[1:]])


def routing_objects() -> dict[str, tuple[str, str]]:
    """Resolved routing type -> (kind of the object it changes, the field naming it)."""
    return {
        t.provider: (t.object_kind, t.object_field) for t in capabilities.ROUTING_TYPES.values()
    }


def provider_rows(templates_root: str | None = None) -> dict[str, dict[str, bool]]:
    """The capability table as CUE data: per provider id, each feature a step can ask for, and
    whether it is a canary-annotation Ingress and which limits it has."""
    rows: dict[str, dict[str, bool]] = {}
    for pid, provider in capabilities.provider_table(templates_root).items():
        row = {feature: feature in provider.features for feature in capabilities.FEATURES}
        row["annotationIngress"] = provider.annotation_ingress
        for limit in capabilities.LIMITS:
            row[_camel(limit)] = limit in provider.limits
        rows[pid] = row
    return rows


def _camel(words: str) -> str:
    first, *rest = words.split("-")
    return first + "".join(w.capitalize() for w in rest)


def schema_checks(schema: Json) -> dict[str, Any]:
    """What the trait's CUE checks with the schema's words where a CUE constraint would not name
    the field: the required fields of ``workloadType``, the number of steps and the minimum of
    the numbers that have a default (their bounds sit on the rendered strategy)."""
    props = schema["properties"]
    steps = merged(schema, props["canary"]["properties"]["steps"])
    workload = merged(schema, props["workloadType"])
    deadline = merged(schema, props["progressDeadlineSeconds"])
    grace = merged(schema, definition("trafficRouting", schema)["properties"]["gracePeriodSeconds"])
    required = list(workload.get("required", []))
    return {
        "workloadTypeRequired": required,
        "workloadTypeFix": required_fix(["workloadType"], required[0]),
        "maxSteps": steps["maxItems"],
        "maxStepsFix": max_items_fix("steps", steps["maxItems"]),
        "deadlineMinimum": deadline["minimum"],
        "deadlineFix": field_fix("progressDeadlineSeconds", deadline["minimum"]),
        "graceMinimum": grace["minimum"],
        "graceFix": field_fix("gracePeriodSeconds", grace["minimum"]),
    }
