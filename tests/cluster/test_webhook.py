"""The kube-apiserver really calls a mutating webhook served on 127.0.0.1 over TLS."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.tls import ServerTLS, make_server_tls

pytestmark = pytest.mark.cluster

SELECT_LABEL = "vela-progressive.test/webhook"
MUTATED_LABEL = "vela-progressive.test/mutated-by"


class _Recorder(ThreadingHTTPServer):
    calls: list[dict[str, Any]]


class _MutatingHandler(BaseHTTPRequestHandler):
    server: _Recorder

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        self.server.calls.append(request)
        patch = [
            {"op": "add", "path": f"/metadata/labels/{_escape(MUTATED_LABEL)}", "value": "test"}
        ]
        body = json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": request["uid"],
                    "allowed": True,
                    "patchType": "JSONPatch",
                    "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


def _escape(key: str) -> str:
    """JSON-Pointer escaping of one path segment."""
    return key.replace("~", "~0").replace("/", "~1")


@pytest.fixture
def webhook_server(tmp_path: Path) -> Iterator[tuple[_Recorder, ServerTLS]]:
    tls = make_server_tls(tmp_path / "tls")
    server = _Recorder(("127.0.0.1", 0), _MutatingHandler)
    server.calls = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, tls
    server.shutdown()
    server.server_close()


def test_the_apiserver_calls_a_tls_webhook_on_loopback_and_the_object_comes_back_mutated(
    cluster: Cluster, namespace: str, webhook_server: tuple[_Recorder, ServerTLS]
) -> None:
    server, tls = webhook_server
    port = server.server_address[1]
    config_name = f"pytest-mutate-{namespace}"
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": config_name},
        "webhooks": [
            {
                "name": "mutate.pytest.vela-progressive.io",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/mutate",
                    "caBundle": base64.b64encode(tls.ca_pem).decode(),
                },
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["configmaps"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "objectSelector": {"matchLabels": {SELECT_LABEL: "yes"}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }
        ],
    }
    cluster.apply_yaml(json.dumps(config))
    try:
        attempt = iter(range(1000))

        def create_until_mutated() -> dict[str, Any] | None:
            name = f"probe-{next(attempt)}"
            manifest = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {SELECT_LABEL: "yes"}},
                "data": {"k": "v"},
            }
            done = cluster.kubectl(
                "create", "-n", namespace, "-f", "-", "-o", "json", input=json.dumps(manifest)
            )
            created: dict[str, Any] = json.loads(done.stdout)
            return created if MUTATED_LABEL in created["metadata"]["labels"] else None

        # The apiserver picks up a new webhook configuration asynchronously.
        created = cluster.wait_for(create_until_mutated, 30, "a ConfigMap mutated by the webhook")
        name = created["metadata"]["name"]
        assert created["metadata"]["labels"][MUTATED_LABEL] == "test"
        calls = [c for c in server.calls if c.get("name") == name]
        assert len(calls) == 1
        assert calls[0]["namespace"] == namespace
        assert calls[0]["operation"] == "CREATE"
        assert calls[0]["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
        stored = cluster.get("configmap", name, "-n", namespace)
        assert stored["metadata"]["labels"][MUTATED_LABEL] == "test"
    finally:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", config_name, check=False)
