"""Calls the release's webhooks: a POST of a JSON body; 2xx passes. Never raises: a refusal,
an error or a timeout is an answer that says what happened."""

from __future__ import annotations

import json
from collections.abc import Mapping

import aiohttp

from vela_progressive.core.analysis.spec import Webhook
from vela_progressive.core.decide import HookAnswer

#: Characters of an answer's body kept in messages.
BODY_EXCERPT = 200


async def call(hook: Webhook, body: Mapping[str, object]) -> HookAnswer:
    timeout = aiohttp.ClientTimeout(total=hook.timeout_seconds)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                hook.url, data=json.dumps(body), headers={"Content-Type": "application/json"}
            ) as response,
        ):
            text = (await response.text())[:BODY_EXCERPT].strip()
            said = f"HTTP {response.status}" + (f": {text}" if text else "")
            return HookAnswer(ok=200 <= response.status < 300, detail=said)
    except TimeoutError:
        return HookAnswer(ok=False, detail=f"no answer from {hook.url} in {hook.timeout_seconds}s")
    except aiohttp.ClientError as exc:
        return HookAnswer(ok=False, detail=f"{hook.url} could not be reached ({exc})")
