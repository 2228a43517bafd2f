"""A certificate authority made at test time, and a certificate per host it serves.

The CA and the leaf keys live only in a temporary directory for one test
run: nothing is added to the machine's trust stores. Python clients trust
the CA through :meth:`LocalCA.client_context` (full chain and host-name
checks); Chromium, which keeps its trust in an NSS database this machine has
no tool to write, is given the SHA-256 hashes of the leaves' public keys
(``--ignore-certificate-errors-spki-list``): only a server holding one of
these private keys is accepted, whatever the host name.

    ca = LocalCA(directory)
    cert, key = ca.issue("shop.example.test")
    ca.spki_hashes()  # for Chromium's flag
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["LocalCA"]

_DAY = datetime.timedelta(days=1)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class LocalCA:
    """A self-signed CA (P-256) that issues one server certificate per host name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sessionshare test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self._name = name
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = directory / "ca.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._leaves: list[x509.Certificate] = []

    def issue(self, host: str) -> tuple[Path, Path]:
        """A certificate for ``host`` (and its key): the chain file holds the leaf, then
        the CA, as a server sends it."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + _DAY)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self._leaves.append(cert)
        cert_path = self.directory / f"{host}.pem"
        key_path = self.directory / f"{host}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                              + self._cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        return cert_path, key_path

    def spki_hashes(self) -> str:
        """Base64 SHA-256 of each issued leaf's public key, comma separated (Chromium's
        ``--ignore-certificate-errors-spki-list``)."""
        return ",".join(
            base64.b64encode(hashlib.sha256(cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
            )).digest()).decode()
            for cert in self._leaves
        )

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only, host names checked."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def server_context(self, host: str) -> ssl.SSLContext:
        """A server context for ``host`` (issues its certificate)."""
        cert, key = self.issue(host)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        return context
