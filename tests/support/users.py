"""People in the test world: client certificates from the world's own CA (``world.py``'s
``make_pki``), so the API server authenticates them as it would real users (CN = user name,
O = group), and kubeconfigs for them."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.cluster import Cluster
from vela_progressive.shell.certs import CertificateAuthority


def world_ca(cluster: Cluster) -> CertificateAuthority:
    """The CA that signs the test world's client certificates (``<state>/pki``)."""
    pki = cluster.kubeconfig.resolve().parent / "pki"
    if not (pki / "ca.key").exists():
        pytest.fail(f"no CA key in {pki}: user identities need a world.py test cluster", False)
    key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return CertificateAuthority(x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes()), key)


def user_kubeconfig(cluster: Cluster, directory: Path, user: str, group: str | None = None) -> Path:
    """A kubeconfig that authenticates as ``user`` (in ``group``) with a client certificate."""
    pair = world_ca(cluster).issue(user, "client", organization=group)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{user}.crt", directory / f"{user}.key"
    pair.write(cert, key)

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    credentials = {"client-certificate-data": b64(cert), "client-key-data": b64(key)}
    return write_kubeconfig(cluster, directory / f"{user}.kubeconfig", user, credentials)


def write_kubeconfig(cluster: Cluster, path: Path, user: str, credentials: dict[str, str]) -> Path:
    """A kubeconfig for the test cluster's API server that logs in as ``user`` with
    ``credentials`` (a token, or a client certificate and key), readable by its owner only."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": server["cluster"]}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def bind(cluster: Cluster, namespace: str, user: str, cluster_role: str) -> None:
    """A RoleBinding of ``user`` to ``cluster_role`` in ``namespace``."""
    cluster.kubectl(
        "create",
        "rolebinding",
        f"{user}-{cluster_role.replace(':', '-')}",
        f"--clusterrole={cluster_role}",
        f"--user={user}",
        "-n",
        namespace,
    )
