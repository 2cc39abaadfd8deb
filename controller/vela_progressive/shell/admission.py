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


async def register(kube: Kube, config: Obj) -> None:
    """Create the MutatingWebhookConfiguration ``config``, or, when one has its name, set its
    webhooks (a merge patch replaces the list whole; nobody else writes this configuration)."""
    name = config["metadata"]["name"]
    try:
        await kube.create(config)
    except KubeError as exc:
        if exc.status != 409:  # 409: it exists (an earlier run, another replica)
            raise
        patch = {"webhooks": config["webhooks"]}
        await kube.patch(ADMISSION, "MutatingWebhookConfiguration", name, None, patch)
    log.info("webhooks registered: MutatingWebhookConfiguration %s", name)
