"""The JSON Schema check of the trait properties, every error turned into a :class:`Problem`.

jsonschema's own messages name no fix; these do, and one mistake gives one line (an unknown
``Name`` key does not also report a missing ``name``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

import jsonschema
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from vela_progressive.core import trait_schema
from vela_progressive.core.capabilities import Rule
from vela_progressive.core.validation.messages import (
    Problem,
    describe,
    field_path,
    is_integer,
    problem,
)

#: Schema messages the trait's CUE says too, where a CUE constraint would not name the field
#: (limits on the rendered strategy, a required field of an optional object), keyed by id.
RULES: dict[str, Rule] = {
    "required": Rule("missing (required)", "{fix}"),
    "minimum": Rule("{value} is below the minimum {minimum}", "{fix}"),
    "max-items": Rule("{count} items, at most {maximum} are allowed", "{fix}"),
    "empty-match": Rule(
        "a match needs at least one condition",
        "add headers, cookies, queryParams or path, or remove the empty entry",
    ),
}


def _is_integer(_checker: object, instance: object) -> bool:
    # YAML ``1.0`` is a float: the trait wants whole numbers, and so does CUE's ``int``.
    return is_integer(instance)


_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    Draft7Validator,
    type_checker=Draft7Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@cache
def _validator() -> Any:
    return _Validator(trait_schema.schema())


def schema_problems(props: object) -> list[Problem]:
    """Every way ``props`` breaks the trait's JSON Schema, in field order."""
    errors = sorted(_validator().iter_errors(props), key=_sort_key)
    return _without_echoes([p for e in errors for p in _schema_problems(e)])


_TYPE_WORDS = {
    "integer": "a whole number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "number": "a number",
}

_FIELD_FIXES = {
    "weight": "use a whole number of percent from 0 to 100, without the % sign, e.g. weight: 20",
    "duration": "use whole seconds, e.g. duration: 60, or leave it out to wait for approval",
    "replicas": "use an integer or a percentage like '20%'",
    "failureThreshold": "use an integer or a percentage like '20%'",
    "stepPartition": "use a step number from 1 to the number of steps",
    "gracePeriodSeconds": "use whole seconds, e.g. gracePeriodSeconds: 5",
    "progressDeadlineSeconds": "use whole seconds, e.g. progressDeadlineSeconds: 600",
    "steps": "list the steps, e.g. steps: [{replicas: '20%', weight: 20}, {replicas: '100%'}]",
    "auto": "use true or false",
    "canary": "write canary: {steps: [{replicas: '20%', weight: 20}, {replicas: '100%'}]}",
    "trafficRoutings": "list the routings, e.g. trafficRoutings: [{type: ingress}]",
    "matches": "list the matches, e.g. matches: [{headers: [{name: x-canary, value: 'true'}]}]",
    "headers": "list the conditions, e.g. headers: [{name: x-canary, value: 'true'}]",
    "queryParams": "list the conditions, e.g. queryParams: [{name: beta, value: 'true'}]",
    "cookies": "list the conditions, e.g. cookies: [{name: canary}]",
    "workloadType": "write workloadType: {apiVersion: apps/v1, kind: StatefulSet}",
    "disableGenerateCanaryService": "use true or false",
}


def _noun(path: Sequence[str | int]) -> str:
    """What kind of object lives at ``path`` (for messages about its keys)."""
    named = [p for p in path if isinstance(p, str)]
    last = named[-1] if named else None
    return {
        None: "progressive-rollout property",
        "canary": "canary",
        "workloadType": "workloadType",
        "steps": "step",
        "matches": "match",
        "headers": "header match",
        "queryParams": "query parameter match",
        "cookies": "cookie match",
        "path": "path match",
        "trafficRoutings": "traffic routing",
    }.get(last, str(last))


def _unknown_key_problem(path: list[str | int], key: str, allowed: Sequence[str]) -> Problem:
    where = field_path([*path, key])
    noun = _noun(path)
    names = ", ".join(sorted(allowed))
    if key.lower() in allowed and key != key.lower():
        fix = f"{noun} keys are lower-case: {names}"
    elif key.lower() == "traffic" and "weight" in allowed:
        fix = "the traffic percentage of a step is called weight, e.g. weight: 20"
    elif key == "pause" and "duration" in allowed:
        fix = "write duration: <seconds> on the step, or leave it out to wait for approval"
    else:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        fix = f"{hint}{noun} keys are: {names}"
    return Problem(where, f"unknown property {key!r}", fix)


def _int_or_percent_problem(where: str, value: object, key: str) -> Problem:
    fix = "use an integer or a percentage like '20%'"
    if isinstance(value, str):
        number = value.replace(" ", "").removesuffix("%")
        if " " in value and re.fullmatch(r"\d+", number) and value.strip().endswith("%"):
            fix = f"write it without spaces: '{number}%'"
        elif re.fullmatch(r"\d+%", value) and int(value[:-1]) > 100:
            fix = "a percentage goes from 0% to 100%"
        elif re.fullmatch(r"\d+", value):
            fix = f"add the % sign ('{value}%') or write the integer without quotes ({value})"
        elif re.fullmatch(r"\d+\.\d+%", value):
            fix = "use a whole percentage like '20%'"
    elif isinstance(value, int) and not isinstance(value, bool) and value < 0:
        fix = "use a number of pods ≥ 0 or a percentage like '20%'"
    what = "a number of pods or a percentage" if key == "replicas" else "an integer or percentage"
    return Problem(where, f"{describe(value)} is not {what}", fix)


