"""``kubectl progressive plan APP.yaml``: preview a release offline, step by step.

Reads an Application (a file or ``-`` for stdin), finds the components with a
``progressive-rollout`` trait, validates their properties and prints, per step, the pods on the
old and new version, the partition (batch mode) or the canary Deployment's replicas (canary
mode), the traffic and the wait. ``-o yaml`` prints every object the release creates or
patches; ``-o json`` the same data for machines. Nothing talks to a cluster.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from vela_progressive.cli.output import FORMATS, table, to_json, yaml_stream
from vela_progressive.cli.verb import UserError, Verb
from vela_progressive.core.model import (
    API_GROUP,
    API_VERSION,
    KIND,
    Plan,
    PlannedStep,
    ReleaseMode,
    Strategy,
)
from vela_progressive.core.planner import describe_traffic, plan, plan_to_status
from vela_progressive.core.traffic import RouteState, TrafficConfigError
from vela_progressive.core.traffic.preview import preview_step
from vela_progressive.core.validation import (
    ComponentTraits,
    InvalidSpec,
    resolve_strategy,
    validate_application,
)
from vela_progressive.core.workloads import (
    POD_TEMPLATE_HASH,
    Observed,
    WorkloadKind,
    Write,
    key_of,
    registry,
)
from vela_progressive.core.workloads.common import patch_of, template_hash
from vela_progressive.core.workloads.deployment_partition import stable_example_template

Obj = dict[str, Any]

#: Annotation KubeVela uses to pin an Application revision name.
PUBLISH_VERSION_ANNOTATION = "app.oam.dev/publishVersion"
#: Label KubeVela's component definitions select a component's pods by.
COMPONENT_LABEL = "app.oam.dev/component"


def _replicas_flag(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pods, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more pods, got {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="APP.yaml", help="Application manifest, or - for stdin")
    parser.add_argument(
        "-c", "--component", help="only this component (default: every component with the trait)"
    )
    parser.add_argument(
        "--replicas",
        type=_replicas_flag,
        help="workload size to plan for (default: the component's replicas property or scaler "
        "trait, else 1; for a DaemonSet: the number of nodes)",
    )
    parser.add_argument(
        "-o", "--output", choices=FORMATS, default="table", help="output format (default: table)"
    )


# --------------------------------------------------------------------------------------------
# Reading the Application


def read_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{source}: is a directory; pass an Application YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{source}: cannot read it ({exc})") from None


def load_applications(text: str, source: str) -> list[Obj]:
    """The Application documents in ``text`` (YAML, one or more documents)."""
    name = "<stdin>" if source == "-" else source
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{where}: invalid YAML: {problem}") from None
    if not docs:
        raise UserError(f"{name}: no document found; pass an Application manifest")
    apps = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Application"]
    if not apps:
        if len(docs) == 1:
            return docs  # let the validator explain what is wrong with it
        raise UserError(f"{name}: none of its {len(docs)} documents is an Application")
    return apps


# --------------------------------------------------------------------------------------------
# Building the preview


@dataclass(frozen=True)
class Preview:
    target: ComponentTraits
    namespace: str
    replicas: int
    replicas_source: str
    strategy: Strategy
    plan: Plan
    publish_version: str

    @property
    def name(self) -> str:
        return self.target.component


def _namespace(app: Obj, flag: str | None) -> str:
    meta = app.get("metadata") if isinstance(app.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    own = meta.get("namespace")
    if flag and own and flag != own:
        raise UserError(
            f"the Application is in namespace {own!r} but --namespace is {flag!r}; "
            f"drop --namespace or pass --namespace={own}"
        )
    return str(own or flag or "default")


def build_previews(
    apps: list[Obj], *, component: str | None, replicas: int | None, namespace: str | None
) -> list[Preview]:
    previews: list[Preview] = []
    everything: list[str] = []
    for n, app in enumerate(apps):
        try:
            targets = validate_application(app)
        except InvalidSpec as exc:
            if len(apps) > 1:
                raise exc.under(f"document {n + 1}") from None
            raise
        meta = app.get("metadata") or {}
        publish = str((meta.get("annotations") or {}).get(PUBLISH_VERSION_ANNOTATION, ""))
        ns = _namespace(app, namespace)
        for target in targets:
            everything.append(target.component)
            if component and target.component != component:
                continue
            size = target.replicas if replicas is None else replicas
            source = target.replicas_source if replicas is None else "--replicas"
            strategy = target.strategy
            previews.append(
                Preview(
                    target=target,
                    namespace=ns,
                    replicas=size,
                    replicas_source=source,
                    strategy=strategy,
                    plan=plan(strategy, key_of(target.api_version, target.kind), size),
                    publish_version=publish,
                )
            )
    if component and not previews:
        raise UserError(
            f"no component {component!r} with a progressive-rollout trait; "
            f"components with the trait: {', '.join(everything)}"
        )
    return previews


# --------------------------------------------------------------------------------------------
# Objects


def rollout_resource(p: Preview) -> Obj:
    """The ProgressiveRollout the trait renders for this component (``contract.md``)."""
    t = p.target
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": t.component, "namespace": p.namespace},
        "spec": {
            "workloadRef": {"apiVersion": t.api_version, "kind": t.kind, "name": t.workload_name},
            "application": {"name": t.app, "component": t.component},
            "revision": {"name": "", "number": 0, "publishVersion": p.publish_version},
            "strategy": resolve_strategy(t.properties, t.component),
        },
    }


def _template(p: Preview) -> Obj:
    """The workload's new pod template: its pod spec is only known in the cluster."""
    return {
        "metadata": {"labels": {COMPONENT_LABEL: p.target.workload_name}},
        "spec": f"<the new pod spec of {p.target.workload_name}>",
    }


