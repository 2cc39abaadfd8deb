"""Throw-away TLS material for tests: a CA and a server certificate for 127.0.0.1, made by the
package's certificate code (:mod:`vela_progressive.shell.certs`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vela_progressive.shell.certs import CertificateAuthority


@dataclass(frozen=True)
class ServerTLS:
    ca_pem: bytes  # what goes into a caBundle
    cert_file: Path
    key_file: Path


def make_server_tls(directory: Path, ip: str = "127.0.0.1") -> ServerTLS:
    """A fresh CA and a server certificate for ``ip`` signed by it, written to ``directory``."""
    ca = CertificateAuthority.create("pytest-ca", days=1)
    server = ca.issue(ip, "server", [ip], days=1)
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / "server.crt"
    key_file = directory / "server.key"
    server.write(cert_file, key_file)
    return ServerTLS(ca.cert_pem, cert_file, key_file)
