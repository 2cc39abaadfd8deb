"""Typed view of a validated ``progressive-rollout`` strategy and of a release plan.

Everything here is immutable data. ``Strategy.from_properties`` expects properties that
already passed :func:`vela_progressive.core.validation.validate_properties` (defaults applied).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from vela_progressive.core.analysis.spec import BackgroundAnalysis, Metric, Webhook, step_metrics

API_GROUP = "rollout.vela-progressive.io"
API_VERSION = "v1alpha1"
KIND = "ProgressiveRollout"
PLURAL = "progressiverollouts"
SHORT_NAME = "vpr"
TRAIT_TYPE = "progressive-rollout"
ADDON_NAME = "vela-progressive"

#: Label the trait puts on the workload; the hold webhook's objectSelector.
HOLD_LABEL = f"{API_GROUP}/hold"
#: Prefix of every annotation this project writes.
ANNOTATION_PREFIX = API_GROUP


class ReleaseMode(str, Enum):
    CANARY = "canary"
    BATCH = "batch"
    BLUE_GREEN = "blueGreen"

    @property
    def keeps_old_set(self) -> bool:
        """Every old pod keeps running while new ones start (an extra set beside them)."""
        return self is not ReleaseMode.BATCH


class WaitKind(str, Enum):
    NONE = "none"
    DURATION = "duration"
    APPROVAL = "approval"


@dataclass(frozen=True)
class HeaderMatch:
    name: str
    value: str
    type: str = "Exact"


@dataclass(frozen=True)
class CookieMatch:
    name: str
    value: str = "always"


@dataclass(frozen=True)
class PathMatch:
    value: str
    type: str = "PathPrefix"


@dataclass(frozen=True)
class Match:
    headers: tuple[HeaderMatch, ...] = ()
    cookies: tuple[CookieMatch, ...] = ()
    query_params: tuple[HeaderMatch, ...] = ()
    path: PathMatch | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Match:
        path = raw.get("path")
        return cls(
            headers=tuple(HeaderMatch(**h) for h in raw.get("headers", [])),
            cookies=tuple(CookieMatch(**c) for c in raw.get("cookies", [])),
            query_params=tuple(HeaderMatch(**q) for q in raw.get("queryParams", [])),
            path=PathMatch(**path) if path else None,
        )

    def features(self) -> frozenset[str]:
        """The capability names this match needs from a traffic provider."""
        needed = set()
        if self.headers:
            needed.add("header")
        if self.cookies:
            needed.add("cookie")
        if self.query_params:
            needed.add("query")
        if self.path is not None:
            needed.add("path")
        return frozenset(needed)


@dataclass(frozen=True)
class Step:
    weight: int | None = None
    replicas: int | str | None = None
    duration: int | None = None
    matches: tuple[Match, ...] = ()
    #: Metrics the step must pass (after its duration or approval) before the release goes on.
    analysis: tuple[Metric, ...] = ()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Step:
        return cls(
            weight=raw.get("weight"),
            replicas=raw.get("replicas"),
            duration=raw.get("duration"),
            matches=tuple(Match.from_dict(m) for m in raw.get("matches", [])),
            analysis=step_metrics(raw),
        )


@dataclass(frozen=True)
class TrafficRouting:
    type: str
    service: str
    grace_period_seconds: int = 5
    ingress_name: str | None = None
    ingress_class: str = "nginx"
    gateway_httproute_name: str | None = None
    virtual_service_name: str | None = None
    destination_rule_name: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], component: str) -> TrafficRouting:
        """Resolve the defaults (the schema's, and the names that default to the component's)
        with :func:`vela_progressive.core.capabilities.resolve_routing`, as the trait's CUE does.

        ``aliyun-alb`` is the kruise-rollout spelling of an Ingress with class ``aliyun-alb``.
        """
        # Imported here: capabilities builds on this module's types.
        from vela_progressive.core.capabilities import resolve_routing  # noqa: PLC0415

        resolved = resolve_routing(raw, component)
        return cls(
            type=resolved["type"],
            service=resolved["service"],
            grace_period_seconds=resolved["gracePeriodSeconds"],
            ingress_name=resolved.get("ingressName"),
            ingress_class=resolved.get("ingressClass", cls.ingress_class),
            gateway_httproute_name=resolved.get("gatewayHTTPRouteName"),
            virtual_service_name=resolved.get("virtualServiceName"),
            destination_rule_name=resolved.get("destinationRuleName"),
        )

    @property
    def object_name(self) -> str:
        """Name of the routing object this entry changes."""
        name = self.ingress_name or self.gateway_httproute_name or self.virtual_service_name
        assert name is not None, "a resolved routing always names its object"
        return name


@dataclass(frozen=True)
class Strategy:
    steps: tuple[Step, ...]
    routings: tuple[TrafficRouting, ...] = ()
    auto: bool = False
    release_mode: ReleaseMode | None = None
    step_partition: int | None = None
    failure_threshold: int | str | None = None
    progress_deadline_seconds: int = 600
    disable_canary_service: bool = False
    workload_type: tuple[str, str] | None = None
    #: What a failed step does: ``abort`` (traffic, then pods, back to stable) or ``pause``.
    on_failure: str = "abort"

    #: Metrics measured in the background from a step on (``canary.analysis``).
    analysis: BackgroundAnalysis | None = None
    #: HTTP gates and notifications (``canary.webhooks``).
    webhooks: tuple[Webhook, ...] = ()
    #: Blue-green: seconds the old set keeps running after the switch (``None``: not blue-green).
    scale_down_delay_seconds: int | None = None

    @classmethod
    def from_properties(cls, props: dict[str, Any], component: str) -> Strategy:
        canary = props["canary"]
        wt = props.get("workloadType")
        mode = props.get("releaseMode")
        steps = tuple(Step.from_dict(s) for s in canary["steps"])
        delay = None
        if mode == ReleaseMode.BLUE_GREEN.value:
            routed = bool(canary.get("trafficRoutings"))
            steps, delay = blue_green_steps(steps, props.get("blueGreen") or {}, routed=routed)
        return cls(
            steps=steps,
            scale_down_delay_seconds=delay,
            analysis=(
                BackgroundAnalysis.from_dict(canary["analysis"]) if canary.get("analysis") else None
            ),
            webhooks=tuple(Webhook.from_dict(w) for w in canary.get("webhooks", [])),
            routings=tuple(
                TrafficRouting.from_dict(r, component) for r in canary.get("trafficRoutings", [])
            ),
            auto=props.get("auto", False),
            release_mode=ReleaseMode(mode) if mode else None,
            step_partition=props.get("stepPartition"),
            failure_threshold=props.get("failureThreshold"),
            progress_deadline_seconds=props.get("progressDeadlineSeconds", 600),
            disable_canary_service=canary.get("disableGenerateCanaryService", False),
            workload_type=(wt["apiVersion"], wt["kind"]) if wt else None,
            on_failure=props.get("onFailure", "abort"),
        )

    def mode_for(self, kind: str) -> ReleaseMode:
        """The effective release mode: the trait's, else the kind's default style (registry)."""
        if self.release_mode is not None:
            return self.release_mode
        # Imported here: the registry's kinds build on this module's types.
        from vela_progressive.core.workloads.registry import default_style  # noqa: PLC0415

        return default_style(kind)


def blue_green_steps(
    preview: tuple[Step, ...], options: dict[str, Any], *, routed: bool
) -> tuple[tuple[Step, ...], int]:
    """The steps of a blue-green release and its scale-down delay.

    ``preview``: the user's steps (new pods beside every old one, no traffic, a weight or
    matches). The switch (every pod, weight 100 when traffic is routed) is added unless the last
    step is already one; it waits ``scaleDownDelaySeconds`` with the old set still running
    (a rollback moves traffic back at once). ``autoPromotion``/``autoPromotionSeconds`` give the
    last preview step a duration instead of an approval.

    >>> steps, delay = blue_green_steps((Step(replicas="100%"),), {}, routed=True)
    >>> [(s.replicas, s.weight, s.duration) for s in steps], delay
    ([('100%', None, None), ('100%', 100, 30)], 30)
    >>> steps, _ = blue_green_steps((Step(replicas=2), Step(replicas="100%", weight=100)),
    ...                             {"autoPromotionSeconds": 60, "scaleDownDelaySeconds": 0},
    ...                             routed=True)
    >>> [(s.replicas, s.weight, s.duration) for s in steps]
    [(2, None, 60), ('100%', 100, 0)]
    """
    delay = int(options.get("scaleDownDelaySeconds", 30))
    weight = 100 if routed else None
    steps = list(preview)
    last = steps[-1]
    if last.replicas == "100%" and last.weight == weight and not last.matches:
        switch = replace(steps.pop(), duration=delay)  # the user's switch (its analysis kept)
    else:
        switch = Step(replicas="100%", weight=weight, duration=delay)
    promote = options.get("autoPromotionSeconds")
    if promote is None and options.get("autoPromotion"):
        promote = 0
    if promote is not None and steps and steps[-1].duration is None:
        steps[-1] = replace(steps[-1], duration=int(promote))
    return (*steps, switch), delay


@dataclass(frozen=True)
class Wait:
    kind: WaitKind
    seconds: int = 0

    def describe(self) -> str:
        if self.kind is WaitKind.APPROVAL:
            return "approval"
        if self.kind is WaitKind.DURATION:
            return f"{self.seconds}s"
        return "-"


@dataclass(frozen=True)
class PlannedStep:
    """One step of a release, in pods of the workload's current size."""

    index: int  # 1-based
    new_pods: int
    old_pods: int
    weight: int | None
    matches: tuple[Match, ...]
    wait: Wait
    #: StatefulSet-like partition (pods with ordinal >= partition run the new revision).
    partition: int | None = None
    #: Replicas of the extra <name>-canary Deployment (canary style).
    canary_replicas: int | None = None

    @property
    def peak_pods(self) -> int:
        """Pods running at once in this step (both sets, surge not counted): capacity."""
        return self.old_pods + self.new_pods


@dataclass(frozen=True)
class Plan:
    kind: str
    replicas: int
    mode: ReleaseMode
    steps: tuple[PlannedStep, ...] = field(default_factory=tuple)
