"""The state the controller's pods share through one Secret: the webhook's serving certificate,
its CA and the key operation stamps are signed with.

Every pod serves the hold and stamp webhooks behind one Service, so they must present the same
certificate (the webhook configuration trusts one CA) and sign stamps with the same key (a stamp
made by one pod is checked by the pod that drives the rollout, maybe after a takeover). The first
pod makes them and creates the Secret; the others, and every restart, adopt it. A pod that needs
a certificate for other hosts (a changed ``webhookURL``) makes a new one and updates the Secret;
a concurrent writer makes its update conflict, and it adopts the winner's. The CA goes into the
addon's webhook configuration (``install_ca_bundle``).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

from vela_progressive.shell.certs import ServingCert, ensure_serving_cert, ensure_stamp_key
from vela_progressive.shell.kube import Kube, KubeError

log = logging.getLogger(__name__)
Obj = dict[str, Any]
#: Secret key -> file under the state directory.
FILES = {
    "ca.crt": "certs/ca.crt",
    "tls.crt": "certs/tls.crt",
    "tls.key": "certs/tls.key",
    "hosts": "certs/hosts",
    "stamp.key": "stamp.key",
}
ATTEMPTS = 3


def _read(directory: Path) -> dict[str, str]:
    out = {}
    for key, rel in FILES.items():
        path = directory / rel
        if path.exists():
            out[key] = base64.b64encode(path.read_bytes()).decode()
    return out


def _write(directory: Path, data: dict[str, str]) -> None:
    for key, rel in FILES.items():
        if key in data:
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(data[key]))
            if key.endswith(".key"):
                path.chmod(0o600)


async def shared_state(
    kube: Kube, namespace: str, name: str, directory: Path, hosts: list[str]
) -> tuple[ServingCert, bytes]:
    """The serving certificate for ``hosts`` and the stamp key, the same in every pod."""
    for _ in range(ATTEMPTS):
        secret = await kube.get("v1", "Secret", name, namespace)
        stored: dict[str, str] = dict((secret or {}).get("data") or {})
        _write(directory, stored)
        cert = ensure_serving_cert(directory / "certs", hosts)
        key = ensure_stamp_key(directory)
        local = _read(directory)
        if local == stored:
            return cert, key
        meta: dict[str, str] = {"name": name, "namespace": namespace}
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "data": local,
        }
        try:
            if secret is None:
                await kube.create(body)
                log.info("created Secret %s/%s (serving certificate, stamp key)", namespace, name)
            else:
                meta["resourceVersion"] = secret["metadata"]["resourceVersion"]
                await kube.replace(body)
                log.info("updated Secret %s/%s: a certificate for %s", namespace, name, hosts)
            return cert, key
        except KubeError as exc:
            if exc.status != 409:  # 409: another pod wrote it first: adopt theirs
                raise
    raise KubeError(409, "Conflict", f"Secret {namespace}/{name} kept changing; restart the pod")


async def install_ca_bundle(kube: Kube, name: str, config: Obj | None, ca: bytes) -> None:
    """Put the shared CA into every webhook of the configuration ``name`` (read as ``config``).
    Pods starting together write the same bundle: nothing to do when it is there already, and
    a conflicting write is read again and retried."""
    bundle = base64.b64encode(ca).decode()
    for _ in range(ATTEMPTS):
        if config is None:
            log.warning("MutatingWebhookConfiguration %s not found: no hold webhook", name)
            return
        hooks = config.get("webhooks") or []
        if all((h.get("clientConfig") or {}).get("caBundle") == bundle for h in hooks):
            return
        for hook in hooks:
            hook.setdefault("clientConfig", {})["caBundle"] = bundle
        try:
            await kube.replace(config)
            return
        except KubeError as exc:
            if exc.status != 409:
                raise
        config = await kube.get(
            "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", name
        )
    raise KubeError(409, "Conflict", f"MutatingWebhookConfiguration {name} kept changing")
