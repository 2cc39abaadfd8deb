"""Trait properties nobody wrote by hand: generated from the JSON Schema, and just outside it.

Hypothesis builds properties by walking the schema (every property, type, enum, bound, ``oneOf``
and ``$ref``) and then mutates them (a wrong type, a value past a bound, an unknown key, a
removed required key). Whatever comes in, the Python validator either accepts it (and the
strategy can be built from it) or raises :class:`InvalidSpec` whose every problem names a field
and says how to fix it. It never raises anything else.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vela_progressive.core.model import Strategy
from vela_progressive.core.trait_schema import SCHEMA_PATH
from vela_progressive.core.validation import InvalidSpec, Problem, validate_properties

SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
KINDS = (None, "Deployment", "StatefulSet", "DaemonSet", "CloneSet.apps.kruise.io")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        resolved: dict[str, Any] = SCHEMA["definitions"][name]
        return resolved
    return node


def _types(node: dict[str, Any]) -> list[str]:
    kind = node.get("type")
    if isinstance(kind, list):
        return kind
    return [kind] if kind else ["object"]


def from_schema(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values the schema accepts, field by field (cross-field rules may still reject them)."""
    node = _resolve(node)
    if "enum" in node:
        return st.sampled_from(node["enum"])
    for key in ("oneOf", "anyOf"):
        if key in node:
            return st.one_of([from_schema(n, depth + 1) for n in node[key]])
    strategies = [_of_type(node, t, depth) for t in _types(node)]
    return st.one_of(strategies)


def _of_type(node: dict[str, Any], kind: str, depth: int) -> st.SearchStrategy[Any]:
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low = node.get("minimum", -5)
        high = node.get("maximum", low + 200)
        return st.integers(min_value=low, max_value=high)
    if kind == "number":
        return st.floats(min_value=node.get("minimum", 0), max_value=node.get("maximum", 1000))
    if kind == "string":
        pattern = node.get("pattern")
        if pattern:
            return st.from_regex(re.compile(pattern), fullmatch=True).map(lambda v: v[:40])
        return st.text(min_size=node.get("minLength", 0), max_size=12)
    if kind == "array":
        items = node.get("items", {})
        low = node.get("minItems", 0)
        high = min(node.get("maxItems", low + 3), low + 3)
        if depth > 4:
            return st.just([])
        return st.lists(from_schema(items, depth + 1), min_size=low, max_size=max(low, high))
    if kind == "null":
        return st.none()
    props: dict[str, Any] = node.get("properties", {})
    required = set(node.get("required", []))
    if depth > 5 or not props:
        return st.just({})
    return st.fixed_dictionaries(
        {k: from_schema(v, depth + 1) for k, v in props.items() if k in required},
        optional={k: from_schema(v, depth + 1) for k, v in props.items() if k not in required},
    )


@st.composite
def plausible(draw: st.DrawFn) -> dict[str, Any]:
    """Properties a user would write: growing steps, weights only with a routing, some of the
    optional fields (most of them are accepted)."""
    count = draw(st.integers(min_value=1, max_value=4))
    shares = sorted(draw(st.lists(st.integers(1, 100), min_size=count, max_size=count)))
    routed = draw(st.booleans())
    steps: list[dict[str, Any]] = []
    for share in shares:
        step: dict[str, Any] = {"replicas": f"{share}%"}
        if routed and draw(st.booleans()):
            step["weight"] = share
        if draw(st.booleans()):
            step["duration"] = draw(st.integers(0, 600))
        steps.append(step)
    canary: dict[str, Any] = {"steps": steps}
    if routed:
        kind = draw(st.sampled_from(["ingress", "gateway", "istio"]))
        canary["trafficRoutings"] = [{"type": kind}]
    props: dict[str, Any] = {"canary": canary}
    optional = {
        "auto": st.booleans(),
        "releaseMode": st.sampled_from(["batch", "canary", "blueGreen"]),
        "onFailure": st.sampled_from(["abort", "pause"]),
        "progressDeadlineSeconds": st.integers(1, 3600),
        "failureThreshold": st.sampled_from([0, 1, "10%", "50%"]),
        "blueGreen": st.fixed_dictionaries(
            {}, optional={"scaleDownDelaySeconds": st.integers(0, 600)}
        ),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            props[key] = draw(values)
    return props


#: Values that are wrong for almost any field.
STRANGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@st.composite
def just_outside(draw: st.DrawFn) -> Any:
    """Valid-looking properties with one mutation somewhere in the tree."""
    value = draw(st.one_of(plausible(), from_schema(SCHEMA)))
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in list(node):
                paths.append((node, key))
                walk(node[key])
        elif isinstance(node, list):
            for i in range(len(node)):
                paths.append((node, i))
                walk(node[i])

    walk(value)
    action = draw(st.sampled_from(["replace", "delete", "unknown"]))
    if action == "unknown" or not paths:
        target = value
        if paths:
            parents = [p for p, _ in paths if isinstance(p, dict)]
            target = draw(st.sampled_from(parents)) if parents else value
        target[draw(st.text(min_size=1, max_size=8))] = draw(STRANGE)
        return value
    parent, key = draw(st.sampled_from(paths))
    if action == "delete":
        del parent[key]
    else:
        parent[key] = draw(STRANGE)
    return value


def _problems(props: Any, kind: str | None) -> tuple[Problem, ...] | dict[str, Any]:
    """The problems of a rejection, or the validated properties."""
    try:
        return validate_properties(props, component="web", workload_kind=kind)
    except InvalidSpec as exc:
        return exc.problems


def _check(props: Any, kind: str | None) -> None:
    outcome = _problems(props, kind)
    if isinstance(outcome, tuple):
        assert outcome, "a rejection without a problem"
        for problem in outcome:
            assert problem.message, problem
            assert problem.fix or problem.path, f"no field and no fix: {problem}"
            keys = set(SCHEMA["properties"]) | (set(props) if isinstance(props, dict) else set())
            path = problem.path
            named = any(path == k or path.startswith((f"{k}.", f"{k}[")) for k in keys)
            assert path == "" or named, f"names a field neither written nor known: {problem}"
        return
    Strategy.from_properties(outcome, "web")  # an accepted spec always builds a strategy


@SETTINGS
@given(props=st.one_of(plausible(), from_schema(SCHEMA)), kind=st.sampled_from(KINDS))
def test_properties_the_schema_allows_are_accepted_or_rejected_naming_a_field(
    props: Any, kind: str | None
) -> None:
    _check(props, kind)


@SETTINGS
@given(props=just_outside(), kind=st.sampled_from(KINDS))
def test_properties_just_outside_the_schema_are_rejected_naming_a_field_never_crashing(
    props: Any, kind: str | None
) -> None:
    _check(props, kind)


@SETTINGS
@given(props=STRANGE)
def test_anything_that_is_not_properties_is_rejected_with_a_fix(props: Any) -> None:
    _check(props, None)
