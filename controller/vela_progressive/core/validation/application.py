"""Applications for the CLI: every component with a ``progressive-rollout`` trait, its workload
kind and size, and its validated properties (paths from the Application's root)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vela_progressive.core.model import TRAIT_TYPE, Strategy
from vela_progressive.core.validation.messages import InvalidSpec, Problem, describe, is_integer
from vela_progressive.core.validation.properties import validate_properties
from vela_progressive.core.workloads.common import key_of

#: Component types of KubeVela's built-in catalog and the workload kind they render.
COMPONENT_KINDS: dict[str, tuple[str, str]] = {
    "webservice": ("apps/v1", "Deployment"),
    "worker": ("apps/v1", "Deployment"),
    "statefulset": ("apps/v1", "StatefulSet"),
    "daemon": ("apps/v1", "DaemonSet"),
}


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
            if not is_integer(value) or value < 0:
                raise InvalidSpec(
                    [
                        Problem(
                            f"{where}.traits[{j}].properties.replicas",
                            f"expected a number of pods, got {describe(value)}",
                            "use a whole number ≥ 0",
                        )
                    ]
                )
            return int(value), "scaler trait"
    props = comp.get("properties")
    if isinstance(props, dict) and "replicas" in props:
        value = props["replicas"]
        if not is_integer(value) or value < 0:
            raise InvalidSpec(
                [
                    Problem(
                        f"{where}.properties.replicas",
                        f"expected a number of pods, got {describe(value)}",
                        "use a whole number ≥ 0",
                    )
                ]
            )
        return int(value), "component properties"
    output = _output_object(comp)
    spec = output.get("spec") if output else None
    if isinstance(spec, dict) and is_integer(spec.get("replicas")):
        return int(spec["replicas"]), "component object"
    return 1, "default"


def validate_application(app: object) -> list[ComponentTraits]:
    """Every component of ``app`` that has a ``progressive-rollout`` trait, validated.

    Raises :class:`InvalidSpec` with paths from the Application's root
    (``spec.components[0].traits[1].properties.canary.steps[0].weight``).
    """
    if not isinstance(app, dict):
        raise InvalidSpec(
            [Problem("", f"expected an Application (a mapping), got {describe(app)}", "")]
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
            problems.append(Problem(where, f"expected a mapping, got {describe(comp)}", ""))
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
        props = validate_properties(raw, component=cname, workload_kind=key_of(api_version, kind))
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
