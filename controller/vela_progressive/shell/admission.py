"""Registering the controller's webhook configuration (``VP_WEBHOOK_MODE=local``).

In the cluster the addon installs the configuration and the controller only fills in its CA
(``shell.state.install_ca_bundle``); a controller run elsewhere registers the whole of it,
rendered by ``core.admission``, with the match conditions the addon's has.
"""

from __future__ import annotations

import logging
from typing import Any

from vela_progressive.shell.kube import Kube, KubeError

log = logging.getLogger(__name__)
Obj = dict[str, Any]
ADMISSION = "admissionregistration.k8s.io/v1"
ATTEMPTS = 3


async def register(kube: Kube, config: Obj) -> None:
    """Create the MutatingWebhookConfiguration ``config``, or set the webhooks of the one that
    has its name (a merge patch: the list is replaced whole). A create that lost a race with
    another replica's is retried as a patch."""
    name = config["metadata"]["name"]
    for _ in range(ATTEMPTS):
        current = await kube.get(ADMISSION, "MutatingWebhookConfiguration", name)
        try:
            if current is None:
                await kube.create(config)
            elif current.get("webhooks") != config["webhooks"]:
                await kube.patch(
                    ADMISSION,
                    "MutatingWebhookConfiguration",
                    name,
                    None,
                    {"webhooks": config["webhooks"]},
                )
            log.info("webhooks registered: MutatingWebhookConfiguration %s", name)
            return
        except KubeError as exc:
            if exc.status != 409:
                raise
    raise KubeError(409, "Conflict", f"MutatingWebhookConfiguration {name} kept changing")
