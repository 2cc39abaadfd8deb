"""Certificates, in one place: a private CA and the leaves it signs; and the controller's
other key, the one it signs operation stamps with (:func:`ensure_stamp_key`).

The controller's hold webhook serves a self-signed CA + leaf (:func:`ensure_serving_cert`); the
test world (``hack/cluster/world.py``: kube-apiserver serving cert, admin client cert) and the
tests (``tests/support/tls.py``) build theirs with the same :class:`CertificateAuthority`.

Keys are ECDSA P-256; every certificate is valid from five minutes ago (clock skew) for
``days``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: What a leaf certificate is for: a TLS server or a TLS client.
Usage = Literal["server", "client"]

_USAGE = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}
_SKEW = dt.timedelta(minutes=5)


def name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """An IP address entry for each address in ``hosts``, a DNS entry for each name."""
    found: list[x509.GeneralName] = []
    for host in hosts:
        try:
            found.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            found.append(x509.DNSName(host))
    return found


def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    """A private key as PKCS#8 PEM, readable by its owner only."""
    path.write_bytes(key_pem(key))
    path.chmod(0o600)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, certfile: Path, keyfile: Path) -> None:
        certfile.write_bytes(self.cert_pem)
        write_key(keyfile, self.key)


@dataclass(frozen=True)
class CertificateAuthority(KeyPair):
    """A private CA that signs leaf certificates."""

    @classmethod
    def create(cls, common_name: str, days: int = 365) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        start = dt.datetime.now(dt.UTC) - _SKEW
        subject = name(common_name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def issue(
        self,
        common_name: str,
        usage: Usage,
        hosts: Sequence[str] = (),
        organization: str | None = None,
        days: int = 365,
    ) -> KeyPair:
        """A leaf for ``usage``, naming ``hosts`` (IP addresses and DNS names) if any."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = dt.datetime.now(dt.UTC) - _SKEW
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common_name, organization))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([_USAGE[usage]]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(subject_alt_names(hosts)), critical=False
            )
        return KeyPair(builder.sign(self.key, hashes.SHA256()), key)


@dataclass(frozen=True)
class ServingCert:
    cafile: Path
    certfile: Path
    keyfile: Path


def ensure_serving_cert(directory: Path, hosts: list[str], days: int = 365) -> ServingCert:
    """Reuse the certificate in ``directory`` if it covers ``hosts``, else make a new CA + leaf."""
    directory.mkdir(parents=True, exist_ok=True)
    out = ServingCert(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    stamp = directory / "hosts"
    if out.certfile.exists() and stamp.exists() and stamp.read_text() == ",".join(hosts):
        return out
    ca = CertificateAuthority.create("vela-progressive-webhook-ca", days)
    leaf = ca.issue(hosts[0], "server", hosts, days=days)
    out.cafile.write_bytes(ca.cert_pem)
    leaf.write(out.certfile, out.keyfile)
    stamp.write_text(",".join(hosts))
    return out


def ensure_stamp_key(directory: Path) -> bytes:
    """The key the admission webhook signs operation stamps with (``core.identity``): 32 random
    bytes in ``directory/stamp.key`` (owner-only), made on first use, kept with the serving
    certificate. Only the controller reads it; the controller needs no Secret for it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "stamp.key"
    if not path.exists() or len(path.read_bytes()) < 32:
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()