def _owner(p: Preview) -> Obj:
    """The rollout's owner reference, set on the objects a release creates."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": p.target.component,
        "uid": f"<uid of the {KIND} {p.target.component}>",
        "controller": True,
        "blockOwnerDeletion": False,
    }


def _placeholders(value: Any, names: dict[str, str]) -> Any:
    """``value`` with the revision hashes of the example shown as ``<new>``/``<stable>``."""
    if isinstance(value, dict):
        return {k: _placeholders(v, names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_placeholders(v, names) for v in value)
    if isinstance(value, str):
        for raw, shown in names.items():
            value = value.replace(raw, shown)
    return value


def _document(write: Write) -> Obj:
    """A write as the object it creates, or the merge patch / delete it sends."""
    if write.verb == "create":
        assert write.body is not None
        return write.body
    meta: Obj = {"name": write.name, "namespace": write.namespace}
    body = dict(write.body or {})
    # Applied with the resourceVersion read as precondition; the example's means nothing.
    extra = {k: v for k, v in (body.pop("metadata", None) or {}).items() if k != "resourceVersion"}
    return {
        "apiVersion": write.api_version,
        "kind": write.kind,
        "metadata": {**meta, **extra},
        **body,
    }


@dataclass(frozen=True)
class WorkloadPreview:
    """What the workload's adapter writes, computed by its style on an example of the workload:
    the webhook's hold, then per step the writes when the step starts and once its new pods are
    Ready, and the hand-back at the end."""

    hold: tuple[str, Obj] | None
    steps: tuple[tuple[tuple[str, Obj], ...], ...]
    hand_back: tuple[tuple[str, Obj], ...]


def _entry(p: Preview) -> WorkloadKind | None:
    return registry.find_type(p.target.api_version, p.target.kind)


def workload_preview(p: Preview) -> WorkloadPreview:
    entry = _entry(p)
    style = entry.styles.get(p.plan.mode) if entry is not None else None
    if entry is None or style is None:
        return WorkloadPreview(None, tuple(() for _ in p.plan.steps), ())
    ns, name, replicas, template = p.namespace, p.target.workload_name, p.replicas, _template(p)
    stable_template = stable_example_template(template)
    names = {template_hash(template): "<new>", template_hash(stable_template): "<stable>"}

    def example(new: int, old: int) -> Observed:
        return replace(style.example(ns, name, replicas, template, new, old), owner=_owner(p))

    def shown(write: Write, when: str = "") -> tuple[str, Obj]:
        text = f"{when}: {write.reason}" if when else write.reason
        if write.verb == "delete":
            text = f"delete {write.kind} {write.name}: {text}"
        return text, _document(write)

    start = example(0, replicas)
    old_workload = copy.deepcopy(start.workload)
    old_workload["spec"]["template"] = stable_template
    rule = entry.hold(old_workload, start.workload)
    hold = None
    if rule is not None:
        webhook = patch_of(
            start.workload,
            rule,
            f"hold {entry.kind} {name} when its pod template changes (webhook)",
        )
        start = start.after(webhook)
        hold = shown(webhook)
    stable = style.view(start, None).stable_revision
    steps = []
    prev_new, prev_old = 0, replicas
    for step in p.plan.steps:
        before = start if prev_new == 0 else example(prev_new, prev_old)
        view = style.view(before, stable)
        docs = [shown(w) for w in style.scale_to(before, view, step.new_pods, surge_ready=False)]
        ready = example(step.new_pods, prev_old)
        view = style.view(ready, stable)
        docs += [
            shown(w, "once the new pods are Ready")
            for w in style.scale_to(ready, view, step.new_pods, surge_ready=True)
        ]
        steps.append(tuple(docs))
        prev_new, prev_old = step.new_pods, step.old_pods
    end = example(prev_new, prev_old)
    writes, _ = style.finalize(end, style.view(end, stable))
    hand_back = tuple(shown(w, f"after step {len(p.plan.steps)}") for w in writes)
    return WorkloadPreview(
        _placeholders(hold, names) if hold else None,
        tuple(tuple(_placeholders(d, names) for d in docs) for docs in steps),
        tuple(_placeholders(d, names) for d in hand_back),
    )


def _traffic_preview(p: Preview, step: PlannedStep) -> list[Obj]:
    """Traffic objects (Services, canary Ingress, HTTPRoute, VirtualService) at ``step``.

    Computed by the traffic providers against skeletons of the user's routing objects (the
    real ones are only known in the cluster); each object says so in an annotation.
    """
    route = RouteState(weight=step.weight or 0, matches=step.matches)
    entry = _entry(p)
    label = entry.revision_label if entry is not None else POD_TEMPLATE_HASH
    objects: list[Obj] = []
    for routing in p.strategy.routings:
        try:
            objects += preview_step(
                routing,
                p.namespace,
                route,
                revision_label=label,
                disable_canary_service=p.strategy.disable_canary_service,
            )
        except TrafficConfigError as exc:
            raise UserError(f"{p.target.path}: step {step.index}: {exc}") from None
    return objects


def _unsupported_note(p: Preview) -> str | None:
    if _entry(p) is not None:
        return None
    return (
        f"note: the controller does not release a {p.target.kind} yet; the plan shows the "
        "pod math only"
    )


def object_documents(p: Preview) -> list[tuple[str, Obj]]:
    """(comment, object) pairs: the CR, the hold, then each step's workload and traffic objects."""
    total = len(p.plan.steps)
    docs: list[tuple[str, Obj]] = [
        (
            f"{p.target.app}/{p.name}: the ProgressiveRollout the trait renders "
            "(spec.revision is filled in by KubeVela at deploy time)",
            rollout_resource(p),
        )
    ]
    workload = workload_preview(p)
    if workload.hold is not None:
        docs.append(workload.hold)
    for step, writes in zip(p.plan.steps, workload.steps, strict=True):
        header = f"step {step.index}/{total}: {step.new_pods}/{p.replicas} pods on the new version"
        objects = [*writes, *(("", o) for o in _traffic_preview(p, step))]
        for n, (what, obj) in enumerate(objects):
            docs.append(("\n".join(x for x in (header if n == 0 else "", what) if x), obj))
    docs += workload.hand_back
    return docs


