"""Validate ``progressive-rollout`` trait properties and explain every problem.

:func:`validate_properties` checks the properties against the trait's JSON Schema (the single
source, ``schemas/progressive-rollout.schema.json``), applies the schema's defaults (jsonschema
does not), then checks the rules a schema cannot express. Every problem names the field, says
what is wrong and how to fix it::

    canary.steps[1].weight: 30 is lower than the previous step's 50; weights never decrease
    — raise it to at least 50

Cross-field rules (beyond the schema):

* each step sets ``replicas`` or ``weight`` (a missing ``replicas`` means "the weight as a
  percentage", as in Kruise) and puts at least one pod on the new version;
* weights never decrease; replicas never decrease, compared like with like (int with int,
  % with %); mixed units are checked by the planner against the real replica count;
* ``stepPartition`` is at most the number of steps;
* ``matches`` need at least one traffic routing, and every routing's provider must support every
  feature a step uses (weight, header, cookie, query, path; see
  :mod:`vela_progressive.core.capabilities`);
* NGINX-style Ingress providers (canary annotations): within one step at most one header
  condition and one cookie condition in total, each in its own match entry (the annotations
  ``canary-by-header`` and ``canary-by-cookie`` are ORed), and the cookie value ``always``.
  A ``RegularExpression`` header becomes ``canary-by-header-pattern``;
* ``releaseMode: canary`` (an extra ``<name>-canary`` Deployment) needs a Deployment;
* two routings may not change the same object; routing-specific names (``ingressName``,
  ``gatewayHTTPRouteName``, ``virtualServiceName``, ``destinationRuleName``) only go with
  their type.

A last step below 100% is allowed: the release finalises after the last step (every pod moves
to the new version), as Kruise does.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from vela_progressive.core.capabilities import (
    PROVIDER_FEATURES,
    UnknownProviderError,
    capabilities,
    ingress_template,
    known_ingress_classes,
    provider_id,
)
from vela_progressive.core.model import TRAIT_TYPE, Match, Strategy, TrafficRouting
from vela_progressive.core.traffic import RouteState, provider_for

SCHEMA_PATH = Path(__file__).parent / "schemas" / "progressive-rollout.schema.json"

#: Component types of KubeVela's built-in catalog and the workload kind they render.
COMPONENT_KINDS: dict[str, tuple[str, str]] = {
    "webservice": ("apps/v1", "Deployment"),
    "worker": ("apps/v1", "Deployment"),
    "statefulset": ("apps/v1", "StatefulSet"),
    "daemon": ("apps/v1", "DaemonSet"),
}

_FEATURE_WORDS = {
    "weight": "split traffic by weight",
    "header": "match on headers",
    "cookie": "match on cookies",
    "query": "match on query parameters",
    "path": "match on the path",
    "mirror": "mirror traffic",
}
_FEATURE_FIELDS = {"header": "headers", "cookie": "cookies", "query": "queryParams", "path": "path"}
#: How a user selects each provider id in the trait.
_PROVIDER_TYPE = {
    "ingress/nginx": "ingress",
    "ingress/aliyun-alb": "aliyun-alb",
    "gateway": "gateway",
    "istio": "istio",
}
#: Routing fields that only make sense for one routing type.
_TYPE_ONLY_FIELDS = {
    "ingressName": ("ingress", "aliyun-alb"),
    "gatewayHTTPRouteName": ("gateway",),
    "virtualServiceName": ("istio",),
    "destinationRuleName": ("istio",),
}
_OBJECT_KIND = {"ingress": "Ingress", "gateway": "HTTPRoute", "istio": "VirtualService"}


# --------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where, what, and how to fix it."""

    path: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = self.path or "properties"
        return f"{where}: {self.message}" + (f" — {self.fix}" if self.fix else "")

    def under(self, prefix: str) -> Problem:
        """The same problem with its path below ``prefix``."""
        if not prefix:
            return self
        if not self.path:
            return Problem(prefix, self.message, self.fix)
        sep = "" if self.path.startswith("[") else "."
        return Problem(f"{prefix}{sep}{self.path}", self.message, self.fix)


