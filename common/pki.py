"""The federation's certificate authority: the broker's server certificate, and the
short-lived client certificates that identify sites (mutual TLS).

A site's key never leaves the site (it sends a CSR); its certificate names what the broker
knows from the join token, whatever the CSR claims, with the URI SAN
`minga://site/<institution>/<site>` that the broker reads back. Keys are ECDSA P-256. See
docs/security.md.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from minga.common.domain import InvalidArgument

SITE_URI_PREFIX = "minga://site/"
SITE_CERT_DAYS = 30
SERVER_CERT_DAYS = 365
CA_DAYS = 10 * 365
CLOCK_SKEW = dt.timedelta(minutes=5)  # back-date certificates a little for skewed clocks
MAX_CSR_BYTES = 16 * 1024


CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"


@dataclass(frozen=True)
class SiteIdentity:
    site: str
    institution: str


@dataclass(frozen=True)
class Authority:
    """A CA key and certificate, able to sign."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class BrokerPki:
    """What `minga broker init` leaves in the broker's PKI directory, loaded."""

    ca: Authority
    server_key_pem: bytes
    server_cert_pem: bytes
    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / CA_CERT


def init_broker_pki(directory: Path, sans: list[str], force: bool = False) -> BrokerPki:
    """Create the federation CA and the broker's server certificate in `directory` (0700).

    Refuses to overwrite an existing CA unless `force`: every site certificate and
    every CA file handed out so far hangs on it.
    """
    directory = Path(directory).expanduser()
    if (directory / CA_KEY).exists() and not force:
        raise InvalidArgument(
            f"{directory} already holds a federation CA; pass --force to replace it (every site must then join again)"
        )
    _private_dir(directory)
    ca = create_ca()
    key, cert = issue_server_cert(ca, sans)
    write_private(directory / CA_KEY, key_pem(ca.key))
    (directory / CA_CERT).write_bytes(ca.pem)
    write_private(directory / SERVER_KEY, key_pem(key))
    (directory / SERVER_CERT).write_bytes(pem(cert))
    return load_broker_pki(directory)


def has_broker_pki(directory: Path) -> bool:
    return (Path(directory).expanduser() / CA_KEY).exists()


def load_broker_pki(directory: Path) -> BrokerPki:
    """Read a PKI directory made by `init_broker_pki`; InvalidArgument says what is wrong."""
    directory = Path(directory).expanduser()
    try:
        ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        server_key = (directory / SERVER_KEY).read_bytes()
        server_cert = (directory / SERVER_CERT).read_bytes()
    except OSError as exc:
        raise InvalidArgument(
            f"cannot read the broker's PKI in {directory}: {exc.strerror} ({exc.filename}); run `minga broker init`"
        ) from exc
    except ValueError as exc:
        raise InvalidArgument(f"the broker's PKI in {directory} is damaged: {exc}") from exc
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise InvalidArgument(f"{directory / CA_KEY} is not an ECDSA key")
    return BrokerPki(Authority(ca_key, ca_cert), server_key, server_cert, directory)


def split_bundle(bundle: bytes) -> tuple[bytes, bytes]:
    """A site's key and certificate (PEM), kept together in one file so that a renewal
    replaces both at once (one rename), never a new key next to an old certificate."""
    start = bundle.find(b"-----BEGIN CERTIFICATE-----")
    if start < 0:
        raise ValueError("no certificate in the site's key file")
    return bundle[:start], bundle[start:]


def load_key_and_cert(bundle: bytes) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_part, cert_part = split_bundle(bundle)
    key = serialization.load_pem_private_key(key_part, password=None)
    cert = x509.load_pem_x509_certificate(cert_part)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the site key is not an ECDSA key")
    return key, cert


