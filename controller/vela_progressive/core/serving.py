"""Which names the in-cluster controller's webhook serving certificate must cover (pure).

The addon's webhook configuration reaches the controller through its Service
(``vela-progressive.<namespace>.svc``), or, when the addon was enabled with ``webhookURL``,
through that URL's host: the certificate must be valid for both, or the API server refuses the
TLS handshake and the hold webhook never answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit


def service_hosts(namespace: str, service: str = "vela-progressive") -> list[str]:
    host = f"{service}.{namespace}.svc"
    return [host, f"{host}.cluster.local"]


def url_hosts(configuration: Mapping[str, Any] | None) -> list[str]:
    """The hosts of the URL clientConfigs of a webhook configuration, first seen first."""
    found: list[str] = []
    for hook in (configuration or {}).get("webhooks") or []:
        url = (hook.get("clientConfig") or {}).get("url")
        host = urlsplit(url).hostname if url else None
        if host and host not in found:
            found.append(host)
    return found


def serving_hosts(namespace: str, configuration: Mapping[str, Any] | None) -> list[str]:
    """The Service's names, then the hosts of the configuration's URL clientConfigs."""
    hosts = service_hosts(namespace)
    return hosts + [h for h in url_hosts(configuration) if h not in hosts]