# --------------------------------------------------------------------------------------------
# Rendering


def _size(p: Preview) -> str:
    pods = "pod" if p.replicas == 1 else "pods"
    entry = _entry(p)
    if entry is not None and entry.sized_by_nodes and p.replicas_source != "--replicas":
        return f"{p.replicas} {pods} ({entry.kind}: pass --replicas <nodes>)"
    source = {
        "default": "default; use --replicas to change",
        "component properties": "from the component's replicas",
        "scaler trait": "from the scaler trait",
        "component object": "from the component's object",
        "--replicas": "from --replicas",
    }[p.replicas_source]
    return f"{p.replicas} {pods} ({source})"


def render_table(p: Preview) -> str:
    t, steps = p.target, p.plan.steps
    canary = p.plan.mode is ReleaseMode.CANARY
    blue_green = p.plan.mode is ReleaseMode.BLUE_GREEN
    lines = [
        f"Application {t.app} (namespace {p.namespace}), component {t.component}: "
        f"{t.kind}, {_size(p)}, mode {p.plan.mode.value}"
    ]
    if note := _unsupported_note(p):
        lines.append(note)
    fourth = "PEAK" if blue_green else "CANARY" if canary else "PARTITION"
    header = ["STEP", "OLD", "NEW", fourth, "TRAFFIC", "WAIT"]
    rows = [
        [
            f"{s.index}/{len(steps)}",
            s.old_pods,
            s.new_pods,
            s.peak_pods if blue_green else s.canary_replicas if canary else s.partition,
            describe_traffic(s),
            _gates(p, s.index, s.wait.describe()),
        ]
        for s in steps
    ]
    lines.append(table(header, rows))
    if p.strategy.analysis is not None:
        names = ", ".join(m.name for m in p.strategy.analysis.metrics)
        lines.append(f"From step {p.strategy.analysis.starting_step} on, measured: {names}.")
    lines.append(_finale(p))
    return "\n".join(lines)