class InvalidSpec(ValueError):
    """The input is invalid; ``problems`` lists every reason, ``str()`` one line per problem."""

    def __init__(self, problems: Sequence[Problem], component: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.component = component
        super().__init__("\n".join(str(p) for p in self.problems))

    def under(self, prefix: str) -> InvalidSpec:
        return InvalidSpec([p.under(prefix) for p in self.problems], self.component)


def field_path(parts: Iterable[str | int]) -> str:
    """``("canary", "steps", 1, "weight")`` → ``canary.steps[1].weight``.

    >>> field_path(["canary", "trafficRoutings", 0, "type"])
    'canary.trafficRoutings[0].type'
    >>> field_path([])
    ''
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# --------------------------------------------------------------------------------------------
# The schema


@cache
def schema() -> dict[str, Any]:
    """The trait's JSON Schema (bundled with the package; read once)."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _is_integer(_checker: object, instance: object) -> bool:
    # YAML ``1.0`` is a float: the trait wants whole numbers, and so does CUE's ``int``.
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    Draft7Validator,
    type_checker=Draft7Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@cache
def _validator() -> Any:
    return _Validator(schema())


def _resolve(node: Mapping[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (merging sibling keywords such as ``default``)."""
    merged = dict(node)
    while "$ref" in merged:
        ref = merged.pop("$ref")
        target: Any = schema()
        for key in ref.removeprefix("#/").split("/"):
            target = target[key]
        merged = {**target, **merged}
    return merged


def apply_defaults(value: Any, node: Mapping[str, Any] | None = None) -> Any:
    """A copy of ``value`` with the schema's ``default`` values filled in, recursively.

    Defaults are filled inside objects that are present (never creating an absent parent),
    in array items and through ``$ref``.

    >>> apply_defaults({"canary": {"steps": [{"matches": [{"cookies": [{"name": "c"}]}]}]}})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'canary': {'steps': [{'matches': [{'cookies': [{'name': 'c', 'value': 'always'}]}]}],
                'disableGenerateCanaryService': False},
     'auto': False, 'progressDeadlineSeconds': 600}
    """
    node = _resolve(node if node is not None else schema())
    if isinstance(value, dict):
        props: dict[str, Any] = node.get("properties", {})
        out = {k: apply_defaults(v, props[k]) if k in props else v for k, v in value.items()}
        for key, sub in props.items():
            resolved = _resolve(sub)
            if key not in out and "default" in resolved:
                out[key] = apply_defaults(copy.deepcopy(resolved["default"]), resolved)
        return out
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [apply_defaults(item, node["items"]) for item in value]
    return value


# --------------------------------------------------------------------------------------------
# Schema errors → problems


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


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
    return Problem(where, f"{_describe(value)} is not {what}", fix)


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
        yield Problem(
            field_path([*path, name]),
            "missing (required)",
            _required_fix(path, name),
        )
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
        yield Problem(where, f"expected {words}, got {_describe(value)}", fix)
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
        yield Problem(
            where, f"{value} is below the minimum {spec}", _FIELD_FIXES.get(key, f"use ≥ {spec}")
        )
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
        yield Problem(
            where,
            f"{len(value)} items, at most {spec} are allowed",
            "merge steps: a release has at most 50 steps" if key == "steps" else "remove some",
        )
    elif kind == "minLength":
        yield Problem(where, "must not be empty", f"set {key} or leave it out")
    elif kind == "minProperties":
        yield Problem(
            where,
            "a match needs at least one condition",
            "add headers, cookies, queryParams or path, or remove the empty entry",
        )
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


def _required_fix(path: Sequence[str | int], name: str) -> str:
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


# --------------------------------------------------------------------------------------------
# Cross-field rules


def _as_percent(replicas: object) -> int | None:
    if isinstance(replicas, str) and replicas.endswith("%"):
        return int(replicas[:-1])
    return None


def _step_problems(props: dict[str, Any]) -> Iterator[Problem]:
    steps: list[dict[str, Any]] = props["canary"]["steps"]
    last_weight: tuple[int, int] | None = None  # (step index, weight)
    last_count: dict[str, tuple[int, int]] = {}  # unit -> (step index, value)
    for i, step in enumerate(steps):
        here = f"canary.steps[{i}]"
        weight, replicas = step.get("weight"), step.get("replicas")
        if weight is None and replicas is None:
            yield Problem(
                here,
                "sets neither replicas nor weight",
                "set replicas (pods on the new version, e.g. '20%') and/or weight (traffic %)",
            )
        effective: object = (
            replicas if replicas is not None else None if weight is None else f"{weight}%"
        )
        if replicas in (0, "0%"):
            yield Problem(
                f"{here}.replicas",
                f"{replicas!r} puts no pod on the new version",
                "use at least 1 pod or 1%",
            )
        elif replicas is None and weight == 0:
            yield Problem(
                f"{here}.weight",
                "weight 0 without replicas puts no pod on the new version",
                "set replicas, e.g. replicas: 1",
            )
        weight_decreased = False
        if weight is not None:
            if last_weight is not None and weight < last_weight[1]:
                weight_decreased = True
                j, before = last_weight
                whose = "the previous step's" if j == i - 1 else f"canary.steps[{j}]'s"
                yield Problem(
                    f"{here}.weight",
                    f"{weight} is lower than {whose} {before}; weights never decrease",
                    f"raise it to at least {before}",
                )
            else:
                last_weight = (i, weight)
        percent = _as_percent(effective)
        unit, value = ("%", percent) if percent is not None else ("pods", effective)
        if not isinstance(value, int):
            continue
        if unit in last_count and value < last_count[unit][1]:
            if weight_decreased and replicas is None:
                continue  # the weight rule above already reported this step
            j, before = last_count[unit]
            shown = f"{value}%" if unit == "%" else str(value)
            before_shown = f"{before}%" if unit == "%" else str(before)
            whose = "the previous step's" if j == i - 1 else f"canary.steps[{j}]'s"
            if replicas is None:
                yield Problem(
                    f"{here}.weight",
                    f"the step has no replicas, so its weight makes it {shown} of the pods, "
                    f"lower than {whose} {before_shown}; replicas never decrease",
                    f"set replicas: '{before_shown}' or more on this step",
                )
            else:
                yield Problem(
                    f"{here}.replicas",
                    f"{shown} is lower than {whose} {before_shown}; replicas never decrease",
                    f"raise it to at least {before_shown}",
                )
        else:
            last_count[unit] = (i, value)

    partition = props.get("stepPartition")
    if partition is not None and partition > len(steps):
        yield Problem(
            "stepPartition",
            f"{partition} is more than the number of steps ({len(steps)})",
            f"use a step number from 1 to {len(steps)}",
        )


def _routing_problems(
    props: dict[str, Any], component: str | None
) -> Iterator[Problem | tuple[int, TrafficRouting, frozenset[str]]]:
    """Problems of each routing; yields ``(index, routing, capabilities)`` for the good ones."""
    routings: list[dict[str, Any]] = props["canary"].get("trafficRoutings", [])
    seen: dict[tuple[str, str], int] = {}
    for i, raw in enumerate(routings):
        here = f"canary.trafficRoutings[{i}]"
        rtype = raw.get("type", "ingress")
        for name, types in _TYPE_ONLY_FIELDS.items():
            if name in raw and rtype not in types:
                wanted = " or ".join(types)
                yield Problem(
                    f"{here}.{name}",
                    f"{name} is used by type {wanted} only, this routing is type {rtype}",
                    f"remove {name} or set type: {types[0]}",
                )
        routing = TrafficRouting.from_dict(raw, component or "<component>")
        key = (_OBJECT_KIND[routing.type], routing.object_name)
        if key in seen:
            yield Problem(
                here,
                f"changes {key[0]} {key[1]!r} like canary.trafficRoutings[{seen[key]}]",
                "remove the duplicate, or name another object",
            )
        else:
            seen[key] = i
        try:
            caps = capabilities(routing)
        except UnknownProviderError:
            known = sorted(
                {p.split("/", 1)[1] for p in PROVIDER_FEATURES if "/" in p}
                | set(known_ingress_classes())
            )
            yield Problem(
                f"{here}.ingressClass",
                f"no canary Ingress template for class {routing.ingress_class!r}",
                f"use ingressClass {_either(known)}, or type gateway or istio; a platform team "
                f"adds a class as templates/{ingress_template('<class>')}",
            )
            continue
        yield (i, routing, caps)


def _supporting_types(feature: str) -> str:
    types = [
        _PROVIDER_TYPE[pid]
        for pid, feats in PROVIDER_FEATURES.items()
        if feature in feats and pid in _PROVIDER_TYPE
    ]
    return _either(list(dict.fromkeys(types)))


def _either(words: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} or {words[-1]}"


def _feature_problems(
    props: dict[str, Any], routings: list[tuple[int, TrafficRouting, frozenset[str]]]
) -> Iterator[Problem]:
    canary = props["canary"]
    steps: list[dict[str, Any]] = canary["steps"]
    has_routing = bool(canary.get("trafficRoutings"))
    for i, step in enumerate(steps):
        here = f"canary.steps[{i}]"
        raw_matches: list[dict[str, Any]] = step.get("matches", [])
        if raw_matches and not has_routing:
            yield Problem(
                f"{here}.matches",
                "A/B matches need a traffic routing to apply them",
                "add canary.trafficRoutings, e.g. [{type: ingress}], or remove the matches",
            )
        for r_index, routing, caps in routings:
            pid = provider_id(routing)
            who = f"canary.trafficRoutings[{r_index}] ({pid})"
            own: list[Problem] = []
            if step.get("weight") is not None and "weight" not in caps:
                own.append(
                    Problem(
                        f"{here}.weight",
                        f"{who} cannot {_FEATURE_WORDS['weight']}",
                        f"use type {_supporting_types('weight')}, or remove the weight",
                    )
                )
            for m_index, raw in enumerate(raw_matches):
                for feature in sorted(Match.from_dict(raw).features() - caps):
                    field = f"{here}.matches[{m_index}].{_FEATURE_FIELDS[feature]}"
                    own.append(
                        Problem(
                            field,
                            f"{who} cannot {_FEATURE_WORDS[feature]}",
                            f"use type {_supporting_types(feature)}, or drop {field}",
                        )
                    )
            if pid.startswith("ingress/"):
                own.extend(_annotation_ingress_problems(here, who, raw_matches))
            # Whatever else the provider refuses (e.g. limits of a template-provided Ingress
            # class), asked only when the rules above found nothing, so nothing is said twice.
            yield from own or _provider_check(here, who, routing, step)


def _provider_check(
    here: str, who: str, routing: TrafficRouting, step: dict[str, Any]
) -> Iterator[Problem]:
    """What the provider itself refuses; the controller would refuse the step the same way."""
    route = RouteState(
        weight=step.get("weight") or 0,
        matches=tuple(Match.from_dict(m) for m in step.get("matches", [])),
    )
    pid = provider_id(routing)
    for reason in provider_for(routing).check(routing, route):
        if reason.startswith(f"{pid} "):
            said = f"{who} {reason.removeprefix(f'{pid} ')}"
        else:
            said = f"{who}: {reason.removeprefix(f'{pid}: ')}"
        message, _, fix = said.partition("; ")
        yield Problem(here, message, fix or "change the step, or use another routing type")


def _annotation_ingress_problems(
    here: str, who: str, raw_matches: list[dict[str, Any]]
) -> Iterator[Problem]:
    """Canary-annotation Ingresses: one header and one cookie per step, ORed, cookie 'always'."""
    headers = [
        (m, h) for m, raw in enumerate(raw_matches) for h in range(len(raw.get("headers", [])))
    ]
    cookies = [
        (m, c) for m, raw in enumerate(raw_matches) for c in range(len(raw.get("cookies", [])))
    ]
    if len(headers) > 1:
        m, h = headers[1]
        yield Problem(
            f"{here}.matches[{m}].headers[{h}]",
            f"{who} routes on one header per step (canary-by-header), this step has {len(headers)}",
            "keep one header condition, or use type gateway or istio",
        )
    if len(cookies) > 1:
        m, c = cookies[1]
        yield Problem(
            f"{here}.matches[{m}].cookies[{c}]",
            f"{who} routes on one cookie per step (canary-by-cookie), this step has {len(cookies)}",
            "keep one cookie condition, or use type istio",
        )
    for m, raw in enumerate(raw_matches):
        if raw.get("headers") and raw.get("cookies"):
            yield Problem(
                f"{here}.matches[{m}]",
                f"{who} ORs canary-by-header and canary-by-cookie, so a header and a cookie "
                "cannot be ANDed in one match",
                "put the header and the cookie in separate match entries, or use type istio",
            )
        for c, cookie in enumerate(raw.get("cookies", [])):
            if cookie.get("value", "always") != "always":
                yield Problem(
                    f"{here}.matches[{m}].cookies[{c}].value",
                    f"{who} sends a request to the new version when the cookie's value is "
                    f"'always', not {cookie['value']!r}",
                    "set value: always (or leave it out), or use type istio",
                )


def _mode_problems(props: dict[str, Any], workload_kind: str | None) -> Iterator[Problem]:
    wt = props.get("workloadType")
    kind = wt["kind"] if wt else workload_kind
    if props.get("releaseMode") == "canary" and kind is not None and kind != "Deployment":
        yield Problem(
            "releaseMode",
            f"canary mode runs an extra <name>-canary Deployment and works for Deployments "
            f"only; this workload is a {kind}",
            "use releaseMode: batch (in place, partition by partition) or leave releaseMode out",
        )
    canary = props["canary"]
    if canary.get("disableGenerateCanaryService"):
        routings = canary.get("trafficRoutings", [])
        subsets = routings and all(
            r.get("type") == "istio" and r.get("destinationRuleName") for r in routings
        )
        for i, step in enumerate(canary["steps"]):
            if (step.get("weight") or step.get("matches")) and not subsets:
                yield Problem(
                    f"canary.steps[{i}]",
                    "sends traffic to the new version, but disableGenerateCanaryService "
                    "removes the canary Service it would go to",
                    "remove disableGenerateCanaryService, or route with type istio and a "
                    "destinationRuleName (subsets)",
                )
                break


# --------------------------------------------------------------------------------------------
# Entry points


def validate_properties(
    props: object, *, component: str | None = None, workload_kind: str | None = None
) -> dict[str, Any]:
    """The trait properties with the schema's defaults applied, or :class:`InvalidSpec`.

    ``component`` resolves default object names (used to find duplicate routings);
    ``workload_kind`` (e.g. ``StatefulSet``) is the kind the component renders, when known.

    >>> validate_properties({"canary": {"steps": [{"replicas": "50%"}]}})["auto"]
    False
    >>> validate_properties({"canary": {"steps": [{"weight": 50}, {"weight": 30}]}})
    Traceback (most recent call last):
    ...
    vela_progressive.core.validation.InvalidSpec: canary.steps[1].weight: 30 is lower than \
the previous step's 50; weights never decrease — raise it to at least 50
    """
    if not isinstance(props, dict):
        raise InvalidSpec(
            [
                Problem(
                    "",
                    f"expected a mapping of properties, got {_describe(props)}",
                    "write at least canary: {steps: [{replicas: '100%'}]}",
                )
            ],
            component,
        )
    errors = sorted(_validator().iter_errors(props), key=_sort_key)
    problems = _without_echoes([p for e in errors for p in _schema_problems(e)])
    if problems:
        raise InvalidSpec(problems, component)

    full: dict[str, Any] = apply_defaults(props)
    problems = [*_step_problems(full), *_mode_problems(full, workload_kind)]
    good: list[tuple[int, TrafficRouting, frozenset[str]]] = []
    for item in _routing_problems(full, component):
        if isinstance(item, Problem):
            problems.append(item)
        else:
            good.append(item)
    problems.extend(_feature_problems(full, good))
    if problems:
        raise InvalidSpec(problems, component)
    return full


def resolve_strategy(props: dict[str, Any], component: str) -> dict[str, Any]:
    """Validated properties with every routing resolved, i.e. the CR's ``spec.strategy`` (what
    :meth:`Strategy.from_properties` reads), as the trait's CUE renders it: ``aliyun-alb``
    becomes an ``ingress`` of class ``aliyun-alb``, the stable Service and the routed object
    default to the component name, and only the fields of the routing's type are kept.

    >>> resolve_strategy(validate_properties({"canary": {"steps": [{"weight": 10}],
    ...     "trafficRoutings": [{"type": "gateway"}, {"type": "aliyun-alb"}]}}),
    ...     "web")["canary"]["trafficRoutings"]  # doctest: +NORMALIZE_WHITESPACE
    [{'type': 'gateway', 'service': 'web', 'gracePeriodSeconds': 5,
      'gatewayHTTPRouteName': 'web'},
     {'type': 'ingress', 'service': 'web', 'gracePeriodSeconds': 5,
      'ingressClass': 'aliyun-alb', 'ingressName': 'web'}]
    """
    out = copy.deepcopy(props)
    canary = out["canary"]
    if "trafficRoutings" in canary:
        canary["trafficRoutings"] = [
            _resolve_routing(r, component) for r in canary["trafficRoutings"]
        ]
    return out


def _resolve_routing(raw: dict[str, Any], component: str) -> dict[str, Any]:
    rtype = raw.get("type", "ingress")
    resolved: dict[str, Any] = {
        "type": "ingress" if rtype == "aliyun-alb" else rtype,
        "service": raw.get("service", component),
        "gracePeriodSeconds": raw.get("gracePeriodSeconds", 5),
    }
    if rtype == "aliyun-alb":
        resolved["ingressClass"] = "aliyun-alb"
    elif rtype == "ingress":
        resolved["ingressClass"] = raw.get("ingressClass", "nginx")
    if rtype in ("ingress", "aliyun-alb"):
        resolved["ingressName"] = raw.get("ingressName", component)
    elif rtype == "gateway":
        resolved["gatewayHTTPRouteName"] = raw.get("gatewayHTTPRouteName", component)
    elif rtype == "istio":
        resolved["virtualServiceName"] = raw.get("virtualServiceName", component)
        if "destinationRuleName" in raw:
            resolved["destinationRuleName"] = raw["destinationRuleName"]
    return resolved


# --------------------------------------------------------------------------------------------
# Applications (for the CLI)


@dataclass(frozen=True)
class ComponentTraits:
    """One component of an Application with a valid ``progressive-rollout`` trait."""

    app: str
    namespace: str
    component: str
    type: str
    #: Workload apiVersion and kind (from workloadType, else from the component's output).
    api_version: str
    kind: str
    #: Workload size: a ``scaler`` trait, the component's ``replicas`` property or its object's
    #: ``spec.replicas`` (``k8s-objects``), else 1.
    replicas: int
    replicas_source: str
    #: Validated properties, defaults applied (names not resolved).
    properties: dict[str, Any]
    #: Where the trait is, e.g. ``spec.components[0].traits[1]``.
    path: str
    #: The workload's name: the component's, or its output object's (``k8s-objects``).
    workload: str = ""

    @property
    def workload_name(self) -> str:
        return self.workload or self.component

    @property
    def strategy(self) -> Strategy:
        return Strategy.from_properties(self.properties, self.component)


def _output_object(comp: dict[str, Any]) -> dict[str, Any] | None:
    """The first object of a ``k8s-objects`` component: KubeVela's ``context.output``."""
    if comp.get("type") != "k8s-objects":
        return None
    props = comp.get("properties")
    objects = props.get("objects") if isinstance(props, dict) else None
    if isinstance(objects, list) and objects and isinstance(objects[0], dict):
        return objects[0]
    return None


def _component_replicas(comp: dict[str, Any], where: str) -> tuple[int, str]:
    traits = comp.get("traits") or []
    for j, trait in enumerate(traits):
        if isinstance(trait, dict) and trait.get("type") == "scaler":
            value = (trait.get("properties") or {}).get("replicas", 1)
            if not _is_integer(None, value) or value < 0:
                raise InvalidSpec(
                    [
                        Problem(
                            f"{where}.traits[{j}].properties.replicas",
                            f"expected a number of pods, got {_describe(value)}",
                            "use a whole number ≥ 0",
                        )
                    ]
                )
            return int(value), "scaler trait"
    props = comp.get("properties")
    if isinstance(props, dict) and "replicas" in props:
        value = props["replicas"]
        if not _is_integer(None, value) or value < 0:
            raise InvalidSpec(
                [
                    Problem(
                        f"{where}.properties.replicas",
                        f"expected a number of pods, got {_describe(value)}",
                        "use a whole number ≥ 0",
                    )
                ]
            )
        return int(value), "component properties"
    output = _output_object(comp)
    spec = output.get("spec") if output else None
    if isinstance(spec, dict) and _is_integer(None, spec.get("replicas")):
        return int(spec["replicas"]), "component object"
    return 1, "default"


def validate_application(app: object) -> list[ComponentTraits]:
    """Every component of ``app`` that has a ``progressive-rollout`` trait, validated.

    Raises :class:`InvalidSpec` with paths from the Application's root
    (``spec.components[0].traits[1].properties.canary.steps[0].weight``).
    """
    if not isinstance(app, dict):
        raise InvalidSpec(
            [Problem("", f"expected an Application (a mapping), got {_describe(app)}", "")]
        )
    if app.get("kind", "Application") != "Application":
        raise InvalidSpec(
            [
                Problem(
                    "kind",
                    f"expected an Application, got {app.get('kind')!r}",
                    "pass an Application",
                )
            ]
        )
    meta = app.get("metadata") if isinstance(app.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidSpec([Problem("metadata.name", "missing", "name the Application")])
    namespace = meta.get("namespace") or "default"
    spec = app.get("spec")
    components = spec.get("components") if isinstance(spec, dict) else None
    if not isinstance(components, list) or not components:
        raise InvalidSpec(
            [
                Problem(
                    "spec.components",
                    "missing or empty",
                    "an Application lists its components under spec.components",
                )
            ]
        )
    found: list[ComponentTraits] = []
    problems: list[Problem] = []
    for i, comp in enumerate(components):
        where = f"spec.components[{i}]"
        if not isinstance(comp, dict):
            problems.append(Problem(where, f"expected a mapping, got {_describe(comp)}", ""))
            continue
        traits = comp.get("traits") or []
        if not isinstance(traits, list):
            problems.append(Problem(f"{where}.traits", "expected a list", "list the traits"))
            continue
        for j, trait in enumerate(traits):
            if not isinstance(trait, dict) or trait.get("type") != TRAIT_TYPE:
                continue
            at = f"{where}.traits[{j}]"
            try:
                found.append(
                    _component_traits(
                        app_name=name,
                        namespace=namespace,
                        comp=comp,
                        where=where,
                        at=at,
                        trait=trait,
                    )
                )
            except InvalidSpec as exc:
                problems.extend(exc.problems)
    if problems:
        raise InvalidSpec(problems)
    if not found:
        raise InvalidSpec(
            [
                Problem(
                    "spec.components",
                    f"no component of Application {name!r} has a {TRAIT_TYPE} trait",
                    f"add traits: [{{type: {TRAIT_TYPE}, properties: {{canary: {{steps: "
                    "[{replicas: '20%'}, {replicas: '100%'}]}}}}] to a component",
                )
            ]
        )
    return found


def _component_traits(
    *,
    app_name: str,
    namespace: str,
    comp: dict[str, Any],
    where: str,
    at: str,
    trait: dict[str, Any],
) -> ComponentTraits:
    cname = comp.get("name")
    if not isinstance(cname, str) or not cname:
        raise InvalidSpec([Problem(f"{where}.name", "missing", "every component needs a name")])
    ctype = comp.get("type")
    if not isinstance(ctype, str) or not ctype:
        raise InvalidSpec(
            [Problem(f"{where}.type", "missing", "set the component type, e.g. webservice")]
        )
    if "properties" not in trait or trait["properties"] is None:
        raise InvalidSpec(
            [
                Problem(
                    f"{at}.properties",
                    f"the {TRAIT_TYPE} trait has no properties",
                    "add properties: {canary: {steps: [{replicas: '20%'}, {replicas: '100%'}]}}",
                )
            ]
        )
    raw = trait["properties"]
    wt = raw.get("workloadType") if isinstance(raw, dict) else None
    output = _output_object(comp) or {}
    out_meta = output.get("metadata") if isinstance(output.get("metadata"), dict) else {}
    assert isinstance(out_meta, dict)
    if isinstance(wt, dict) and isinstance(wt.get("kind"), str):
        api_version, kind = str(wt.get("apiVersion", "apps/v1")), wt["kind"]
    elif isinstance(output.get("apiVersion"), str) and isinstance(output.get("kind"), str):
        api_version, kind = output["apiVersion"], output["kind"]
    elif ctype in COMPONENT_KINDS:
        api_version, kind = COMPONENT_KINDS[ctype]
    else:
        known = ", ".join(f"{t} → {k}" for t, (_, k) in COMPONENT_KINDS.items())
        raise InvalidSpec(
            [
                Problem(
                    f"{at}.properties.workloadType",
                    f"cannot tell which workload component type {ctype!r} renders",
                    "set workloadType: {apiVersion: apps/v1, kind: Deployment} (or the real "
                    f"kind); known component types: {known}",
                )
            ]
        )
    try:
        props = validate_properties(raw, component=cname, workload_kind=kind)
    except InvalidSpec as exc:
        raise exc.under(f"{at}.properties") from None
    replicas, source = _component_replicas(comp, where)
    return ComponentTraits(
        app=app_name,
        namespace=namespace,
        component=cname,
        type=ctype,
        api_version=api_version,
        kind=kind,
        replicas=replicas,
        replicas_source=source,
        properties=props,
        path=at,
        workload=str(out_meta.get("name") or ""),
    )