def _schema_problems(error: ValidationError) -> Iterator[Problem]:
    path = list(error.absolute_path)
    where = field_path(path)
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    value: Any = error.instance
    kind = error.validator
    spec: Any = error.validator_value
    node: Any = error.schema

    if kind == "additionalProperties":
        allowed = list(node.get("properties", {}))
        for extra in value:
            if extra not in allowed:
                yield _unknown_key_problem(path, str(extra), allowed)
    elif kind == "required":
        missing = re.match(r"'([^']+)'", error.message)
        name = missing.group(1) if missing else str(spec)
        yield problem(RULES["required"], field_path([*path, name]), fix=required_fix(path, name))
    elif kind == "oneOf":
        yield _int_or_percent_problem(where, value, key)
    elif kind == "type":
        expected = spec if isinstance(spec, str) else " or ".join(spec)
        words = _TYPE_WORDS.get(expected, expected)
        fix = _FIELD_FIXES.get(key, f"use {words}")
        if expected == "string" and isinstance(value, bool | int | float):
            text = json.dumps(value)
            fix = f'quote it: {key}: "{text}"' if key else f'quote it: "{text}"'
        elif expected == "integer" and isinstance(value, str) and key == "weight":
            fix = _FIELD_FIXES["weight"]
        yield Problem(where, f"expected {words}, got {describe(value)}", fix)
    elif kind == "enum":
        choices = ", ".join(str(c) for c in spec)
        fix = f"use one of: {choices}"
        if key == "type" and value == "nginx":
            fix = "for an NGINX Ingress use type: ingress (ingressClass defaults to nginx)"
        elif key == "type" and value in ("alb", "ingress/aliyun-alb"):
            fix = "for an Aliyun ALB Ingress use type: aliyun-alb"
        elif isinstance(value, str) and (close := _case_match(value, spec)):
            fix = f"values are case-sensitive: use {close!r}"
        yield Problem(where, f"{value!r} is not one of {choices}", fix)
    elif kind in ("minimum", "exclusiveMinimum"):
        yield problem(RULES["minimum"], where, value=value, minimum=spec, fix=field_fix(key, spec))
    elif kind in ("maximum", "exclusiveMaximum"):
        yield Problem(
            where, f"{value} is above the maximum {spec}", _FIELD_FIXES.get(key, f"use ≤ {spec}")
        )
    elif kind == "minItems":
        if key == "steps":
            yield Problem(
                where, "there are no steps", "add at least one step, e.g. {replicas: '100%'}"
            )
        else:
            yield Problem(where, f"needs at least {spec} item(s)", "add one or remove the field")
    elif kind == "maxItems":
        yield problem(
            RULES["max-items"], where, count=len(value), maximum=spec, fix=max_items_fix(key, spec)
        )
    elif kind == "minLength":
        yield Problem(where, "must not be empty", f"set {key} or leave it out")
    elif kind == "minProperties":
        yield problem(RULES["empty-match"], where)
    elif kind == "pattern":
        fix = "a path starts with /, e.g. /api" if key == "value" else f"match {spec}"
        yield Problem(where, f"{value!r} is not valid here", fix)
    else:  # pragma: no cover - every keyword the schema uses is handled above
        yield Problem(where, error.message, "see the trait's documentation")


def _without_echoes(problems: list[Problem]) -> list[Problem]:
    """Drop "missing 'name'" when the same object has an unknown 'Name' (one mistake, one line)."""
    miscased = {
        p.path.lower()
        for p in problems
        if p.message.startswith("unknown property") and "lower-case" in p.fix
    }
    return [
        p
        for p in problems
        if not (p.message == "missing (required)" and p.path.lower() in miscased)
    ]


def _case_match(value: str, choices: Sequence[Any]) -> str | None:
    for choice in choices:
        if isinstance(choice, str) and choice.lower() == value.lower():
            return choice
    return None


def field_fix(key: str, minimum: object) -> str:
    """The fix for a number below its minimum."""
    return _FIELD_FIXES.get(key, f"use ≥ {minimum}")


def max_items_fix(key: str, maximum: object) -> str:
    """The fix for a list with too many items."""
    return (
        f"merge steps: a release has at most {maximum} steps" if key == "steps" else "remove some"
    )


def required_fix(path: Sequence[str | int], name: str) -> str:
    """The fix for a missing required property ``name`` of the object at ``path``."""
    noun = _noun(path)
    examples = {
        "canary": "add canary: {steps: [{replicas: '20%', weight: 20}, {replicas: '100%'}]}",
        "steps": "add steps: [{replicas: '20%', weight: 20}, {replicas: '100%'}]",
        "name": f"every {noun} needs a name",
        "value": f"every {noun} needs a value",
        "apiVersion": "workloadType needs apiVersion and kind, e.g. {apiVersion: apps/v1, "
        "kind: StatefulSet}",
        "kind": "workloadType needs apiVersion and kind, e.g. {apiVersion: apps/v1, "
        "kind: StatefulSet}",
    }
    return examples.get(name, f"add {name}")


def _sort_key(error: ValidationError) -> tuple[tuple[int, str | int], ...]:
    return tuple((0, p) if isinstance(p, int) else (1, p) for p in error.absolute_path)
