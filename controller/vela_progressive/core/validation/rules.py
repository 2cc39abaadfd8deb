"""Cross-field rules on steps and release modes: what a JSON Schema cannot say.

* each step sets ``replicas`` or ``weight`` (a missing ``replicas`` means "the weight as a
  percentage", as in Kruise) and puts at least one pod on the new version;
* weights never decrease; replicas never decrease, compared like with like (int with int,
  % with %); mixed units are checked by the planner against the real replica count;
* ``stepPartition`` is at most the number of steps;
* traffic needs a routing: ``matches``, and a ``weight`` on a step that also sets ``replicas``
  (without ``replicas`` the weight is the share of pods, as in Kruise), need
  ``canary.trafficRoutings``;
* ``releaseMode: canary`` (an extra ``<name>-canary`` Deployment) needs a Deployment;
* traffic to the new version needs the canary Service, unless every routing is Istio with
  subsets.

A last step below 100% is allowed: the release finalises after the last step (every pod moves
to the new version), as Kruise does.

The rules in :data:`RULES` are checked by the trait's generated CUE too, with the same words.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vela_progressive.core.capabilities import Rule
from vela_progressive.core.model import ReleaseMode
from vela_progressive.core.validation.messages import Problem, problem
from vela_progressive.core.workloads import key_of, registry

#: Rules the trait's CUE checks too, keyed by id (see ``templates/cue/progressive-rollout.cue.j2``).
RULES: dict[str, Rule] = {
    # CUE only: a trait without its canary block (or without steps) renders an empty list of
    # steps; the schema check says which of the three it is.
    "no-steps": Rule(
        "missing, or without steps",
        "add canary: {{steps: [{{replicas: '20%', weight: 20}}, {{replicas: '100%'}}]}}",
    ),
    "no-pods-or-weight": Rule(
        "sets neither replicas nor weight",
        "set replicas (pods on the new version, e.g. '20%') and/or weight (traffic %)",
    ),
    "no-pods": Rule("{replicas} puts no pod on the new version", "use at least 1 pod or 1%"),
    "weight-zero-alone": Rule(
        "weight 0 without replicas puts no pod on the new version",
        "set replicas, e.g. replicas: 1",
    ),
    "weight-decrease": Rule(
        "{weight} is lower than {whose} {before}; weights never decrease",
        "raise it to at least {before}",
    ),
    "step-partition": Rule(
        "{partition} is more than the number of steps ({count})",
        "use a step number from 1 to {count}",
    ),
    "matches-without-routing": Rule(
        "A/B matches need a traffic routing to apply them",
        "add canary.trafficRoutings, e.g. [{{type: ingress}}], or remove the matches",
    ),
    "weight-without-routing": Rule(
        "weight {weight} sends traffic to the new version, but there is no traffic routing to "
        "move it",
        "add canary.trafficRoutings, e.g. [{{type: ingress}}], or remove the weight (replicas "
        "set the pods)",
    ),
    "canary-mode-kind": Rule(
        "canary mode runs an extra <name>-canary Deployment and works for Deployments only; "
        "this workload is a {kind}",
        "use releaseMode: batch (in place, partition by partition) or leave releaseMode out",
    ),
    "blue-green-kind": Rule(
        "blue-green runs a full set of new pods beside every old one and works for Deployments "
        "and CloneSets only; this workload is a {kind}",
        "use releaseMode: batch (in place, partition by partition) or leave releaseMode out",
    ),
    "blue-green-routing": Rule(
        "blue-green needs a traffic routing: without one the Service sends requests to the new "
        "set as soon as its pods are Ready, before any switch",
        "add canary.trafficRoutings, e.g. [{{type: ingress}}] (or gateway, istio)",
    ),
    "no-canary-service": Rule(
        "sends traffic to the new version, but disableGenerateCanaryService removes the canary "
        "Service it would go to",
        "remove disableGenerateCanaryService, or route with type istio and a "
        "destinationRuleName (subsets)",
    ),
}


def whose(j: int, i: int) -> str:
    """How step ``i`` names the earlier step ``j`` in a message."""
    return "the previous step's" if j == i - 1 else f"canary.steps[{j}]'s"


def _as_percent(replicas: object) -> int | None:
    if isinstance(replicas, str) and replicas.endswith("%"):
        return int(replicas[:-1])
    return None


def step_problems(props: dict[str, Any]) -> Iterator[Problem]:
    """Each step's pods, weights and the order of both; ``stepPartition``."""
    canary = props["canary"]
    steps: list[dict[str, Any]] = canary["steps"]
    has_routing = bool(canary.get("trafficRoutings"))
    last_weight: tuple[int, int] | None = None  # (step index, weight)
    last_count: dict[str, tuple[int, int]] = {}  # unit -> (step index, value)
    for i, step in enumerate(steps):
        here = f"canary.steps[{i}]"
        weight, replicas = step.get("weight"), step.get("replicas")
        if weight is None and replicas is None:
            yield problem(RULES["no-pods-or-weight"], here)
        effective: object = (
            replicas if replicas is not None else None if weight is None else f"{weight}%"
        )
        if replicas in (0, "0%"):
            yield problem(RULES["no-pods"], f"{here}.replicas", replicas=replicas)
        elif replicas is None and weight == 0:
            yield problem(RULES["weight-zero-alone"], f"{here}.weight")
        if not has_routing:
            if step.get("matches"):
                yield problem(RULES["matches-without-routing"], f"{here}.matches")
            if weight and replicas is not None:
                yield problem(RULES["weight-without-routing"], f"{here}.weight", weight=weight)
        weight_decreased = False
        if weight is not None:
            if last_weight is not None and weight < last_weight[1]:
                weight_decreased = True
                j, before = last_weight
                yield problem(
                    RULES["weight-decrease"],
                    f"{here}.weight",
                    weight=weight,
                    whose=whose(j, i),
                    before=before,
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
            if replicas is None:
                yield Problem(
                    f"{here}.weight",
                    f"the step has no replicas, so its weight makes it {shown} of the pods, "
                    f"lower than {whose(j, i)} {before_shown}; replicas never decrease",
                    f"set replicas: '{before_shown}' or more on this step",
                )
            else:
                yield Problem(
                    f"{here}.replicas",
                    f"{shown} is lower than {whose(j, i)} {before_shown}; replicas never decrease",
                    f"raise it to at least {before_shown}",
                )
        else:
            last_count[unit] = (i, value)

    partition = props.get("stepPartition")
    if partition is not None and partition > len(steps):
        yield problem(
            RULES["step-partition"], "stepPartition", partition=partition, count=len(steps)
        )


def mode_problems(props: dict[str, Any], workload_kind: str | None) -> Iterator[Problem]:
    """The release mode against the workload kind; traffic against the canary Service."""
    wt = props.get("workloadType")
    kind = key_of(wt.get("apiVersion", "apps/v1"), wt["kind"]) if wt else workload_kind
    canary_kinds = registry.kinds_with(ReleaseMode.CANARY)
    if props.get("releaseMode") == "canary" and kind is not None and kind not in canary_kinds:
        # Named as the user wrote it (the CUE trait says the same): the kind, not its key.
        yield problem(RULES["canary-mode-kind"], "releaseMode", kind=kind.partition(".")[0])
    blue_green = registry.kinds_with(ReleaseMode.BLUE_GREEN)
    if props.get("releaseMode") == "blueGreen" and kind is not None and kind not in blue_green:
        yield problem(RULES["blue-green-kind"], "releaseMode", kind=kind.partition(".")[0])
    if props.get("releaseMode") == "blueGreen" and not props["canary"].get("trafficRoutings"):
        yield problem(RULES["blue-green-routing"], "canary.trafficRoutings")
    canary = props["canary"]
    if canary.get("disableGenerateCanaryService"):
        routings = canary.get("trafficRoutings", [])
        subsets = routings and all(
            r.get("type") == "istio" and r.get("destinationRuleName") for r in routings
        )
        for i, step in enumerate(canary["steps"]):
            if (step.get("weight") or step.get("matches")) and not subsets:
                yield problem(RULES["no-canary-service"], f"canary.steps[{i}]")
                break
