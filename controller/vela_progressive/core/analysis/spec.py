"""The analysis a strategy declares: metrics, as typed immutable data.

Built from validated trait properties (defaults applied): ``canary.analysis`` (background, from
``startingStep`` on) and ``canary.steps[].analysis`` (a gate before the step may go on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Built-in templates, and whether a higher value is better for each.
TEMPLATES: dict[str, bool] = {
    "request-success-rate": True,
    "request-error-rate": False,
    "request-duration": False,
}
#: Data planes whose metrics the built-in templates read.
SOURCES = ("nginx", "istio", "gateway", "app")
#: The data plane of each routing type (the default source of a built-in template).
SOURCE_OF_ROUTING = {"ingress": "nginx", "istio": "istio", "gateway": "gateway"}


@dataclass(frozen=True)
class Metric:
    name: str
    template: str | None = None
    source: str | None = None
    query: str | None = None
    min: float | None = None
    max: float | None = None
    max_increase: float | None = None
    max_ratio: float | None = None
    interval: int = 10
    count: int = 3
    failure_limit: int = 0
    inconclusive_limit: int = 2
    min_samples: int = 0
    no_data: str = "wait"
    prometheus_address: str | None = None
    #: A Secret in the rollout's namespace with the credentials, and how to send them.
    auth_secret: str | None = None
    auth_type: str = "bearer"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Metric:
        threshold = raw.get("thresholdRange") or {}
        compare = raw.get("compareWithStable") or {}
        return cls(
            name=raw["name"],
            template=raw.get("template"),
            source=raw.get("source"),
            query=raw.get("query"),
            min=_number(threshold.get("min")),
            max=_number(threshold.get("max")),
            max_increase=_number(compare.get("maxIncrease")),
            max_ratio=_number(compare.get("maxRatio")),
            interval=raw.get("interval", 10),
            count=raw.get("count", 3),
            failure_limit=raw.get("failureLimit", 0),
            inconclusive_limit=raw.get("inconclusiveLimit", 2),
            min_samples=raw.get("minSamples", 0),
            no_data=raw.get("noData", "wait"),
            prometheus_address=raw.get("prometheusAddress"),
            auth_secret=(raw.get("prometheusAuth") or {}).get("secretName"),
            auth_type=(raw.get("prometheusAuth") or {}).get("type", "bearer"),
        )

    @property
    def compares(self) -> bool:
        """Whether the canary is judged against the stable version too."""
        return self.max_increase is not None or self.max_ratio is not None

    @property
    def higher_is_better(self) -> bool:
        """A built-in template knows; a query is judged by its threshold (only a ``min``:
        higher is better; otherwise lower is)."""
        if self.template is not None:
            return TEMPLATES[self.template]
        return self.min is not None and self.max is None

    def threshold_text(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"min {self.min:g}")
        if self.max is not None:
            parts.append(f"max {self.max:g}")
        if self.max_increase is not None:
            parts.append(f"at most {self.max_increase:g} worse than stable")
        if self.max_ratio is not None:
            parts.append(f"at most {self.max_ratio:g}x stable")
        return ", ".join(parts)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class BackgroundAnalysis:
    """``canary.analysis``: measured from step ``starting_step`` on, whatever the step does."""

    metrics: tuple[Metric, ...]
    starting_step: int = 1

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BackgroundAnalysis:
        return cls(
            metrics=tuple(Metric.from_dict(m) for m in raw.get("metrics", [])),
            starting_step=raw.get("startingStep", 1),
        )


def step_metrics(raw_step: dict[str, Any]) -> tuple[Metric, ...]:
    """The metrics a step's ``analysis`` gate measures."""
    analysis = raw_step.get("analysis") or {}
    return tuple(Metric.from_dict(m) for m in analysis.get("metrics", []))


#: When a webhook is called.
WEBHOOK_TYPES = ("pre-rollout", "rollout", "confirm-promotion", "post-rollout")


@dataclass(frozen=True)
class Webhook:
    """``canary.webhooks[]``: an HTTP gate (or, for post-rollout, a notification)."""

    name: str
    type: str
    url: str
    timeout_seconds: int = 10

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Webhook:
        return cls(
            name=raw["name"],
            type=raw["type"],
            url=raw["url"],
            timeout_seconds=raw.get("timeoutSeconds", 10),
        )
