"""Kruise Rollout (github.com/openkruise/rollouts), the benchmarks' peer, as world.py installs it.

Only what the module's own `config/` says, rendered the way its kustomization would
(`config/default`: namespace `kruise-rollout`, name prefix `kruise-rollout-`) without running
kustomize: the CRDs of `config/crd/bases` with the conversion-webhook patches of
`config/crd/patches/webhook_in_*.yaml`, the webhook configurations of
`config/webhook/manifests.yaml` with `patch_manifests.yaml`'s objectSelectors, and the
ServiceAccount, roles and bindings of `config/rbac`. world.py (`world.py peer kruise-rollout`)
creates them and runs the binary (`hack/cluster/build.sh rollouts`) as a local process.

No I/O beyond reading the module's files: the objects are plain dicts.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
MODULE = "github.com/openkruise/rollouts"
#: The process name in state.json and logs/<PROCESS>.log.
PROCESS = "kruise-rollout"
BINARY = "kruise-rollout"
FAMILY = "rollouts"  # hack/cluster/build.sh rollouts
NAMESPACE = "kruise-rollout"  # config/default/kustomization.yaml `namespace`
PREFIX = "kruise-rollout-"  # ... `namePrefix`
SERVICE_ACCOUNT = PREFIX + "controller-manager"
#: How its API requests are told apart (audit log, RBAC): a ServiceAccount token, as in-cluster.
USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
WEBHOOK_SERVICE = PREFIX + "webhook-service"
WEBHOOK_CONFIGS = {
    "MutatingWebhookConfiguration": PREFIX + "mutating-webhook-configuration",
    "ValidatingWebhookConfiguration": PREFIX + "validating-webhook-configuration",
}
#: Without AdvancedDeployment a partition-style Deployment release never moves.
FEATURE_GATES = "AdvancedDeployment=true"
PORT_NAMES = ("kruise-rollout-webhook", "kruise-rollout-metrics", "kruise-rollout-health")
#: Controllers that must have started (controller-runtime names, v0.6.2).
CONTROLLERS = (
    "rollout-controller",
    "batchrelease-controller",
    "trafficrouting-controller",
    "advanced-deployment-controller",
)
#: Where kustomize's `namespace: system` placeholder and service name point.
_KUSTOMIZE_NAMESPACE = "system"


def version() -> str:
    """The version hack/cluster/rollouts/go.mod pins (the single source)."""
    text = (HERE / FAMILY / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(MODULE)}\s+(v\S+)", text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"{HERE / FAMILY / 'go.mod'} does not require {MODULE}")
    return match.group(1)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _service_ref(ref: dict[str, Any]) -> None:
    ref.update(namespace=NAMESPACE, name=WEBHOOK_SERVICE)


def crds(module_dir: Path) -> list[dict[str, Any]]:
    """The CRDs with the conversion webhooks of config/crd/patches (kruise-rollout sets their
    URL and caBundle itself, as it does for the webhook configurations)."""
    patches: dict[str, dict[str, Any]] = {}
    for path in sorted((module_dir / "config/crd/patches").glob("webhook_in_*.yaml")):
        for doc in _docs(path):
            patches[doc["metadata"]["name"]] = doc["spec"]["conversion"]
    found: list[dict[str, Any]] = []
    for path in sorted((module_dir / "config/crd/bases").glob("*.yaml")):
        for doc in _docs(path):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            doc["metadata"] = {"name": doc["metadata"]["name"]}
            conversion = copy.deepcopy(patches.pop(doc["metadata"]["name"], None))
            if conversion is not None:
                _service_ref(conversion["webhook"]["clientConfig"]["service"])
                doc["spec"]["conversion"] = conversion
            found.append(doc)
    if not found or patches:
        raise ValueError(
            f"{module_dir}/config/crd: expected CRDs in bases/ and a base for every "
            f"webhook_in_* patch (left: {sorted(patches)})"
        )
    return found


def webhook_configurations(module_dir: Path) -> list[dict[str, Any]]:
    """config/webhook/manifests.yaml as kustomize names it, with patch_manifests.yaml merged.

    kruise-rollout (WEBHOOK_HOST set) turns each service clientConfig into
    https://HOST:PORT/path, sets the caBundle and keeps the original as a `template` annotation.
    """
    webhook_dir = module_dir / "config/webhook"
    selectors: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in _docs(webhook_dir / "patch_manifests.yaml"):
        for hook in doc.get("webhooks") or []:
            if "objectSelector" in hook:
                selectors[(doc["kind"], hook["name"])] = hook["objectSelector"]
    configs: list[dict[str, Any]] = []
    for doc in _docs(webhook_dir / "manifests.yaml"):
        kind = doc.get("kind")
        if kind not in WEBHOOK_CONFIGS:
            continue
        hooks = copy.deepcopy(doc.get("webhooks") or [])
        for hook in hooks:
            service = hook.get("clientConfig", {}).get("service")
            if service is not None:
                _service_ref(service)
            selector = selectors.pop((kind, hook["name"]), None)
            if selector is not None:
                hook["objectSelector"] = selector
        configs.append(
            {
                "apiVersion": doc["apiVersion"],
                "kind": kind,
                "metadata": {"name": WEBHOOK_CONFIGS[kind]},
                "webhooks": hooks,
            }
        )
    if len(configs) != len(WEBHOOK_CONFIGS) or selectors:
        raise ValueError(
            f"{webhook_dir}: expected one mutating and one validating configuration and a "
            f"webhook for every patched objectSelector (left: {sorted(selectors)})"
        )
    return configs


def rbac(module_dir: Path) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole, Role and their bindings from config/rbac, as kustomized."""
    rbac_dir = module_dir / "config/rbac"
    listed = yaml.safe_load((rbac_dir / "kustomization.yaml").read_text())["resources"]
    objects: list[dict[str, Any]] = []
    for name in listed:
        for doc in _docs(rbac_dir / name):
            meta = doc["metadata"]
            doc["metadata"] = {"name": PREFIX + meta["name"]}
            if "namespace" in meta or doc["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
                doc["metadata"]["namespace"] = NAMESPACE
            if "roleRef" in doc:
                doc["roleRef"]["name"] = PREFIX + doc["roleRef"]["name"]
            for subject in doc.get("subjects") or []:
                if subject.get("kind") == "ServiceAccount":
                    subject["name"] = PREFIX + subject["name"]
                    subject["namespace"] = NAMESPACE
            objects.append(doc)
    accounts = [o for o in objects if o["kind"] == "ServiceAccount"]
    if [a["metadata"]["name"] for a in accounts] != [SERVICE_ACCOUNT]:
        raise ValueError(f"{rbac_dir}: expected the one ServiceAccount {SERVICE_ACCOUNT}")
    # ServiceAccount first, then roles, then bindings.
    order = {"ServiceAccount": 0, "ClusterRole": 1, "Role": 1}
    return sorted(objects, key=lambda o: order.get(o["kind"], 2))


def api_path(obj: dict[str, Any]) -> str:
    """The collection URL to POST `obj` to (the kinds this module creates)."""
    group_version = obj["apiVersion"]
    plural = {
        "ServiceAccount": "serviceaccounts",
        "ClusterRole": "clusterroles",
        "ClusterRoleBinding": "clusterrolebindings",
        "Role": "roles",
        "RoleBinding": "rolebindings",
        "CustomResourceDefinition": "customresourcedefinitions",
        "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
        "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
    }[obj["kind"]]
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    namespace = obj["metadata"].get("namespace")
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