def serial_key(serial: int) -> str:
    """How the broker's credential table names a certificate: by its serial number."""
    return f"x509:{serial:x}"


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def create_ca(common_name: str = "minga federation CA", now: dt.datetime | None = None) -> Authority:
    now = now or _now()
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def issue_server_cert(
    ca: Authority, sans: list[str], now: dt.datetime | None = None, days: int = SERVER_CERT_DAYS
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and certificate for the broker, valid for every name or IP in `sans`."""
    if not sans:
        raise InvalidArgument("the broker certificate needs at least one --san (a host name or IP address)")
    key = new_key()
    for name in sans:
        _check_san(name)
    cert = _leaf(
        ca,
        key.public_key(),
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])]),
        [_san(s) for s in sans],
        ExtendedKeyUsageOID.SERVER_AUTH,
        now or _now(),
        dt.timedelta(days=days),
    )
    return key, cert


def site_csr(key: ec.EllipticCurvePrivateKey, site: str) -> bytes:
    """What a joining site sends: a CSR for its own key (the broker decides the identity)."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, site)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def sign_site_csr(
    ca: Authority,
    csr_pem: bytes,
    identity: SiteIdentity,
    country: str = "",
    now: dt.datetime | None = None,
    lifetime: dt.timedelta = dt.timedelta(days=SITE_CERT_DAYS),
    serial: int | None = None,
) -> x509.Certificate:
    """A client certificate for the key in `csr_pem`, naming `identity` whatever the CSR says."""
    csr = check_csr(csr_pem)
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, identity.site),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.institution),
    ]
    if country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    uri = x509.UniformResourceIdentifier(f"{SITE_URI_PREFIX}{identity.institution}/{identity.site}")
    key = csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)  # check_csr refuses any other
    return _leaf(ca, key, x509.Name(attrs), [uri], ExtendedKeyUsageOID.CLIENT_AUTH, now or _now(), lifetime, serial)


def check_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    """A well-formed CSR, self-signed by an ECDSA P-256 key; InvalidArgument names the flaw.
    Checked before a join token is spent, so a broken CSR does not burn the token."""
    if len(csr_pem) > MAX_CSR_BYTES:
        raise InvalidArgument(f"csr is {len(csr_pem)} bytes; the limit is {MAX_CSR_BYTES}")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise InvalidArgument("csr is not a PEM certificate signing request") from exc
    if not csr.is_signature_valid:
        raise InvalidArgument("csr signature does not match its key")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidArgument("csr key must be ECDSA P-256")
    return csr


def site_identity(cert: x509.Certificate, ca: x509.Certificate, now: dt.datetime | None = None) -> SiteIdentity:
    """Who a presented client certificate names, after checking that our CA signed it,
    that it is in date, and that it is a site certificate."""
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise InvalidArgument("certificate was not issued by this federation's CA") from exc
    now = now or _now()
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise InvalidArgument(f"certificate expired or not yet valid (valid until {cert.not_valid_after_utc:%Y-%m-%d})")
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise InvalidArgument("certificate names no site") from exc
    for uri in sans.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(SITE_URI_PREFIX):
            institution, _, site = uri.removeprefix(SITE_URI_PREFIX).partition("/")
            if institution and site:
                return SiteIdentity(site=site, institution=institution)
    raise InvalidArgument("certificate names no site")


def write_private(path: Path, data: bytes) -> Path:
    """Write a secret readable only by its owner (created 0600, never world-readable),
    atomically: a reader sees the old content or the new, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover tmp file keeps its old mode through O_TRUNC
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _private_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _leaf(
    ca: Authority,
    public_key: ec.EllipticCurvePublicKey,
    subject: x509.Name,
    sans: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    now: dt.datetime,
    lifetime: dt.timedelta,
    serial: int | None = None,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )


def _check_san(name: str) -> None:
    """A host name or IP address, nothing else: a typo here locks every client out later."""
    try:
        ipaddress.ip_address(name)
        return
    except ValueError:
        pass
    labels = name.split(".")
    if not (
        0 < len(name) <= 253
        and all(0 < len(label) <= 63 and all(c.isalnum() or c in "-*" for c in label) for label in labels)
    ):
        raise InvalidArgument(f"--san {name!r} is not a host name or IP address")


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
