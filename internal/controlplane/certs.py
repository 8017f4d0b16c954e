"""A tiny CA for the local control plane: serving cert, admin client cert and service-account key."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class PlaneCerts:
    ca_crt: Path
    serving_crt: Path
    serving_key: Path
    admin_crt: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, pub: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


# The names pods use for kube-apiserver (the ``kubernetes`` Service in ``default``), as a kubeadm
# serving certificate carries them; the local node maps them to its gateway.
IN_CLUSTER_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def generate(directory: Path, host_ip: str = "127.0.0.1", extra_ips: tuple[str, ...] = ()) -> PlaneCerts:
    """Write a CA, a serving pair for localhost/host_ip (plus the in-cluster names and ``extra_ips``), an
    admin (system:masters) pair and an SA key."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name("kuberay-py-local-ca", "kuberay-py")
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key())
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
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, org: str | None, usage: x509.ObjectIdentifier, san: bool) -> tuple[bytes, bytes]:
        key = _key()
        b = _builder(_name(cn, org), ca_name, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if san:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        *(x509.DNSName(n) for n in IN_CLUSTER_NAMES),
                        *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in (host_ip, *extra_ips)),
                    ]
                ),
                critical=False,
            )
        cert = b.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    serving_crt, serving_key = leaf("localhost", None, ExtendedKeyUsageOID.SERVER_AUTH, san=True)
    admin_crt, admin_key = leaf("admin", "system:masters", ExtendedKeyUsageOID.CLIENT_AUTH, san=False)

    out = PlaneCerts(
        ca_crt=directory / "ca.crt",
        serving_crt=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        admin_crt=directory / "admin.crt",
        admin_key=directory / "admin.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
    out.ca_crt.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.serving_crt.write_bytes(serving_crt)
    out.serving_key.write_bytes(serving_key)
    out.admin_crt.write_bytes(admin_crt)
    out.admin_key.write_bytes(admin_key)
    sa = _key()
    out.sa_key.write_bytes(
        sa.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    out.sa_pub.write_bytes(
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for p in (out.serving_key, out.admin_key, out.sa_key):
        p.chmod(0o600)
    return out
