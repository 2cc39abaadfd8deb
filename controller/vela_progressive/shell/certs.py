"""Self-signed serving certificate for the hold webhook (a CA plus a leaf for the given names)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ServingCert:
    cafile: Path
    certfile: Path
    keyfile: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def ensure_serving_cert(directory: Path, hosts: list[str], days: int = 365) -> ServingCert:
    """Reuse the certificate in ``directory`` if it covers ``hosts``, else make a new CA + leaf."""
    directory.mkdir(parents=True, exist_ok=True)
    out = ServingCert(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    stamp = directory / "hosts"
    if out.certfile.exists() and stamp.exists() and stamp.read_text() == ",".join(hosts):
        return out
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("vela-progressive-webhook-ca"))
        .issuer_name(_name("vela-progressive-webhook-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.cafile.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.certfile.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    out.keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    out.keyfile.chmod(0o600)
    stamp.write_text(",".join(hosts))
    return out
