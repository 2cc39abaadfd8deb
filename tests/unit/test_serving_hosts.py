"""The in-cluster controller's serving certificate covers its Service and the addon's webhookURL."""

from __future__ import annotations

from vela_progressive.core.serving import serving_hosts, url_hosts

SERVICE = ["vela-progressive.ops.svc", "vela-progressive.ops.svc.cluster.local"]


def hook(**client_config: str) -> dict[str, object]:
    return {"name": "x", "clientConfig": client_config}


def test_a_service_client_config_needs_only_the_service_names() -> None:
    config = {"webhooks": [hook(caBundle="")] * 2}
    assert serving_hosts("ops", config) == SERVICE


def test_no_configuration_yet_gives_the_service_names() -> None:
    assert serving_hosts("ops", None) == SERVICE
    assert url_hosts({"webhooks": None}) == []


def test_url_client_configs_add_their_hosts_once_ip_or_name() -> None:
    config = {
        "webhooks": [
            hook(url="https://127.0.0.1:40123/hold-deployments"),
            hook(url="https://127.0.0.1:40123/hold-statefulsets"),
            hook(url="https://hooks.example.com/stamp-progressiverollouts"),
            hook(url="https://vela-progressive.ops.svc/x"),
        ]
    }
    assert serving_hosts("ops", config) == [*SERVICE, "127.0.0.1", "hooks.example.com"]


def test_an_ipv6_url_host_loses_its_brackets() -> None:
    assert url_hosts({"webhooks": [hook(url="https://[::1]:9443/h")]}) == ["::1"]
