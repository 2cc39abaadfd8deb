"""Asks Prometheus: one instant query per call, answered as a
:class:`~vela_progressive.core.analysis.judge.Result` (a value, no data, or an error that says
what to do). Never raises: an unreachable or failing Prometheus is an error result, which the
decision function counts towards ``inconclusiveLimit``."""

from __future__ import annotations

import base64
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from vela_progressive.core.analysis.judge import Result

#: The controller's default Prometheus (the addon's ``prometheusAddress`` parameter).
ADDRESS_ENV = "VP_PROMETHEUS_ADDRESS"
TIMEOUT_SECONDS = 5.0


@dataclass
class Prometheus:
    default_address: str | None = field(default_factory=lambda: os.environ.get(ADDRESS_ENV))
    #: Queries sent, by outcome (``ok``, ``error``): benchmarks read it.
    sent: Counter[str] = field(default_factory=Counter)
    _session: aiohttp.ClientSession | None = None

    async def query(
        self, promql: str, address: str | None = None, headers: Mapping[str, str] | None = None
    ) -> Result:
        base = (address or self.default_address or "").rstrip("/")
        if not base:
            return Result(
                error="no Prometheus address: set the addon's prometheusAddress parameter or "
                "the metric's prometheusAddress"
            )
        result = await self._ask(base, promql, headers or {})
        self.sent["error" if result.error else "ok"] += 1
        return result

    async def _ask(self, base: str, promql: str, headers: Mapping[str, str]) -> Result:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
            )
        try:
            async with self._session.get(
                f"{base}/api/v1/query", params={"query": promql}, headers=dict(headers)
            ) as response:
                if response.status in (401, 403):
                    return Result(
                        error=f"Prometheus at {base} refused the credentials (HTTP "
                        f"{response.status}): check the metric's prometheusAuth Secret"
                    )
                body: Any = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return Result(
                error=f"Prometheus at {base} did not answer ({type(exc).__name__}: {exc})"
            )
        return parse(body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def parse(body: Any) -> Result:
    """A Prometheus API answer as a result.

    >>> parse({"status": "success", "data": {"resultType": "vector", "result": []}})
    Result(value=None, error=None)
    >>> parse({"status": "success", "data": {"resultType": "vector",
    ...        "result": [{"metric": {}, "value": [1, "2.5"]}]}})
    Result(value=2.5, error=None)
    """
    if not isinstance(body, dict):
        return Result(error="Prometheus answered something that is not JSON")
    if body.get("status") != "success":
        return Result(error=f"Prometheus refused the query: {body.get('error', body)}")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return Result(value=float(result[1]))
    if kind != "vector" or not isinstance(result, list):
        return Result(error=f"the query returned a {kind}; write one that returns one number")
    if not result:
        return Result()
    if len(result) > 1:
        labels = sorted({k for series in result for k in (series.get("metric") or {})})
        return Result(
            error=f"the query returned {len(result)} series (labels: {', '.join(labels)}); "
            "aggregate them into one, e.g. sum(...) or sum without ("
            f"{', '.join(labels) or 'instance'}) (...)"
        )
    try:
        return Result(value=float(result[0]["value"][1]))
    except (KeyError, IndexError, TypeError, ValueError):
        return Result(error="Prometheus answered a sample without a value")


def auth_headers(secret: Mapping[str, Any] | None, kind: str, name: str) -> dict[str, str] | str:
    """The Authorization header from a Secret's data, or why it cannot be built.

    >>> auth_headers({"data": {"token": "czNjcmV0"}}, "bearer", "prom")
    {'Authorization': 'Bearer s3cret'}
    >>> auth_headers(None, "bearer", "prom")
    "Secret prom not found in the rollout's namespace"
    """
    if secret is None:
        return f"Secret {name} not found in the rollout's namespace"
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    if kind == "basic":
        if "username" not in data or "password" not in data:
            return f"Secret {name} needs the keys username and password (prometheusAuth basic)"
        pair = base64.b64encode(f"{data['username']}:{data['password']}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    if "token" not in data:
        return f"Secret {name} needs the key token (prometheusAuth bearer)"
    return {"Authorization": f"Bearer {data['token'].strip()}"}