def _gates(p: Preview, index: int, wait: str) -> str:
    """The step's wait, then its analysis and webhook gates (``approval, then errors``)."""
    gates = [m.name for m in p.strategy.steps[index - 1].analysis]
    gates += [f"webhook {h.name}" for h in p.strategy.webhooks if h.type == "rollout"]
    if not gates:
        return wait
    then = ", ".join(gates)
    return then if wait == "-" else f"{wait}, then {then}"


def _finale(p: Preview) -> str:
    name, n = p.target.workload_name, len(p.plan.steps)
    routed = bool(p.strategy.routings)
    pods = f"{p.replicas} pod" + ("" if p.replicas == 1 else "s")
    if p.plan.mode is ReleaseMode.CANARY:
        text = f"After step {n}: {name} rolls to the new version ({pods})"
        text += ", traffic returns to the stable Service" if routed else ""
        return text + f" and {name}-canary is deleted."
    if p.plan.mode is ReleaseMode.BLUE_GREEN:
        delay = p.strategy.scale_down_delay_seconds or 0
        peak = max((s.peak_pods for s in p.plan.steps), default=p.replicas)
        text = (
            f"Step {n} is the switch: every request to the new set; the old set ({pods}) keeps "
            f"running {delay}s for an instant rollback, then goes"
        )
        text += " and traffic returns to the stable Service" if routed else ""
        return text + f". Peak: {peak} pods."
    text = f"After step {n}: every pod runs the new version ({pods})"
    text += ", traffic returns to the stable Service" if routed else ""
    return text + f" and {name} gets its own update strategy back."


def render_json(previews: list[Preview]) -> str:
    return to_json(
        {
            "plans": [
                {
                    "application": p.target.app,
                    "namespace": p.namespace,
                    "component": p.target.component,
                    "workload": {
                        "apiVersion": p.target.api_version,
                        "kind": p.target.kind,
                        "name": p.target.workload_name,
                    },
                    "replicas": p.replicas,
                    "mode": p.plan.mode.value,
                    "steps": plan_to_status(p.plan),
                    "objects": [
                        {"comment": comment, "object": obj} for comment, obj in object_documents(p)
                    ],
                }
                for p in previews
            ]
        }
    )


def run(args: argparse.Namespace) -> int:
    apps = load_applications(read_text(args.file), args.file)
    previews = build_previews(
        apps, component=args.component, replicas=args.replicas, namespace=args.namespace
    )
    if args.output == "json":
        sys.stdout.write(render_json(previews))
    elif args.output == "yaml":
        sys.stdout.write(yaml_stream([d for p in previews for d in object_documents(p)]))
    else:
        sys.stdout.write("\n\n".join(render_table(p) for p in previews) + "\n")
    return 0


VERB = Verb(
    name="plan",
    help="preview a release offline: pods, traffic and waits per step",
    description=(
        "Preview a release offline, without a cluster: reads an Application (a file, or - for "
        "stdin), validates its progressive-rollout traits and prints, per step, the pods on the "
        "old and new version, the partition (batch mode) or canary replicas (canary mode), the "
        "traffic and the wait. -o yaml prints every object the release creates or patches."
    ),
    configure=configure,
    run=run,
)
