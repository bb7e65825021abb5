"""TLS for the two listeners: server credentials, peer channel credentials, a test CA.

The client listener may use TLS (server authentication). The peer listener may use
mutual TLS: a caller must present a certificate signed by the peer CA, and a process
calling its peers presents its own and checks theirs against the same CA.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path

import grpc

from svasim.config import ConfigError, FabricConfig

#: Names a test certificate is valid for unless told otherwise: loopback and the
#: service names of the compose file.
DEFAULT_NAMES = ("localhost", "127.0.0.1", "cpu", "iommu", "accel")


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read TLS file {path}: {e.strerror or e}") from None


def client_server_credentials(config: FabricConfig) -> grpc.ServerCredentials | None:
    """Credentials of the client listener; None for plaintext."""
    if not config.tls_cert:
        return None
    return grpc.ssl_server_credentials([(_read(config.tls_key), _read(config.tls_cert))])


def peer_server_credentials(config: FabricConfig) -> grpc.ServerCredentials | None:
    """Credentials of the peer listener, requiring a client certificate; None for plaintext."""
    if not config.peer_tls:
        return None
    return grpc.ssl_server_credentials(
        [(_read(config.peer_tls_key), _read(config.peer_tls_cert))],
        root_certificates=_read(config.peer_tls_ca),
        require_client_auth=True,
    )


def peer_channel_credentials(config: FabricConfig) -> grpc.ChannelCredentials | None:
    """Credentials of this process's calls to its peers; None for plaintext."""
    if not config.peer_tls:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(config.peer_tls_ca),
        private_key=_read(config.peer_tls_key),
        certificate_chain=_read(config.peer_tls_cert),
    )


def make_test_ca(directory: str | Path, names: Sequence[str] = DEFAULT_NAMES, *, days: int = 30) -> dict[str, Path]:
    """Write a throw-away CA and certificates signed by it into ``directory``.

    Files: ``ca.pem``; ``peer.pem``/``peer-key.pem`` (every service's peer identity, for
    both ends of a peer call); ``server.pem``/``server-key.pem`` (the client listener,
    server authentication only, so it cannot pass as a peer). Each certificate is valid
    for ``names`` (DNS names or IP addresses). Anyone holding a certificate of the CA
    for client authentication is a peer: keep the CA for the fabric alone. Not for
    production: the keys are not protected.
    """
    # Imported here: only making test certificates needs the cryptography package.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=days)

    def subject(cn: str) -> x509.Name:
        return x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "svasim test"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        )

    def sans() -> x509.SubjectAlternativeName:
        alts: list[x509.GeneralName] = []
        for n in names:
            try:
                alts.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alts.append(x509.DNSName(n))
        return x509.SubjectAlternativeName(alts)

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
        (out / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            path = out / f"{stem}-key.pem"
            path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            path.chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = subject("svasim test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca, None)
    files = {"ca": out / "ca.pem"}
    for stem, usages in (
        ("peer", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
        ("server", [ExtendedKeyUsageOID.SERVER_AUTH]),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject(f"svasim {stem}"))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(sans(), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write(stem, cert, key)
        files[stem] = out / f"{stem}.pem"
        files[f"{stem}-key"] = out / f"{stem}-key.pem"
    return files
